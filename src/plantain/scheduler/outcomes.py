"""How a task's end is recorded and announced, for the worker and finishing alike: the store
first (the record), then the channel (the news), then the webhook outbox's sender woken."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from plantain.errors import EngineRunError, PlantainError, TaskCancelledError
from plantain.logs import task_context
from plantain.scheduler.channel import EventChannel, Images
from plantain.storage.tasks import TaskStore
from plantain.types import Task, TaskError, TaskEvent, Usage
from plantain.usage import Price, task_usage

logger = logging.getLogger(__name__)


class Outcomes:
    def __init__(
        self, store: TaskStore, channel: EventChannel, price: Price, wake_webhooks: Callable[[], None]
    ) -> None:
        self.store = store
        self.channel = channel
        self.price = price
        self._wake_webhooks = wake_webhooks
        self._held: dict[str, int] = {}  # task id -> the attempt this process claimed (its lease)
        self._held_lock = threading.Lock()

    def hold(self, task: Task) -> None:
        """``task`` was claimed here: its lease is renewed (``LeaseKeeper``) until it ends."""
        with self._held_lock:
            self._held[task.id] = task.attempts

    def release(self, task_id: str) -> None:
        with self._held_lock:
            self._held.pop(task_id, None)

    def held(self) -> dict[str, int]:
        with self._held_lock:
            return dict(self._held)

    def publish(self, event: TaskEvent | None, images: Images | None = None) -> None:
        """Announce an event the store recorded (None: the store changed nothing)."""
        if event is not None:
            self.channel.publish(event, images)
            self._wake_webhooks()

    def used(self, task: Task, device_seconds: float) -> Usage:
        """The usage of a run that made no images for ``task``."""
        return task_usage(task, images=0, device_seconds=device_seconds, price=self.price)

    def end(self, task: Task, exc: BaseException, usage: Usage, *, draining: bool = False) -> None:
        """End ``task`` by what ``exc`` says: cancelled (or queued again by a drain), or failed."""
        with task_context(task_id=task.id):  # whichever thread ends it
            if isinstance(exc, TaskCancelledError):
                self.stopped(task, exc, usage, draining=draining)
            elif isinstance(exc, PlantainError):
                self.failed(task, TaskError.of(exc), usage)
            else:  # a bug must fail one task, not the worker
                logger.error("task %s failed unexpectedly", task.id, exc_info=exc)
                error = EngineRunError(f"internal error: {type(exc).__name__}: {exc}")
                self.failed(task, TaskError.of(error), usage)

    def stopped(
        self, task: Task, exc: TaskCancelledError, usage: Usage | None = None, *, draining: bool = False
    ) -> None:
        """A stopped run's task: queued again by a drain, else cancelled at the step it reached."""
        self.release(task.id)
        if draining and not self.store.get(task.id).cancel_requested:
            self.publish(self.store.runs.requeue(task.id, "the server was shutting down", task.attempts))
            return
        self.publish(self.store.runs.mark_cancelled(task.id, exc.step, usage, task.attempts))
        with task_context(task_id=task.id):  # a step callback of a shared run calls this
            logger.info("task %s cancelled: %s", task.id, exc.message)

    def failed(self, task: Task, error: TaskError, usage: Usage | None = None) -> None:
        if error.status >= 500:
            logger.error("task %s failed: %s", task.id, error.message)
        self.release(task.id)
        self.publish(self.store.runs.fail(task.id, error, usage, task.attempts))
