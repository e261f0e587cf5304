"""A Python client for Plantain's task API: :class:`Client` (blocking) and :class:`AsyncClient`.

It needs only ``httpx`` and pydantic (no torch), so a machine that only talks to a server
installs light. Both clients speak the same methods::

    with Client("http://gpu-box:8000", api_key="...") as client:
        task = client.run("flux2-klein-4b", {"prompt": "a red bicycle", "images": [Path("in.png")]})
        data = client.download(task.outputs[0])

``input`` is the task API's ``input`` object (see docs/tasks.md); its ``images`` may hold raw
``bytes`` or a :class:`~pathlib.Path` (sent as ``data:`` URIs) besides the strings the API takes.
Server errors come back as the matching :class:`~plantain.errors.PlantainError` subclass.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack
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


# --- the blocking client ---------------------------------------------------------------------------


class Client(_Base):
    """The task API over blocking HTTP. ``base_url`` defaults to ``$PLANTAIN_SERVER``, then
    http://127.0.0.1:8000; ``api_key`` to ``$PLANTAIN_API_KEY``. Pass ``http_client`` (not
    closed here) or ``transport`` to route requests your own way (tests, proxies)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, headers=self._headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def submit(
        self,
        model: str | None,
        input: Mapping[str, Any],
        *,
        wait: bool | float | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Task:
        """Queue a task. ``wait=True`` (or seconds, at most 60) holds the answer until it ends."""
        call = self._submit_call(model, input, wait, options)
        return Task.model_validate(self._request("POST", "/v1/tasks", **call).json())

    def get(self, task_id: str) -> Task:
        return Task.model_validate(self._request("GET", self._task_path(task_id)).json())

    def list(self, status: str | None = None, *, limit: int = 20, cursor: str | None = None) -> Page:
        """One page, newest first; pass ``page.next_cursor`` as ``cursor`` for the next."""
        query = _given({"status": status, "limit": limit, "cursor": cursor})
        return Page.model_validate(self._request("GET", "/v1/tasks", params=query).json())

    def iter_tasks(self, status: str | None = None, *, page_size: int = 100) -> Iterator[Task]:
        """Every task (with ``status``), newest first, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(status, limit=page_size, cursor=cursor)
            yield from page.data
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, task_id: str) -> Task:
        """A queued task ends at once, a running one at its next step, an ended one stays."""
        return Task.model_validate(self._request("POST", self._task_path(task_id, "/cancel")).json())

    def stream(self, task_id: str, *, after: int = 0) -> Iterator[Event]:
        """The task's events after number ``after``, live, until its last. A dropped connection
        is resumed with ``Last-Event-ID``: no event is missed or repeated."""
        return self._events(task_id, after, None)

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once it has ended, or as it is when ``timeout`` seconds pass."""
        deadline = _deadline(timeout)
        for _ in self._events(task_id, 0, deadline):
            pass
        return self.get(task_id)

    def run(
        self,
        model: str | None,
        input: Mapping[str, Any],
        *,
        on_event: Callable[[Event], object] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Task:
        """Submit and wait for the end: the succeeded task, or its error raised (TaskCancelledError
        for a cancelled one). ``on_event`` sees every event as it happens (for progress)."""
        if on_event is None:  # one round trip for a task that ends within the server's wait
            task = self.submit(model, input, **options, wait=True)
            return finished_task(task if task.finished else self.wait(task.id))
        task = self.submit(model, input, **options)
        for event in self.stream(task.id):
            on_event(event)
        return finished_task(self.get(task.id))

    def download(self, output: Output | str) -> bytes:
        """An output's bytes (an :class:`Output`, or its URL, absolute or ``/v1/files/…``)."""
        return self._request("GET", output.url if isinstance(output, Output) else output).content

    def verify(self, image: bytes | Path) -> dict[str, Any]:
        """Who made ``image`` (bytes or a file), by its content credentials and watermark: the
        server's report (docs/provenance.md), with ``verdict`` as one line for people."""
        files = {VERIFY_FIELD: _upload(image)}
        return dict(self._request("POST", VERIFY_PATH, files=files).json())

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", self._timeout)
        try:
            response = self._http.request(method, self._url(path), auth=self._auth, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from None
        raise_for_error(response)
        return response

    def _events(self, task_id: str, after: int, deadline: float | None) -> Iterator[Event]:
        backoff, parser = _Backoff(self.base_url), _SSEParser(after)
        while not _expired(deadline):
            try:
                with self._open_events(task_id, parser.last, deadline) as response:
                    backoff.connected()
                    if response.status_code == NO_MORE_EVENTS:
                        return  # the task ended at or before the last event seen
                    parser.reconnected()
                    for line in response.iter_lines():
                        if (event := parser.feed(line)) is not None:
                            yield event
                            if event.terminal:
                                return
            except httpx.TransportError as exc:
                if _expired(deadline):
                    return
                backoff.failed(exc)
            time.sleep(backoff.delay())

    @contextlib.contextmanager
    def _open_events(self, task_id: str, after: int, deadline: float | None) -> Iterator[httpx.Response]:
        with self._http.stream("GET", **self._events_call(task_id, after, deadline)) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            yield response


# --- the asyncio client ----------------------------------------------------------------------------


class AsyncClient(_Base):
    """:class:`Client`'s methods as coroutines (``stream`` and ``iter_tasks`` iterate with
    ``async for``); ``http_client`` is an ``httpx.AsyncClient``, ``transport`` an async one."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, headers=self._headers)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def submit(
        self,
        model: str | None,
        input: Mapping[str, Any],
        *,
        wait: bool | float | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Task:
        call = self._submit_call(model, input, wait, options)
        return Task.model_validate((await self._request("POST", "/v1/tasks", **call)).json())

    async def get(self, task_id: str) -> Task:
        return Task.model_validate((await self._request("GET", self._task_path(task_id))).json())

    async def list(self, status: str | None = None, *, limit: int = 20, cursor: str | None = None) -> Page:
        query = _given({"status": status, "limit": limit, "cursor": cursor})
        return Page.model_validate((await self._request("GET", "/v1/tasks", params=query)).json())

    async def iter_tasks(self, status: str | None = None, *, page_size: int = 100) -> AsyncIterator[Task]:
        cursor: str | None = None
        while True:
            page = await self.list(status, limit=page_size, cursor=cursor)
            for task in page.data:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, task_id: str) -> Task:
        response = await self._request("POST", self._task_path(task_id, "/cancel"))
        return Task.model_validate(response.json())

    def stream(self, task_id: str, *, after: int = 0) -> AsyncIterator[Event]:
        return self._events(task_id, after, None)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        async for _ in self._events(task_id, 0, _deadline(timeout)):
            pass
        return await self.get(task_id)

    async def run(
        self,
        model: str | None,
        input: Mapping[str, Any],
        *,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        **options: Unpack[SubmitOptions],
    ) -> Task:
        """As :meth:`Client.run`; ``on_event`` may be a plain function or a coroutine function."""
        if on_event is None:
            task = await self.submit(model, input, **options, wait=True)
            return finished_task(task if task.finished else await self.wait(task.id))
        task = await self.submit(model, input, **options)
        async for event in self.stream(task.id):
            outcome = on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        return finished_task(await self.get(task.id))

    async def download(self, output: Output | str) -> bytes:
        url = output.url if isinstance(output, Output) else output
        return (await self._request("GET", url)).content

    async def verify(self, image: bytes | Path) -> dict[str, Any]:
        files = {VERIFY_FIELD: _upload(image)}
        return dict((await self._request("POST", VERIFY_PATH, files=files)).json())

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", self._timeout)
        try:
            response = await self._http.request(method, self._url(path), auth=self._auth, **kwargs)
        except httpx.TransportError as exc:
            raise _unreachable(self.base_url, exc) from None
        raise_for_error(response)
        return response

    async def _events(self, task_id: str, after: int, deadline: float | None) -> AsyncIterator[Event]:
        backoff, parser = _Backoff(self.base_url), _SSEParser(after)
        while not _expired(deadline):
            try:
                async with self._open_events(task_id, parser.last, deadline) as response:
                    backoff.connected()
                    if response.status_code == NO_MORE_EVENTS:
                        return  # the task ended at or before the last event seen
                    parser.reconnected()
                    async for line in response.aiter_lines():
                        if (event := parser.feed(line)) is not None:
                            yield event
                            if event.terminal:
                                return
            except httpx.TransportError as exc:
                if _expired(deadline):
                    return
                backoff.failed(exc)
            await asyncio.sleep(backoff.delay())

    @contextlib.asynccontextmanager
    async def _open_events(
        self, task_id: str, after: int, deadline: float | None
    ) -> AsyncIterator[httpx.Response]:
        async with self._http.stream("GET", **self._events_call(task_id, after, deadline)) as response:
            if not response.is_success:
                await response.aread()
                raise_for_error(response)
            yield response


__all__ = [
    "AsyncClient",
    "Client",
    "ErrorInfo",
    "Event",
    "Output",
    "Page",
    "Task",
    "TaskOutput",
    "encode_input",
    "finished_task",
    "raise_for_error",
]
