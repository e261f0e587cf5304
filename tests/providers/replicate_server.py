"""A small Replicate predictions API on a real port, for the Replicate provider's tests.

It speaks the public contract the provider relies on: ``POST /v1/models/{owner}/{name}/predictions``
answers 201 with a prediction (finished when ``Prefer: wait`` was sent and :attr:`ReplicateServer.mode`
is ``"wait"``; ``starting`` in ``"poll"`` mode, finishing after ``polls`` reads of ``GET
/v1/predictions/{id}``; never in ``"stuck"`` mode), ``POST /v1/predictions/{id}/cancel``, output
files served at ``/files/…`` without a key (as Replicate's delivery URLs are), and every error as
RFC 7807 problem JSON. The image it makes is a solid colour picked from prompt and seed, at a
small size of the asked aspect ratio (or the first input's size for ``match_input_image``), so a
test can tell seeds apart and check what reached it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any, Literal, Self

from PIL import Image

from plantain.testing import BackgroundServer, reply

CREATE = re.compile(r"/v1/models/([^/]+)/([^/]+)/predictions")
PREDICTION = re.compile(r"/v1/predictions/([^/]+)(/cancel)?")
SIDE = 64  # the short side of every image made


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # decoded JSON, or None


@dataclass
class ReplicateServer:
    key: str = "r8_test_key"
    mode: Literal["wait", "poll", "stuck"] = "wait"
    polls: int = 2  # poll mode: reads of a prediction before it has succeeded
    rate_limited: int = 0  # creates answered 429 before one is accepted
    retry_after: str = "1"
    fail_with: str | None = None  # a prediction's error: it fails instead of succeeding
    requests: list[Recorded] = field(default_factory=list)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._reads: dict[str, int] = {}
        self._outputs: dict[str, str] = {}
        self._http = BackgroundServer(self._handler())
        self.base = self._http.base

    def __enter__(self) -> Self:
        self._http.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.__exit__(kind, value, tb)

    def creates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and CREATE.fullmatch(r.path)]

    # --- the API ---------------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(Recorded(method, path, headers, body))
            if method == "GET" and path.startswith("/files/"):
                data = self.files.get(path.removeprefix("/files/"))
                if data is None:
                    return problem(404, "Not found", "no such file")
                return 200, {"Content-Type": "image/jpeg" if path.endswith(".jpg") else "image/png"}, data
            if headers.get("authorization") != f"Bearer {self.key}":
                return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
            created = CREATE.fullmatch(path)
            if method == "POST" and created:
                return self._create(f"{created[1]}/{created[2]}", headers, body)
            found = PREDICTION.fullmatch(path)
            if found is None or found[1] not in self.predictions:
                return problem(404, "Not found", f"{path} is not a prediction")
            prediction = self.predictions[found[1]]
            if method == "POST" and found[2]:
                if prediction["status"] not in {"succeeded", "failed", "canceled", "aborted"}:
                    prediction["status"] = "canceled"
                return _json(200, prediction)
            if method == "GET" and not found[2]:
                self._advance(prediction)
                return _json(200, prediction)
            return problem(405, "Method not allowed", f"{method} {path}")

    def _create(self, model: str, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], bytes]:
        if self.rate_limited > 0:
            self.rate_limited -= 1
            status, extra, data = problem(429, "Request was throttled", "Request was throttled.")
            return status, {**extra, "Retry-After": self.retry_after}, data
        inputs = body.get("input") if isinstance(body, dict) else None
        if not isinstance(inputs, dict) or not isinstance(inputs.get("prompt"), str):
            return problem(422, "Input validation failed", "input: prompt is required")
        if inputs.get("output_format", "jpg") not in {"jpg", "png"}:
            return problem(422, "Input validation failed", "input.output_format: must be jpg or png")
        number = len(self.predictions) + 1
        pid = f"pred{number:04d}"
        name = f"{pid}.{inputs.get('output_format', 'jpg')}"
        self.files[name] = make_image(inputs)
        self._outputs[pid] = f"{self.base}/files/{name}"
        prediction: dict[str, Any] = {
            "id": pid,
            "model": model,
            "version": "hidden",
            "input": inputs,
            "output": None,
            "logs": "",
            "error": None,
            "status": "starting",
            "created_at": "2026-01-01T00:00:00.000Z",
            "started_at": None,
            "completed_at": None,
            "data_removed": False,
            "metrics": {},
            "urls": {
                "get": f"{self.base}/v1/predictions/{pid}",
                "cancel": f"{self.base}/v1/predictions/{pid}/cancel",
                "stream": f"{self.base}/v1/predictions/{pid}/stream",
                "web": f"https://replicate.com/p/{pid}",
            },
        }
        self.predictions[pid] = prediction
        self._reads[pid] = 0
        if self.mode == "wait" and headers.get("prefer", "").startswith("wait"):
            self._finish(prediction)
        return _json(201, prediction)

    def _advance(self, prediction: dict[str, Any]) -> None:
        if prediction["status"] in {"succeeded", "failed", "canceled", "aborted"}:
            return
        if self.mode == "stuck":
            prediction["status"] = "processing"
            return
        self._reads[prediction["id"]] += 1
        if self._reads[prediction["id"]] >= self.polls:
            self._finish(prediction)
        else:
            prediction["status"] = "processing"

    def _finish(self, prediction: dict[str, Any]) -> None:
        prediction["started_at"] = prediction["completed_at"] = "2026-01-01T00:00:01.000Z"
        prediction["metrics"] = {"predict_time": 0.5, "total_time": 1.0}
        if self.fail_with is not None:
            prediction.update(status="failed", error=self.fail_with)
        else:
            prediction.update(status="succeeded", output=self._outputs[prediction["id"]])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:  # answered as a body with no input: 422
                    body = None
                status, extra, data = server.answer(self.command, self.path, headers, body)
                reply(self, status, data, extra)

            do_GET = do_POST = _serve

        return Handler


def make_image(inputs: dict[str, Any]) -> bytes:
    """A solid colour from prompt and seed, shaped by ``aspect_ratio``, encoded as asked."""
    digest = hashlib.sha256(f"{inputs['prompt']}|{inputs.get('seed')}".encode()).digest()
    ratio = inputs.get("aspect_ratio") or "1:1"
    if ratio == "match_input_image" and inputs.get("image_input"):
        first = base64.b64decode(str(inputs["image_input"][0]).split(",", 1)[1])
        size = Image.open(io.BytesIO(first)).size
    else:
        wide, high = (int(side) for side in ("1:1" if ratio == "match_input_image" else ratio).split(":"))
        size = (SIDE * wide // min(wide, high), SIDE * high // min(wide, high))
    buffer = io.BytesIO()
    jpeg = inputs.get("output_format", "jpg") == "jpg"
    Image.new("RGB", size, tuple(digest[:3])).save(buffer, format="JPEG" if jpeg else "PNG")
    return buffer.getvalue()


def problem(status: int, title: str, detail: str) -> tuple[int, dict[str, str], bytes]:
    """An RFC 7807 problem, as Replicate's API writes its errors."""
    body = {
        "type": f"https://replicate.com/docs/errors#{status}",
        "title": title,
        "detail": detail,
        "status": status,
    }
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()
