"""Helpers for testing Plantain and engines built on it, shipped with the package.

Tiny random-weight checkpoints are built with the real classes, saved with ``save_pretrained``
and loaded back through the same loader a downloaded checkpoint uses — from a directory, or by
hub id from a hub cache with the hub offline (:func:`install_in_hub_cache`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import numpy as np
from PIL import Image

from plantain.engines.base import Engine, Previews
from plantain.engines.checkpoints import install_in_hub_cache
from plantain.generation import prepare
from plantain.types import ImageRequest, InputImage


def build_once(builder: Callable[[Path], None], directory: Path) -> Path:
    """Build a checkpoint into ``directory`` unless one is already there."""
    if not (directory / "model_index.json").is_file():
        builder(directory)
    return directory


def make_input(
    width: int = 96,
    height: int = 64,
    color: tuple[int, int, int] = (200, 30, 30),
    fmt: str = "PNG",
    label: str = "input image",
) -> InputImage:
    """A small solid-colour input image encoded as ``fmt``."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return InputImage(data=buffer.getvalue(), label=label)


def last_step_preview(engine: Engine, request: ImageRequest) -> tuple[Image.Image, Image.Image]:
    """(A preview decoded from the final step's latents, the image the pipeline returned).

    They must match: a family whose preview decoding misreads its latents' layout fails here."""
    job = prepare(request, engine)
    previews: list[Image.Image] = []
    plan = Previews(frozenset({job.steps}), lambda index, image: previews.append(image))
    final = engine.run([job], previews=plan)[0][0]
    if len(previews) != 1:
        raise AssertionError(f"engine {engine.name} made {len(previews)} previews, expected 1")
    return previews[0], final


