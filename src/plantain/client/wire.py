"""What the task API speaks, for both clients: its answers as models, input encoding, error mapping,
the event-stream parser and the connection settings and request building they share.

:mod:`plantain.client.blocking` and :mod:`plantain.client.asynchronous` send the requests built here;
nothing here does I/O except reading an input image a caller named by path.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Generator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from plantain import __version__
from plantain.errors import (
    InvalidRequestError,
    PlantainError,
    QueueFullError,
    ServerUnreachableError,
    ShuttingDownError,
    TaskCancelledError,
    error_from_code,
)
from plantain.types import TERMINAL_EVENTS, TERMINAL_STATUSES, Usage

DEFAULT_SERVER = "http://127.0.0.1:8000"
VERIFY_PATH, VERIFY_FIELD = "/v1/provenance/verify", "file"
DEFAULT_TIMEOUT = 30.0  # seconds for one ordinary request; waits and streams get their own
STREAM_IDLE_SECONDS = 120.0  # the event stream sends nothing while a task queues: reconnect then
MAX_RECONNECTS = 5  # consecutive failed connections before a stream gives up
NO_MORE_EVENTS = 204  # the event stream's answer to a resume past a finished task's end
# Answers without a Plantain envelope (a proxy's, say): the error their status stands for.
CODES_BY_STATUS = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    429: "queue_full",
    499: "cancelled",
    502: "server_unreachable",
    503: "server_unreachable",
    504: "server_unreachable",
}
IMAGE_SIGNATURES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}


# --- what the task API answers (permissive: a newer server may add fields) ------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Output(_Wire):
    """One output image: fetch its bytes with ``client.download(output)``."""

    url: str
    media_type: str = "image/png"
    width: int
    height: int
    seed: int


class TaskOutput(_Wire):
    images: list[Output] = Field(default_factory=list)
    steps: int | None = None
    guidance: float | None = None
    seconds: float | None = None
    # The planner stage's answer text and the prompt the engine got (docs/planner.md); None
    # when the stage did not run.
    description: str | None = None
    revised_prompt: str | None = None
    # What search grounding searched and found (docs/grounding.md): provider, queries, sources,
    # references (``used`` marks those the engine got), seconds, searches; None when not grounded.
    grounding: dict[str, Any] | None = None


class ErrorInfo(_Wire):
    code: str
    message: str
    field: str | None = None
    status: int | None = None
    category: str | None = None  # content_blocked: the safety category that matched


class Task(_Wire):
    """A task as ``GET /v1/tasks/{id}`` shows it."""

    id: str
    status: str  # queued, running, succeeded, failed, cancelled
    model: str | None = None
    engine: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    output: TaskOutput | None = None
    error: ErrorInfo | None = None
    usage: Usage | None = None  # tokens, images, device seconds and cost, once it has ended
    attempts: int = 0
    cancel_requested: bool = False  # a running task stops at its next step
    queue_position: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def outputs(self) -> list[Output]:
        return self.output.images if self.output else []


class Page(_Wire):
    data: list[Task]
    next_cursor: str | None = None


class Event(_Wire):
    """One numbered task event; ``data`` holds the rest (``position``, ``step``/``total``,
    ``outputs``, ``code``/``message``, …) as docs/tasks.md lists them."""

    type: str  # queued, started, progress, completed, failed, cancelled
    seq: int
    task_id: str
    created_at: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> Event:
        own = set(cls.model_fields) - {"data"}
        data = {key: value for key, value in payload.items() if key not in own}
        return cls.model_validate({**{key: payload[key] for key in own if key in payload}, "data": data})

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


class SubmitOptions(TypedDict, total=False):
    """What ``submit`` and ``run`` take besides the model and input (docs/tasks.md)."""

    webhook: str | None  # a URL that gets a signed POST for each event
    webhook_events_filter: list[str] | None  # which events (default all)
    idempotency_key: str | None  # the same key and body answer the first task again


# --- pieces both clients share ---------------------------------------------------------------------


class _ServerKey(httpx.Auth):
    """The API key as a bearer token, to the configured server only: output URLs are absolute
    and may name another host (``public_url``, a proxy); the key must not follow them there."""

    def __init__(self, key: str | None, base_url: str) -> None:
        self._key = key
        self._origin = _origin(httpx.URL(base_url))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._key and _origin(request.url) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        yield request


class _Base:
    def __init__(self, base_url: str | None, api_key: str | None, timeout: float) -> None:
        self.base_url = (base_url or os.environ.get("PLANTAIN_SERVER") or DEFAULT_SERVER).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("PLANTAIN_API_KEY")
        self._auth = _ServerKey(key or None, self.base_url)
        self._timeout = timeout
        self._headers = {"user-agent": f"plantain-client/{__version__}"}

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    def _task_path(self, task_id: str, suffix: str = "") -> str:
        return f"/v1/tasks/{quote(task_id, safe='')}{suffix}"

    def _events_call(self, task_id: str, after: int, deadline: float | None) -> dict[str, Any]:
        read = STREAM_IDLE_SECONDS if deadline is None else max(0.01, deadline - time.monotonic())
        return {
            "url": self._url(self._task_path(task_id, "/events")),
            "headers": {"Last-Event-ID": str(after)} if after else {},
            "timeout": httpx.Timeout(self._timeout, read=min(read, STREAM_IDLE_SECONDS)),
            "auth": self._auth,
        }

    def _submit_call(
        self, model: str | None, input: Mapping[str, Any], wait: bool | float | None, options: SubmitOptions
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"input": encode_input(input)}
        optional = {
            "model": model,
            "webhook": options.get("webhook"),
            "webhook_events_filter": options.get("webhook_events_filter"),
        }
        body |= _given(optional)
        key = options.get("idempotency_key")
        headers = {"Idempotency-Key": key} if key else {}
        read = self._timeout
        if wait:  # True, or seconds
            headers["Prefer"] = "wait" if wait is True else f"wait={wait:g}"
            read += 60.0 if wait is True else float(wait)  # the server holds the answer that long
        return {"json": body, "headers": headers, "timeout": httpx.Timeout(self._timeout, read=read)}


class _Backoff:
    """Reconnection pacing for event streams: only connections that fail count toward the limit."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._failures = 0

    def connected(self) -> None:
        self._failures = 0

    def failed(self, exc: httpx.TransportError) -> None:
        self._failures += 1
        if self._failures > MAX_RECONNECTS:
            raise _unreachable(self._base_url, exc) from None

    def delay(self) -> float:
        return min(0.2 * 2.0**self._failures, 5.0)


