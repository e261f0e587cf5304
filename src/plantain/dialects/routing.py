"""Each dialect answers its own errors: its router's routes are a :class:`DialectRoute` made with
:func:`dialect_route` from the dialect's ``error_body``, which renders every error a route
raises (a Plantain error, a refused parameter, a multipart parser's refusal, an unexpected
exception) in that dialect's envelope. Nothing is guessed from the path.

The server's own handler is left with what no route matched (an unknown path, a wrong method)
and what middleware refuses before routing (a missing API key, a body over the limit): only
those are told apart by path and headers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from plantain.dialects import parameters
from plantain.errors import EngineRunError, InvalidRequestError, PlantainError, response_headers

logger = logging.getLogger(__name__)

ErrorBody = Callable[[PlantainError], tuple[int, dict[str, Any]]]
"""A dialect's ``errors.error_body``: the status and envelope of an error."""


def error_response(error_body: ErrorBody, error: PlantainError) -> JSONResponse:
    """``error`` as ``error_body`` renders it, with the error's headers (``Retry-After``…)."""
    status, body = error_body(error)
    return JSONResponse(body, status_code=status, headers=response_headers(error))


class DialectRoute(APIRoute):
    """A route whose errors are rendered by its dialect's envelope (:meth:`envelope`).
    Made with :func:`dialect_route`; subclassed where the envelope depends on the caller."""

    def envelope(self, request: Request) -> ErrorBody:
        raise NotImplementedError  # pragma: no cover - dialect_route overrides it

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return self.error_response(request, as_plantain_error(request, exc))

        return route

    def error_response(self, request: Request, error: PlantainError) -> Response:
        """The answer to ``error``; a dialect adding headers of its own overrides it."""
        return error_response(self.envelope(request), error)


def dialect_route(error_body: ErrorBody) -> type[DialectRoute]:
    """The route class of a dialect's ``APIRouter(route_class=…)``: errors in ``error_body``'s envelope."""

    class Route(DialectRoute):
        def envelope(self, request: Request) -> ErrorBody:
            return error_body

    return Route


def as_plantain_error(request: Request, exc: Exception) -> PlantainError:
    """Whatever a route raised, as the Plantain error its dialect renders."""
    if isinstance(exc, PlantainError):
        return exc
    if isinstance(exc, RequestValidationError):  # a declared query, path or header value
        return parameters.invalid_parameter(request, exc)
    if isinstance(exc, HTTPException):  # FastAPI's or starlette's refusal of the body
        return InvalidRequestError(f"{request.method} {request.url.path}: {exc.detail}")
    logger.exception("unexpected error on %s", request.url.path)
    return EngineRunError(f"internal error: {type(exc).__name__}: {exc}")
