"""The event channel: how the scheduler's roles tell each other what happened, besides the store.

The store is the record (every task, every numbered event, every file); the channel only says
*now*. Three kinds of message travel on it:

- **task events** (``publish`` / ``subscribe``): each event the store recorded, for callers
  waiting on a task and for SSE streams. A subscriber reads the store after subscribing and skips
  what it already has, so a late subscriber misses nothing.
- **signals** (``signal`` / ``listen``): ``queued`` wakes the workers (they also poll the store
  every second, so a lost signal only delays a task) and ``cancel`` stops a running task at its
  next step (a run also reads its tasks' ``cancel_requested`` from the store every second, so a
  lost cancel only delays the stop).
- **previews** (``preview`` / ``watch_previews``): the intermediate images of a run (OpenAI's
  ``partial_images``), from the worker to the one caller streaming them. They are not recorded.

A message may carry what only a same-process channel can hand over (an *attachment*): the decoded
inputs a front door checked (on ``queued``), so the worker does not decode them again, and the
encoded images of a ``completed`` event, so a synchronous caller does not read its files back.
A cross-process channel drops attachments, and every receiver falls back to the store.

:class:`LocalChannel` is the in-process channel one server process uses today.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

from PIL import Image

from plantain.engines.base import EngineJob
from plantain.types import GeneratedImage, TaskEvent

SignalKind = Literal["queued", "cancel"]
Images = tuple[GeneratedImage, ...]
PreviewListener = Callable[[int, Image.Image], None]


@dataclass(frozen=True)
class Signal:
    """A control message between roles: a task was queued (``job``: its checked inputs, decoded,
    when the channel can carry them) or its caller asked to cancel it."""

    kind: SignalKind
    task_id: str
    job: EngineJob | None = None


SignalListener = Callable[[Signal], None]


class Subscription:
    """One subscriber's live events of one task, in the order they were published."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[TaskEvent, Images | None]] = asyncio.Queue()
        self.images: Images | None = None  # a completed event's images, when they came attached

    def put(self, event: TaskEvent, images: Images | None) -> None:
        self._queue.put_nowait((event, images))

    async def get(self) -> TaskEvent:
        event, images = await self._queue.get()
        if images is not None:
            self.images = images
        return event


class EventChannel(Protocol):
    """What the front door, the worker and finishing share besides the store."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop subscribers live on (the server's)."""

    def publish(self, event: TaskEvent, images: Images | None = None) -> None:
        """A recorded event, to its task's subscribers; never blocks the publisher."""

    def subscribe(self, task_id: str) -> AbstractContextManager[Subscription]:
        """Events of ``task_id`` published while the block runs."""

    def signal(self, signal: Signal) -> None:
        """A signal, to every listener."""

    def listen(self, listener: SignalListener) -> None:
        """Call ``listener`` with every signal from now on (on the signalling thread: keep it short)."""

    def preview(self, task_id: str, index: int, image: Image.Image) -> None:
        """A run's ``index``-th preview of ``task_id``, to whoever watches it (else dropped)."""

    def watch_previews(self, task_id: str, listener: PreviewListener) -> AbstractContextManager[None]:
        """Call ``listener`` (on the worker's thread) with each preview of ``task_id`` while the
        block runs."""


class LocalChannel:
    """The channel within one process: subscribers are asyncio queues on the server's loop, fed
    with ``call_soon_threadsafe`` so a publishing thread never waits on a slow reader; signal and
    preview listeners are called on the sending thread."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        self._listeners: list[SignalListener] = []
        # Several may watch one task's previews: its OpenAI stream and its task-API event streams.
        self._previews: dict[str, list[PreviewListener]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: TaskEvent, images: Images | None = None) -> None:
        with self._lock:
            subscribers = list(self._subscribers.get(event.task_id, ()))
        if self._loop is None or self._loop.is_closed():
            return
        for subscription in subscribers:
            self._loop.call_soon_threadsafe(subscription.put, event, images)

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[Subscription]:
        subscription = Subscription()
        with self._lock:
            self._subscribers.setdefault(task_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                subscribers = self._subscribers.get(task_id, set())
                subscribers.discard(subscription)
                if not subscribers:
                    self._subscribers.pop(task_id, None)

    def signal(self, signal: Signal) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(signal)

    def listen(self, listener: SignalListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def preview(self, task_id: str, index: int, image: Image.Image) -> None:
        with self._lock:
            listeners = list(self._previews.get(task_id, ()))
        for listener in listeners:
            listener(index, image)

    @contextmanager
    def watch_previews(self, task_id: str, listener: PreviewListener) -> Iterator[None]:
        with self._lock:
            self._previews.setdefault(task_id, []).append(listener)
        try:
            yield
        finally:
            with self._lock:
                watching = self._previews.get(task_id, [])
                watching.remove(listener)
                if not watching:
                    self._previews.pop(task_id, None)
