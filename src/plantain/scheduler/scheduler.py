"""The scheduler: one durable queue for every front door, one worker per process.

A request is checked (decoded, planned, its seed fixed) *before* it becomes a task, so a bad input
is an ordinary 400 and never a failed task. Tasks run in submission order on one worker thread
(one engine run at a time on the device); each step, the end and any failure are events in the
store and on the live bus. A synchronous call (Gemini, OpenAI) is a task its caller waits on; when
such a caller goes away, its task is cancelled.

Only one server process may use a data directory (a lock file says so): at start, tasks left
running by a killed process are queued again (or failed once they have used ``max_attempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

from plantain.engines.base import PreviewCallback, Previews
from plantain.engines.registry import EngineRegistry
from plantain.errors import (
    CancelledError,
    ConfigurationError,
    EngineRunError,
    InvalidRequestError,
    PlantainError,
    QueueFullError,
    error_from_code,
)
from plantain.fetch import FetchLimits
from plantain.generation import execute, prepare
from plantain.limits import Limits
from plantain.models import engine_for_model
from plantain.provenance.policy import ProvenancePolicy
from plantain.safety import SafetyPolicy
from plantain.scheduler.events import EventBus
from plantain.scheduler.webhooks import RetryPolicy, WebhookDeliverer, webhook_secret
from plantain.settings import Settings
from plantain.storage.tasks import NewTask, TaskStore, WebhookBody
from plantain.types import (
    TERMINAL_EVENTS,
    GeneratedImage,
    ImageRequest,
    ImageResult,
    Task,
    TaskError,
    TaskEvent,
    TaskOutput,
    TaskResult,
    Usage,
)
from plantain.usage import ANONYMOUS, Price, task_usage

logger = logging.getLogger(__name__)

DisconnectCheck = Callable[[], Awaitable[bool]]
DISCONNECT_POLL_SECONDS = 0.2
IDLE_POLL_SECONDS = 1.0  # the worker also wakes at once on every submission
EXPIRY_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Submission:
    """How a front door wants a request run, beside the request itself."""

    model: str | None = None  # the caller's model name (None: the default engine)
    source: str = "tasks"
    idempotency_key: str | None = None
    fingerprint: str | None = None
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] | None = None
    api_key_id: str | None = None  # who submits it (usage.caller_key_id); None: anonymous


class Scheduler:
    def __init__(
        self, settings: Settings, registry: EngineRegistry, *, webhook_body: WebhookBody | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.bus = EventBus()
        self.store = TaskStore(
            settings.data_dir,
            retention_seconds=settings.retention_seconds,
            webhook_body=webhook_body,
            currency=settings.price_currency,
        )
        self.price = Price.from_settings(settings)
        self.limits = Limits.from_settings(settings)  # what every door and the worker check
        self.fetch_limits = FetchLimits.from_settings(settings)  # image URLs, whichever door
        self.safety = SafetyPolicy.from_settings(settings)
        self.provenance = ProvenancePolicy(settings)  # the signing identity is made on first start
        self.ready = threading.Event()  # engines loaded
        self.load_error: str | None = None
        self.draining = threading.Event()
        self._wakeup = threading.Event()
        self._stop_flags: dict[str, threading.Event] = {}
        self._previews: dict[str, tuple[int, PreviewCallback]] = {}
        self._worker: threading.Thread | None = None
        self._lock_file: IO[str] | None = None
        self._running_task: str | None = None
        self.webhooks: WebhookDeliverer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take the data directory, recover what a dead process left, start the worker."""
        self._lock_file = _lock_data_dir(self.settings)
        self.bus.bind(loop)
        requeued, failed = self.store.recover(self.settings.max_attempts)
        if requeued or failed:
            logger.warning(
                "recovered after a stop: %d task(s) queued again, %d failed", len(requeued), len(failed)
            )
        self.store.sweep_orphan_files()
        self.webhooks = WebhookDeliverer(
            self.store.outbox,
            webhook_secret(self.settings),
            allowed_hosts=self.settings.allowed_hosts,
            timeout=self.settings.webhook_timeout_seconds,
            policy=RetryPolicy.from_settings(self.settings),
        )
        self.webhooks.start()  # what a killed server left pending goes out now
        self._worker = threading.Thread(target=self._work, name="plantain-worker", daemon=True)
        self._worker.start()

    def load(self, names: list[str]) -> None:
        """Load ``names`` (blocking), then mark the scheduler ready."""
        for name in names:
            self.registry.get(name).load()
        self.safety.load()  # a missing or mislabelled classifier shows in readiness, not per task
        self.ready.set()

    def drain(self, grace_seconds: float) -> None:
        """Stop taking work; let the running task finish for ``grace_seconds``, then stop it at its
        next step and queue it again for the next start."""
        self.draining.set()
        self._wakeup.set()
        if self._worker is None:
            return
        self._worker.join(grace_seconds)
        if self._running_task is not None:
            self._stop(self._running_task)
            self._worker.join(30)

    def close(self) -> None:
        self.draining.set()
        self._wakeup.set()
        if self.webhooks is not None:
            self.webhooks.stop()  # undelivered webhooks stay in the outbox for the next start
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def expire(self) -> int:
        return self.store.expire()

    # --- front doors ---------------------------------------------------------------------------

    def engine_name(self, model: str | None) -> str:
        return engine_for_model(self.registry, model)

    async def submit(
        self,
        request: ImageRequest,
        submission: Submission,
        *,
        previews: int = 0,
        on_preview: PreviewCallback | None = None,
    ) -> tuple[Task, bool]:
        """Check ``request`` and queue it; returns (task, created). Bad input raises here."""
        checked = await self.check(request, submission)
        self.check_capacity()
        return await self.enqueue(checked, submission, previews=previews, on_preview=on_preview)

    async def check(self, request: ImageRequest, submission: Submission) -> ImageRequest:
        """``request`` ready to queue: its engine named, its inputs decoded and validated off the
        loop (bad input raises here: a 400, never a failed task), its seed fixed so that a rerun
        makes the same images. Its safety level is fixed and its prompt screened (once its length
        is known to be within limits): a blocked prompt is refused here, in every dialect."""
        engine_name = request.engine or self.engine_name(submission.model)
        request = request.model_copy(update={"engine": engine_name})
        self.provenance.applied(request.provenance)  # a refused opt-out is a 400, not a failed task
        job = await asyncio.to_thread(prepare, request, self.registry.get(engine_name), self.limits)
        request = await asyncio.to_thread(self.safety.admit, request)
        return request.model_copy(update={"seed": job.seeds[0]})

    def check_capacity(self, count: int = 1, *, field: str | None = None) -> None:
        """Room for ``count`` more tasks, or QueueFullError (429, with a retry hint); a group larger
        than the whole queue can never fit, so it is a 400 naming ``field``."""
        limit = self.settings.max_queued_tasks
        if count > limit:
            raise InvalidRequestError(
                f"{field}: {count} requests are more than the queue holds (max_queued_tasks is "
                f"{limit}); send at most {limit} at once",
                field=field,
            )
        queued = self.store.queued_count()
        if queued + count <= limit:
            return
        waiting = f"{queued} tasks waiting, max_queued_tasks is {limit}"
        raise QueueFullError(
            f"the queue is full ({waiting}); retry later"
            if count == 1
            else f"the queue has room for {limit - queued} more tasks ({waiting}) and this batch has "
            f"{count}; retry later",
            retry_after=max(1, min(60, queued // 4)),
        )

    async def enqueue(
        self,
        checked: ImageRequest,
        submission: Submission,
        *,
        previews: int = 0,
        on_preview: PreviewCallback | None = None,
    ) -> tuple[Task, bool]:
        """Queue a request :meth:`check` returned; returns (task, created)."""
        engine_name = checked.engine
        if engine_name is None:
            raise ValueError("enqueue() takes a request that check() returned (its engine is named)")
        new = NewTask(
            request=checked,
            model=submission.model or engine_name,
            engine=engine_name,
            source=submission.source,
            idempotency_key=submission.idempotency_key,
            fingerprint=submission.fingerprint,
            webhook_url=submission.webhook_url,
            webhook_events=submission.webhook_events,
            api_key_id=submission.api_key_id or ANONYMOUS,
        )
        task, created = await asyncio.to_thread(self.store.create, new)
        if created:
            if previews and on_preview is not None:
                self._previews[task.id] = (previews, on_preview)
            for event in self.store.events_after(task.id):
                self._publish(event)
            self._wakeup.set()
        return task, created

    def cancel(self, task_id: str) -> Task:
        self._publish(self.store.cancel(task_id))
        self._stop(task_id)
        return self.store.get(task_id)

    def _stop(self, task_id: str) -> None:
        """A running task stops at its next step (no flag: it is not running here)."""
        flag = self._stop_flags.get(task_id)
        if flag is not None:
            flag.set()

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once it has ended, or as it is when ``timeout`` passes."""
        with self.bus.subscribe(task_id) as events:
            task = self.store.get(task_id)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not task.finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    event = await asyncio.wait_for(events.get(), remaining)
                    if event.type not in TERMINAL_EVENTS:
                        continue
                task = self.store.get(task_id)
            return task

    async def run(
        self,
        request: ImageRequest,
        submission: Submission,
        *,
        is_disconnected: DisconnectCheck | None = None,
        previews: int = 0,
        on_preview: PreviewCallback | None = None,
    ) -> tuple[Task, ImageResult]:
        """Submit and wait (the synchronous dialects): the task and its images, or its error raised.
        A caller that goes away (or is cancelled) cancels the task, queued or running."""
        task, _ = await self.submit(request, submission, previews=previews, on_preview=on_preview)
        watcher = asyncio.create_task(self._watch(task.id, is_disconnected)) if is_disconnected else None
        try:
            task = await self.wait(task.id)
        except asyncio.CancelledError:
            self.cancel(task.id)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        return task, await asyncio.to_thread(self.result_of, task)

    def result_of(self, task: Task) -> ImageResult:
        """A finished task's images read back, or its error raised again."""
        if task.status != "succeeded" or task.result is None:
            raise _error_of(task)
        images = []
        for output in task.result.outputs:
            path, media_type = self.store.file(output.file_id)
            images.append(
                GeneratedImage(
                    data=path.read_bytes(),
                    media_type=media_type,
                    width=output.width,
                    height=output.height,
                    seed=output.seed,
                    provenance=output.provenance,
                )
            )
        result = task.result
        return ImageResult(
            engine=result.engine,
            images=tuple(images),
            steps=result.steps,
            guidance=result.guidance,
            seconds=result.seconds,
        )

    async def _watch(self, task_id: str, is_disconnected: DisconnectCheck) -> None:
        while True:
            if await is_disconnected():
                self.cancel(task_id)
                return
            await asyncio.sleep(DISCONNECT_POLL_SECONDS)

    # --- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        last_expiry = 0.0
        while not self.draining.is_set():
            if time.monotonic() - last_expiry > EXPIRY_INTERVAL_SECONDS:
                last_expiry = time.monotonic()
                self._expire_quietly()
            claimed = self.store.claim_next()
            if claimed is None:
                self._wakeup.wait(IDLE_POLL_SECONDS)
                self._wakeup.clear()
                continue
            task, started = claimed
            self._publish(started)
            self._running_task = task.id
            try:
                self._execute(task)
            finally:
                self._running_task = None

    def _execute(self, task: Task) -> None:
        stop = self._stop_flags.setdefault(task.id, threading.Event())
        if task.cancel_requested:
            stop.set()
        started = time.perf_counter()  # a run that ends without images used the device too
        try:
            result = self._run_engine(task, stop)
            self._finish(task, result)
        except CancelledError as exc:
            self._stopped(task, exc, self._spent(task, started))
        except PlantainError as exc:
            self._failed(
                task,
                TaskError.of(exc),
                self._spent(task, started),
            )
        except Exception as exc:  # a bug must fail one task, not the worker
            logger.exception("task %s failed unexpectedly", task.id)
            error = EngineRunError(f"internal error: {type(exc).__name__}: {exc}")
            self._failed(task, TaskError.of(error), self._spent(task, started))
        finally:
            self._stop_flags.pop(task.id, None)
            self._previews.pop(task.id, None)

    def _run_engine(self, task: Task, stop: threading.Event) -> ImageResult:
        # Decoded again here although submit() decoded it to validate: keeping decoded inputs of
        # every queued task in memory would cost megabytes per task; a decode is milliseconds.
        request = self.store.request(task.id)
        engine = self.registry.get(task.engine)
        job = prepare(request, engine, self.limits)  # the limits check() used

        def on_step(done: int, total: int) -> None:
            self._publish(self.store.add_event(task.id, "progress", {"step": done, "total": total}))

        stamper = self.provenance.stamper(
            request,
            model=task.model,
            engine=engine.name,
            serials=self.store.marks.reserve(task.id, len(job.seeds)),
        )
        previews = None
        if task.id in self._previews:
            count, callback = self._previews[task.id]
            callback = stamper.marked_previews(callback)  # previews are images handed out too
            callback = self.safety.safe_previews(self.safety.level_for(request.safety), callback)
            previews = Previews.spread(count, job.steps, callback)
        screen = self.safety.screen_images  # before encoding: a blocked image is never stored
        # drain() sets stop late
        return execute(request, job, engine, on_step, stop.is_set, previews, screen, stamper)

    def _finish(self, task: Task, result: ImageResult) -> None:
        outputs = []
        self.store.files_dir.mkdir(parents=True, exist_ok=True)
        for image in result.images:
            file_id = self.store.new_file_id()
            _write_durably(self.store.files_dir / file_id, image.data)
            outputs.append(
                TaskOutput(
                    file_id=file_id,
                    media_type=image.media_type,
                    width=image.width,
                    height=image.height,
                    seed=image.seed,
                    provenance=image.provenance,
                )
            )
        stored = TaskResult(
            engine=result.engine,
            outputs=tuple(outputs),
            steps=result.steps,
            guidance=result.guidance,
            seconds=result.seconds,
        )
        usage = task_usage(
            task,
            images=len(outputs),
            device_seconds=result.seconds,
            price=self.price,
            provenance_seconds=result.provenance_seconds,
        )
        data: dict[str, Any] = {
            "outputs": [output.model_dump() for output in outputs],
            "seconds": result.seconds,
            "usage": usage.model_dump(),
        }
        self._publish(self.store.succeed(task.id, stored, data, usage))

    def _spent(self, task: Task, started: float) -> Usage:
        """The usage of a run that made no images: its wall time so far (decoding included)."""
        return task_usage(task, images=0, device_seconds=time.perf_counter() - started, price=self.price)

    def _stopped(self, task: Task, exc: CancelledError, usage: Usage | None = None) -> None:
        if self.draining.is_set() and not self.store.get(task.id).cancel_requested:
            self._publish(self.store.requeue(task.id, "the server was shutting down"))
            return
        self._publish(self.store.mark_cancelled(task.id, None, usage))
        logger.info("task %s cancelled: %s", task.id, exc.message)

    def _failed(self, task: Task, error: TaskError, usage: Usage | None = None) -> None:
        if error.status >= 500:
            logger.error("task %s failed: %s", task.id, error.message)
        self._publish(self.store.fail(task.id, error, usage))

    def _publish(self, event: TaskEvent | None) -> None:
        if event is not None:
            self.bus.publish(event)
            self._wake_webhooks()

    def _wake_webhooks(self) -> None:
        if self.webhooks is not None:
            self.webhooks.wake()

    def _expire_quietly(self) -> None:
        try:
            expired = self.store.expire()
            if expired:
                logger.info("expired %d finished task(s)", expired)
        except Exception:  # retention must never stop the worker
            logger.exception("expiring old tasks failed")


def _error_of(task: Task) -> PlantainError:
    if task.status == "cancelled":
        return CancelledError(f"task {task.id} was cancelled")
    if task.error is None:
        return EngineRunError(f"task {task.id} ended as {task.status} without a result")
    return error_from_code(task.error.code, task.error.message, task.error.field, task.error.category)


def _write_durably(path: Any, data: bytes) -> None:
    """Write, then fsync: a file the store records must survive a crash right after the commit."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _lock_data_dir(settings: Settings) -> IO[str]:
    """Hold ``<data_dir>/plantain.lock`` while serving: two servers on one queue would run its
    tasks twice and each would 'recover' the other's running tasks."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(settings.data_dir / "plantain.lock", "w")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigurationError(
            f"another Plantain server is using the data directory {settings.data_dir}; stop it, or "
            "give this one its own PLANTAIN_DATA_DIR"
        ) from None
    return handle