class LiveServer:
    """An ASGI app served by uvicorn on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def wait_ready(self, timeout: float = 60) -> str:
        """Its URL, once ``GET /readyz`` answers 200 (the engines it serves have loaded)."""
        deadline = time.monotonic() + timeout
        while (status := httpx.get(f"{self.url}/readyz").status_code) != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.url}/readyz still answers {status} after {timeout} s")
            time.sleep(0.05)
        return self.url

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def free_port() -> int:
    """A port nothing listens on now (for a server whose URL must be known before it starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Delivery:
    """One webhook request as the receiver got it, and the status it answered."""

    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class BackgroundServer:
    """A ThreadingHTTPServer on 127.0.0.1 that serves in a daemon thread while its ``with`` block
    lasts; :attr:`base` is its ``http://127.0.0.1:PORT``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.host_port = f"127.0.0.1:{self._server.server_address[1]}"
        self.base = f"http://{self.host_port}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read what was served
        pass


Route = Callable[[BaseHTTPRequestHandler], None]


class FileHost(BackgroundServer):
    """A web server for image URLs: ``GET /<name>`` answers :attr:`files` [name] (any type: the
    server sniffs it), ``routes`` [path] answers however it likes (redirects, slow bodies), else
    404. Allow-list its :attr:`host_port` in ``allowed_hosts`` for the server to fetch from it.
    :attr:`requests` holds the path of every request it got, in order (a test can check that a
    refused request fetched nothing)."""

    def __init__(self, routes: Mapping[str, Route] | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.routes = dict(routes or {})
        self.requests: list[str] = []
        host = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                host.requests.append(self.path)
                route = host.routes.get(self.path)
                if route is not None:
                    route(self)
                    return
                body = host.files.get(urlsplit(self.path).path.lstrip("/"))  # a query changes nothing
                reply(self, 200 if body is not None else 404, body or b"not here", {})

        super().__init__(Handler)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    """Answer ``handler``'s request with ``status``, ``headers`` and ``body`` (its length set)."""
    handler.send_response(status)
    for name, value in {**headers, "content-length": str(len(body))}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


class WebhookReceiver(BackgroundServer):
    """A webhook endpoint on 127.0.0.1 that records every delivery, as a user's receiver would.

    ``respond(n)`` picks the status for the n-th request (from 1), e.g. ``lambda n: 503 if n <= 3
    else 204`` for a receiver that fails its first three deliveries; the default accepts all.
    """

    def __init__(self, port: int = 0, respond: Callable[[int], int] = lambda n: 204) -> None:
        self.deliveries: list[Delivery] = []
        self._respond = respond
        self._lock = threading.Lock()
        super().__init__(self._handler_class(), port)
        self.url = f"{self.base}/hook"

    def wait_for(self, done: Callable[[list[Delivery]], bool], timeout: float = 60) -> list[Delivery]:
        """The deliveries so far, once ``done(deliveries)`` holds; AssertionError at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = list(self.deliveries)
            if done(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"webhooks not as expected after {timeout} s; got {len(seen)}")
            time.sleep(0.02)

    def _record(self, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = self._respond(len(self.deliveries) + 1)
            self.deliveries.append(Delivery(headers=headers, body=body, status=status))
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply(self, receiver._record(headers, body), b"", {})

        return Handler


class LocalHub(BackgroundServer):
    """A minimal Hugging Face hub on 127.0.0.1 that serves saved checkpoints.

    It answers the calls ``snapshot_download`` makes (revision info, file tree, file HEAD/GET), so
    ``plantain pull`` can be tested against a real HTTP server: point ``HF_ENDPOINT`` at
    :attr:`endpoint` in the process that pulls.
    """

    COMMIT = "f" * 40

    def __init__(self, repos: Mapping[str, Path]) -> None:
        self.repos = {repo: _files_of(directory) for repo, directory in repos.items()}
        self.requests: list[str] = []
        super().__init__(self._handler_class())
        self.endpoint = self.base

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for a request path."""
        self.requests.append(path)
        for repo, files in self.repos.items():
            if path.startswith(f"/api/models/{repo}/tree/"):
                tree = [
                    {"type": "file", "path": name, "size": len(data), "oid": _sha(data)}
                    for name, data in files.items()
                ]
                return _json(tree)
            if path.startswith(f"/api/models/{repo}/revision/"):
                return _json(
                    {"id": repo, "sha": self.COMMIT, "siblings": [{"rfilename": name} for name in files]}
                )
            if path.startswith(f"/{repo}/resolve/"):
                name = path.removeprefix(f"/{repo}/resolve/").split("/", 1)[1]
                if name in files:
                    headers = {"X-Repo-Commit": self.COMMIT, "ETag": f'"{_sha(files[name])}"'}
                    return 200, headers, files[name]
        return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b""

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                status, headers, body = hub.answer(self.path.split("?")[0])
                reply(self, status, body, headers)

            def do_HEAD(self) -> None:  # the GET's status and headers (its length too), no body
                status, headers, body = hub.answer(self.path.split("?")[0])
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()

        return Handler


def _files_of(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(payload: object) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


# Two files of one seed differ only by their provenance marks (a watermark with each task's own
# serial is about 40 dB from the unmarked picture); pictures of two seeds are far below this.
SAME_PICTURE_PSNR = 35.0


def psnr(a: bytes, b: bytes) -> float:
    """Peak signal-to-noise ratio (dB) between two encoded images of one size; inf when equal."""
    first, second = (
        np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64) for data in (a, b)
    )
    if first.shape != second.shape:
        raise ValueError(f"the images differ in size: {first.shape[:2]} and {second.shape[:2]}")
    mean_square = float(np.mean((first - second) ** 2))
    return math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)


def same_picture(a: bytes, b: bytes) -> bool:
    """Whether two encoded images show the same picture, whatever provenance marks each carries."""
    return psnr(a, b) >= SAME_PICTURE_PSNR


__all__ = [
    "SAME_PICTURE_PSNR",
    "Delivery",
    "LiveServer",
    "LocalHub",
    "WebhookReceiver",
    "build_once",
    "free_port",
    "install_in_hub_cache",
    "make_input",
    "psnr",
    "same_picture",
]
