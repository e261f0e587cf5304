"""The blocking client, :class:`Client`: the task API's methods over ``httpx.Client``.

The requests it sends are built in :mod:`plantain.client.wire`, shared with :class:`AsyncClient`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, Unpack

import httpx

from plantain.client.wire import (
    DEFAULT_TIMEOUT,
    NO_MORE_EVENTS,
    VERIFY_FIELD,
    VERIFY_PATH,
    Event,
    Output,
    Page,
    SubmitOptions,
    Task,
    _Backoff,
    _Base,
    _deadline,
    _expired,
    _given,
    _SSEParser,
    _unreachable,
    _upload,
    finished_task,
    raise_for_error,
)


class _Transport(_Base):
    """The HTTP under :class:`Client`: requests sent with the key and their errors raised, and
    event streams that reconnect where they left off. The task API's methods are the subclass's."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        http_client: httpx.Client | None,
        transport: httpx.BaseTransport | None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, headers=self._headers)

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


class Client(_Transport):
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
        super().__init__(base_url, api_key, timeout, http_client, transport)

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
