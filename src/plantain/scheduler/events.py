"""Live task events for waiting callers and SSE streams; the store keeps them for replay.

The worker thread publishes; subscribers are asyncio queues on the server's event loop, fed with
``call_soon_threadsafe`` so the worker never blocks on a slow reader.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from plantain.types import TaskEvent


class EventBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[TaskEvent]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop subscribers live on (the server's)."""
        self._loop = loop

    def publish(self, event: TaskEvent) -> None:
        with self._lock:
            queues = list(self._subscribers.get(event.task_id, ()))
        if self._loop is None or self._loop.is_closed():
            return
        for queue in queues:
            self._loop.call_soon_threadsafe(queue.put_nowait, event)

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[asyncio.Queue[TaskEvent]]:
        """Events of ``task_id`` published while the block runs (subscribe before reading the
        store, then skip what the store already gave, so none is missed between the two)."""
        queue: asyncio.Queue[TaskEvent] = asyncio.Queue()
        with self._lock:
            self._subscribers.setdefault(task_id, set()).add(queue)
        try:
            yield queue
        finally:
            with self._lock:
                subscribers = self._subscribers.get(task_id, set())
                subscribers.discard(queue)
                if not subscribers:
                    self._subscribers.pop(task_id, None)
