"""A search API and a small web on a real port, for the grounding tests.

One server speaks both providers' public contracts: SearXNG's ``GET /search?q=…&format=json``
(web results, or image results with ``categories=images``) and the Brave Search API's ``GET
/res/v1/web/search`` and ``/res/v1/images/search`` (which need ``X-Subscription-Token``, 401
otherwise). The same answers are written in each provider's shape, from :attr:`SearchServer.web`
and :attr:`SearchServer.images`, whose URLs point back at this server: solid-colour PNGs at
``/img/<colour>.png``, a file that is not an image at ``/img/broken.png``, and a 404 at
``/img/missing.png``. Every request is recorded (path, query, headers), so a test can check what
was, and was not, asked for. :attr:`fail` / :attr:`malformed` / :attr:`delay` /
:attr:`redirect_to` make the API misbehave.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from plantain.testing import BackgroundServer, reply

KEY = "brave-test-key"
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}


@dataclass(frozen=True)
class Recorded:
    path: str
    query: dict[str, str]  # first value of each parameter
    headers: dict[str, str]  # lower-case names


def png(colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class SearchServer(BackgroundServer):
    def __init__(self) -> None:
        self.reset()
        self.files = {f"/img/{name}.png": png(colour) for name, colour in COLOURS.items()}
        self.files["/img/broken.png"] = b"\x89PNG\r\n\x1a\n not really a png"
        self._lock = threading.Lock()
        super().__init__(self._handler())
        self.web = [
            {"url": "https://example.org/bananas", "title": "All about <b>bananas</b>",
             "content": "Bananas are <strong>yellow</strong> &amp; curved."},
            {"url": "https://example.org/plantains", "title": "Plantains", "content": "Cooked, not raw."},
            {"url": "https://example.org/bananas", "title": "Duplicate", "content": "dropped"},
            {"title": "No URL", "content": "skipped"},
            {"url": "https://example.org/markets", "title": "Markets", "content": "Where they are sold."},
        ]  # fmt: skip
        self.images = [
            {"img_src": f"{self.base}/img/red.png", "url": "https://example.org/red", "title": "Red"},
            {
                "img_src": f"{self.base}/img/broken.png",
                "url": "https://example.org/broken",
                "title": "Broken",
            },
            {"img_src": f"{self.base}/img/green.png", "url": "https://example.org/green", "title": "Green"},
            {"img_src": f"{self.base}/img/missing.png", "url": "https://example.org/gone", "title": "Gone"},
            {"img_src": f"{self.base}/img/red.png", "url": "https://example.org/again", "title": "Again"},
            {"img_src": f"{self.base}/img/blue.png", "url": "https://example.org/blue", "title": "Blue"},
        ]

    def reset(self) -> None:
        """Forget the requests and behave again (a server shared by a module's tests: starting
        one costs nothing, but stopping one waits for its half-second poll)."""
        self.requests: list[Recorded] = []
        self.fail: int | None = None  # the API answers this status
        self.malformed = False  # the API answers a body that is not JSON
        self.delay = 0.0  # seconds the API waits before answering
        self.redirect_to: str | None = None  # the API redirects here (path and query kept)

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if not r.path.startswith("/img/")]

    def image_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/img/")]

    # --- answers ---------------------------------------------------------------------------------

    def answer(self, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        query = {name: values[0] for name, values in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append(Recorded(split.path, query, headers))
        if split.path in self.files:
            return 200, {"Content-Type": "image/png"}, self.files[split.path]
        if split.path.startswith("/img/"):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if self.redirect_to is not None:
            return 302, {"Location": self.redirect_to + target}, b""
        time.sleep(self.delay)
        if self.fail is not None:
            return _json(self.fail, {"error": "the search engine is down"})
        if self.malformed:
            return 200, {"Content-Type": "text/html"}, b"<html>not json</html>"
        if split.path == "/search":
            return self._searxng(query)
        if split.path.startswith("/res/v1/"):
            if headers.get("x-subscription-token") != KEY:
                return _json(401, {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}})
            return self._brave(split.path, query)
        return _json(404, {"error": f"no route {split.path}"})

    def _searxng(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if query.get("format") != "json":
            return 403, {"Content-Type": "text/html"}, b"Forbidden"  # as SearXNG without format json
        images = query.get("categories") == "images"
        results = [{**hit, "thumbnail_src": hit["img_src"]} for hit in self.images] if images else self.web
        return _json(
            200, {"query": query.get("q", ""), "number_of_results": len(results), "results": results}
        )

    def _brave(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        count = int(query.get("count", "20"))
        if path == "/res/v1/web/search":
            results = [
                {"title": hit.get("title"), "url": hit.get("url"), "description": hit.get("content")}
                for hit in self.web
            ]
            return _json(200, {"type": "search", "web": {"type": "search", "results": results[:count]}})
        if path == "/res/v1/images/search":
            images: list[dict[str, Any]] = [
                {
                    "type": "image_result",
                    "title": hit["title"],
                    "url": hit["url"],
                    "properties": {"url": hit["img_src"]},
                    "thumbnail": {"src": hit["img_src"] + "?thumb=1"},
                }
                for hit in self.images
            ]
            return _json(200, {"type": "images", "results": images[:count]})
        return _json(404, {"error": f"no route {path}"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                status, extra, data = server.answer(self.path, headers)
                with contextlib.suppress(OSError):  # the client may have given up (a timeout test)
                    reply(self, status, data, extra)

        return Handler


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
