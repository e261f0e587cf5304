"""What routes take besides the request: the front door (what every dialect submits to and
reads tasks from), Gemini's batch store and the caller's key id, as typed FastAPI dependencies.

Routes declare them as parameters (``door: FrontDoorDep``) rather than reaching into
``app.state``: what a route uses is in its signature, and a test can swap one for the whole app
with ``app.dependency_overrides``. This module is the only place that knows where the server
keeps them. Each is ``async``: FastAPI runs a plain ``def`` dependency on its thread pool, a
thread hop per request for an attribute read.

The API key itself is checked by the server's middleware, not here: it must refuse a request on
every path, unmatched ones included (a 401 before a 404), and before any body is read.
:func:`caller_key` names the key that check let through, from the same credentials.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from plantain.scheduler import FrontDoor
from plantain.storage.batches import BatchStore
from plantain.usage import ANONYMOUS, key_id


async def get_front_door(request: Request) -> FrontDoor:
    door: FrontDoor = request.app.state.front_door  # put there by server.create_app
    return door


async def get_batches(request: Request) -> BatchStore:
    batches: BatchStore = request.app.state.batches  # put there by server.create_app
    return batches


FrontDoorDep = Annotated[FrontDoor, Depends(get_front_door)]
BatchesDep = Annotated[BatchStore, Depends(get_batches)]


def sent_key(connection: HTTPConnection) -> str | None:
    """The API key a request carries: ``x-goog-api-key``, ``?key=`` or ``Authorization: Bearer``."""
    header = connection.headers.get("x-goog-api-key") or connection.query_params.get("key")
    if header:
        return header
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def caller_key(request: Request, door: FrontDoorDep) -> str:
    """Whose usage a request is: the key id of the API key it sent (never the key), or
    ``anonymous`` when the server needs no key. A key the server does not hold never gets here:
    the middleware refused it."""
    sent = sent_key(request) if door.settings.api_keys else None
    return ANONYMOUS if sent is None else key_id(sent)


CallerKey = Annotated[str, Depends(caller_key)]

__all__ = [
    "BatchesDep",
    "CallerKey",
    "FrontDoorDep",
    "caller_key",
    "get_batches",
    "get_front_door",
    "sent_key",
]
