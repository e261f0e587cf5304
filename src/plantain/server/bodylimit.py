"""A limit on request bodies (``max_body_bytes``), in front of every route: FastAPI has none.

A body that declares a larger ``Content-Length`` is refused before a byte of it is read; a body
without one (chunked) is counted as the route reads it and stopped as soon as the count passes
the limit. Either way the caller gets 413 ``payload_too_large`` in its own dialect: the first
from here (``render`` is the server's error renderer), the second raised into the route that is
reading, whose error handling renders it like any other.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plantain.errors import PayloadTooLargeError, PlantainError

Render = Callable[[Request, PlantainError], Response]


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, render: Render) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self.render(Request(scope), self.too_large(declared))(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def too_large(self, size: int | None = None) -> PayloadTooLargeError:
        what = f"is {size} bytes, over" if size is not None else "was stopped once it passed"
        return PayloadTooLargeError(
            f"the request body {what} the limit of {self.max_bytes} bytes (max_body_bytes); send "
            "large images by URL, or fewer or smaller images",
            field="body",
        )

    def _counting(self, receive: Receive) -> Receive:
        """``receive``, raising PayloadTooLargeError once the body read so far passes the limit."""
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self.too_large()
            return message

        return counted


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
