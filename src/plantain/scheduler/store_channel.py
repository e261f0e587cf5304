"""The event channel across processes: the shared store is the only link between a front door and
a worker in another process (or on another machine), so this channel reads what it carries back
from the store.

- **task events**: each process polls ``task_events`` every ``poll_seconds`` for the tasks its
  callers are watching (one query for all of them) and hands new ones to their subscribers. An
  event published in this same process is handed over at once, and not again by the poll.
- **signals**: a ``queued`` signal wakes this process's worker; workers elsewhere find the task
  at their next idle poll (also every ``poll_seconds``). A ``cancel`` reaches a worker elsewhere
  through ``cancel_requested``, which a run reads every second.
- **previews** stay in the process that made them: a streaming caller whose task runs in another
  process gets its final image but no partial ones.

Polling rather than PostgreSQL's LISTEN/NOTIFY: it needs no second connection per process, works
the same on the embedded database, and costs one indexed query per ``poll_seconds`` per front
door; ``bench/scaling.py`` measures the event latency it adds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from PIL import Image

from plantain.scheduler.channel import (
    Images,
    LocalChannel,
    PreviewListener,
    Signal,
    SignalListener,
    Subscription,
)
from plantain.storage.tasks import TaskStore
from plantain.types import TaskEvent

logger = logging.getLogger(__name__)


class StoreChannel:
    """The channel of a process that shares its store with others (``database_url``)."""

    def __init__(self, store: TaskStore, poll_seconds: float) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._local = LocalChannel()  # this process's subscribers and listeners
        self._watched: dict[str, int] = {}  # task id -> the last seq handed to its subscribers
        self._watchers: dict[str, int] = {}  # task id -> how many subscriptions watch it
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._local.bind(loop)
        self._thread = threading.Thread(target=self._poll, name="plantain-events", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(5)

    def publish(self, event: TaskEvent, images: Images | None = None) -> None:
        if self._advance(event):
            self._local.publish(event, images)

    @contextmanager
    def subscribe(self, task_id: str) -> Iterator[Subscription]:
        newest = self._store.last_seq(task_id)  # read outside the lock publishers take
        with self._lock:
            # From the newest event now: the subscriber reads the store itself after this.
            self._watched.setdefault(task_id, newest)
            self._watchers[task_id] = self._watchers.get(task_id, 0) + 1
        try:
            with self._local.subscribe(task_id) as subscription:
                yield subscription
        finally:
            with self._lock:
                self._watchers[task_id] -= 1
                if not self._watchers[task_id]:
                    del self._watchers[task_id], self._watched[task_id]

    def signal(self, signal: Signal) -> None:
        self._local.signal(signal)

    def listen(self, listener: SignalListener) -> None:
        self._local.listen(listener)

    def preview(self, task_id: str, index: int, image: Image.Image) -> None:
        self._local.preview(task_id, index, image)

    def watch_previews(self, task_id: str, listener: PreviewListener) -> AbstractContextManager[None]:
        return self._local.watch_previews(task_id, listener)

    def _advance(self, event: TaskEvent) -> bool:
        """Whether ``event`` is new to this process's subscribers (and count it as handed over)."""
        with self._lock:
            last = self._watched.get(event.task_id)
            if last is None or event.seq <= last:
                return False
            self._watched[event.task_id] = event.seq
            return True

    def _poll(self) -> None:
        while not self._stopped.wait(self._poll_seconds):
            with self._lock:
                watched = dict(self._watched)
            if not watched:
                continue
            try:
                events = self._store.events_since(watched)
            except Exception:  # a store hiccup: the next poll tries again
                logger.exception("reading task events failed")
                continue
            for event in events:
                self.publish(event)
