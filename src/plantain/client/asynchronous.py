"""The asyncio client, :class:`AsyncClient`: :class:`~plantain.client.Client`'s methods as coroutines.

The requests it sends are built in :mod:`plantain.client.wire`, shared with the blocking client.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
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


class _AsyncTransport(_Base):
    """The HTTP under :class:`AsyncClient`: requests sent with the key and their errors raised, and
    event streams that reconnect where they left off. The task API's methods are the subclass's."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        super().__init__(base_url, api_key, timeout)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, headers=self._headers)

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


class AsyncClient(_AsyncTransport):
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
        super().__init__(base_url, api_key, timeout, http_client, transport)

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