class _SSEParser:
    """Lines of ``text/event-stream`` in, events out (one per blank-line-terminated block), across
    reconnections: only events numbered after :attr:`last` come out, so none is repeated."""

    def __init__(self, after: int) -> None:
        self.last = after
        self._data: list[str] = []

    def reconnected(self) -> None:
        self._data = []  # a block the old connection cut short is sent again in full

    def feed(self, line: str) -> Event | None:
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        if line or not self._data:
            return None  # id:/event: lines repeat what data holds; ':' lines are comments
        payload, self._data = "\n".join(self._data), []
        event = Event.parse(json.loads(payload))
        if event.seq <= self.last:
            return None
        self.last = event.seq
        return event


def encode_input(input: Mapping[str, Any]) -> dict[str, Any]:
    """``input`` as JSON: ``images`` entries that are bytes or paths become ``data:`` URIs
    (a ``str`` is sent as it is: a ``data:`` URI, base64 or a URL the server fetches)."""
    encoded = dict(input)
    images = encoded.get("images")
    if isinstance(images, str | bytes | os.PathLike):  # one image where a list belongs
        raise InvalidRequestError(
            f"input.images: a list of images is expected, got one {type(images).__name__}; wrap it in a list",
            field="input.images",
        )
    if images is not None:
        encoded["images"] = [_image_value(value, index) for index, value in enumerate(images)]
    return encoded


def _image_value(value: object, index: int) -> str:
    if isinstance(value, str):
        return value
    data = _image_bytes(value, f"input.images[{index}]")
    media_type = next((kind for sig, kind in IMAGE_SIGNATURES.items() if data.startswith(sig)), None)
    if media_type is None:
        media_type = "image/webp" if data[8:12] == b"WEBP" else "application/octet-stream"
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _image_bytes(value: object, field: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, os.PathLike):
        raise InvalidRequestError(
            f"{field}: {type(value).__name__} is not an image; send bytes, a Path "
            "or a str (a data: URI, base64 or a URL)",
            field=field,
        )
    try:
        return Path(value).read_bytes()
    except OSError as exc:
        raise InvalidRequestError(
            f"{field}: cannot read input image {value}: {exc.strerror or exc}", field=field
        ) from None


def raise_for_error(response: httpx.Response) -> None:
    """A non-2xx answer as the PlantainError its envelope names (``read()`` a stream first)."""
    if response.is_success:
        return
    code, message, field = _error_parts(response)
    error = error_from_code(code, message, field)
    if isinstance(error, QueueFullError | ShuttingDownError):
        with contextlib.suppress(ValueError):
            error.retry_after = int(response.headers.get("retry-after", "1"))
    raise error


def _error_parts(response: httpx.Response) -> tuple[str, str, str | None]:
    """(code, message, field) from the task envelope ``{error: {code, message, field}}`` or the
    OpenAI one (``/v1/files`` speaks it: ``param``), else from the status alone."""
    fallback = CODES_BY_STATUS.get(response.status_code, "internal")
    with contextlib.suppress(ValueError):
        body = response.json()
        detail = body.get("error") if isinstance(body, dict) else None
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            field = detail.get("field") or detail.get("param")
            return detail.get("code") or fallback, detail["message"], field
    request = response.request
    text = response.text.strip()[:200]
    return fallback, f"{request.method} {request.url} answered {response.status_code}: {text}", None


def finished_task(task: Task) -> Task:
    """``task`` if it succeeded; its error raised again if it failed or was cancelled."""
    if task.status == "succeeded":
        return task
    if task.status == "cancelled":
        raise TaskCancelledError(f"task {task.id} was cancelled")
    if task.error is not None:
        raise error_from_code(task.error.code, task.error.message, task.error.field, task.error.category)
    raise PlantainError(f"task {task.id} is {task.status}, not finished")


def _unreachable(base_url: str, exc: httpx.TransportError) -> ServerUnreachableError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachableError(f"the Plantain server at {base_url} did not answer in time ({reason})")
    return ServerUnreachableError(
        f"cannot reach the Plantain server at {base_url} ({reason}); is it running? "
        "Start one with 'plantain serve', or pass --server / set PLANTAIN_SERVER to where it runs"
    )


def _upload(image: bytes | Path) -> tuple[str, bytes]:
    """A multipart file: its name (a path's own) and bytes."""
    if isinstance(image, Path):
        return image.name, image.read_bytes()
    return "image", image


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that were given (not None): the server fills in the rest."""
    return {key: value for key, value in values.items() if value is not None}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
