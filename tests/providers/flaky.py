"""A remote that misbehaves on purpose: a real HTTP server in front of a real one.

:class:`FlakyRemote` answers its first ``fail`` POSTs with ``status`` (503, or 429 with a
Retry-After) and relays every later request to ``upstream`` (another Plantain server), recording
when each request came and what was relayed back, so a test can check the waits a provider kept
and that the images it handed out are the remote's own bytes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import httpx

from plantain.testing import BackgroundServer, reply


@dataclass
class Seen:
    method: str
    path: str
    at: float  # time.monotonic() when it came
    status: int
    body: bytes = field(repr=False, default=b"")  # what was answered


class FlakyRemote(BackgroundServer):
    def __init__(
        self, upstream: str, *, fail: int = 0, status: int = 503, retry_after: str | None = None
    ) -> None:
        self.upstream = upstream
        self.fail = fail
        self.status = status
        self.retry_after = retry_after
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())
        self.url = self.base

    def posts(self) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == "POST"]

    def _answer(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            failing = method == "POST" and len(self.posts()) < self.fail
            seen = Seen(method, handler.path, time.monotonic(), 0)
            self.seen.append(seen)
        if failing:
            headers = {"content-type": "application/json"}
            if self.retry_after is not None:
                headers["retry-after"] = self.retry_after
            message = (
                b'{"error": {"code": %d, "message": "try later", "status": "UNAVAILABLE"}}' % self.status
            )
            seen.status, seen.body = self.status, message
            reply(handler, self.status, message, headers)
            return
        forwarded = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        answer = httpx.request(
            method, self.upstream + handler.path, content=body, headers=forwarded, timeout=60
        )
        seen.status, seen.body = answer.status_code, answer.content
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")}
        reply(handler, answer.status_code, answer.content, kept)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                remote._answer(self, "GET")

            def do_POST(self) -> None:
                remote._answer(self, "POST")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
