"""The scheduler: one durable queue for every front door, one worker per process.

A request is checked (everything that needs no image bytes first, then its URL inputs fetched,
its inputs decoded, its run planned and its seed fixed) *before* it becomes a task, so a bad input
is an ordinary 400 and never a failed task, and a refused request fetches nothing. Tasks run in
submission order on one worker thread (one engine run at a time on the device), compatible queued
tasks together in one run (``batching.py``); each step, the end and any failure are events in the
store and on the live bus. What follows the engine (screening, encoding, marks, files, the
store) runs on the post-processing stage (``postprocess.py``) while the worker starts the next
run. A synchronous call (Gemini, OpenAI) is a task its caller waits on; when such a caller goes
away, its task is cancelled.

Only one server process may use a data directory (a lock file says so): at start, tasks left
running by a killed process are queued again (or failed once they have used ``max_attempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import IO, Any

from plantain.engines.base import Engine, EngineJob, PreviewCallback, Previews, StepCallback, inputs_digest
from plantain.engines.model_names import engine_for_model
from plantain.engines.registry import EngineRegistry
from plantain.errors import (
    ConfigurationError,
    EngineRunError,
    InvalidRequestError,
    PlantainError,
    QueueFullError,
    ShuttingDownError,
    TaskCancelledError,
    error_from_code,
)
from plantain.generation import OutputScreen, finish_images, precheck, prepare
from plantain.limits import Limits
from plantain.logs import task_context
from plantain.net.fetch import FetchLimits, fetch_inputs
from plantain.provenance.policy import ProvenancePolicy
from plantain.safety.policy import SafetyPolicy
from plantain.scheduler.batching import SCAN_LIMIT, Batch, BatchLimits, Finished, Member, Processed
from plantain.scheduler.events import EventBus
from plantain.scheduler.postprocess import PostProcessor
from plantain.settings import Settings
from plantain.storage.files import write_durably
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
from plantain.usage import ANONYMOUS, SECONDS_DECIMALS, Price, task_usage
from plantain.webhooks.delivery import RetryPolicy, WebhookDeliverer, webhook_secret

logger = logging.getLogger(__name__)

DisconnectCheck = Callable[[], Awaitable[bool]]
DISCONNECT_POLL_SECONDS = 0.2
IDLE_POLL_SECONDS = 1.0  # the worker also wakes at once on every submission
POSTPROCESS_BACKLOG = 2  # finished runs waiting for or in post-processing before the engine waits
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
    api_key_id: str | None = None  # who submits it (dialects.deps.caller_key); None: anonymous
    # Names the request in the log before it has a task: its URL fetches, then its task(s).
    request_id: str = field(default_factory=lambda: f"req_{secrets.token_hex(8)}")


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
        self.screen: OutputScreen = self.safety.screen_images  # what post-processing screens with
        self.batching = BatchLimits.from_settings(settings)
        self.provenance = ProvenancePolicy(settings)  # the signing identity is made on first start
        self.ready = threading.Event()  # engines loaded
        self.load_error: str | None = None
        self.draining = threading.Event()
        self._wakeup = threading.Event()
        self._stop_flags: dict[str, threading.Event] = {}
        self._previews: dict[str, tuple[int, PreviewCallback]] = {}
        self._worker: threading.Thread | None = None
        self._post: PostProcessor[Finished, Processed] | None = None
        self._lock_file: IO[str] | None = None
        self._grace_over = threading.Event()  # a drain's grace is over: the running batch stops
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
        self._post = PostProcessor(
            self._postprocess,
            self._commit,
            workers=self.settings.postprocess_workers,
            backlog=POSTPROCESS_BACKLOG,
            context=lambda finished: task_context(task_id=finished.member.task.id),
        )
        self._worker = threading.Thread(target=self._work, name="plantain-worker", daemon=True)
        self._worker.start()

    def load(self, names: list[str]) -> None:
        """Load ``names`` (blocking), then mark the scheduler ready."""
        for name in names:
            self.registry.get(name).load()
        self.safety.load()  # a missing or mislabelled classifier shows in readiness, not per task
        self.ready.set()

    def drain(self, grace_seconds: float) -> None:
        """Stop taking work; let the running batch finish for ``grace_seconds``, then stop it at
        its next step and queue its tasks again for the next start. Images already made are
        post-processed and stored before this returns."""
        self.draining.set()
        self._wakeup.set()
        if self._worker is None:
            return
        self._worker.join(grace_seconds)
        self.stop_now()
        if self._worker.is_alive():
            self._worker.join(30)

    def stop_now(self) -> None:
        """Cut a drain's grace short (a second SIGTERM): take no more work, and stop the running
        batch at its next step, its tasks queued again for the next start."""
        self.draining.set()
        self._grace_over.set()
        self._wakeup.set()

    def close(self) -> None:
        self.draining.set()
        self._wakeup.set()
        if self.webhooks is not None:
            self.webhooks.stop()  # undelivered webhooks stay in the outbox for the next start
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

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
        with task_context(request_id=submission.request_id):  # its lines before it is a task
            return await self._submit(request, submission, previews=previews, on_preview=on_preview)

    async def _submit(
        self,
        request: ImageRequest,
        submission: Submission,
        *,
        previews: int,
        on_preview: PreviewCallback | None,
    ) -> tuple[Task, bool]:
        self.check_open()  # a draining server refuses before it checks: the request may be fine
        if submission.idempotency_key is not None:  # a replay answers its first task, unchecked
            first = self.store.replayed(submission.idempotency_key, submission.fingerprint)
            if first is not None:
                return first, False
        checked = await self.check(request, submission)
        self.check_capacity()
        return await self.enqueue(checked, submission, previews=previews, on_preview=on_preview)

    async def check(self, request: ImageRequest, submission: Submission) -> ImageRequest:
        """``request`` ready to queue (bad input raises here: a 400, never a failed task): first
        every check that needs no image bytes (:meth:`precheck`), then its inputs fetched and
        decoded (:meth:`check_inputs`), so a refused request fetches and decodes nothing."""
        prechecked = await asyncio.to_thread(self.precheck, request, submission)
        return await self.check_inputs(prechecked, submission)

    def precheck(self, request: ImageRequest, submission: Submission) -> ImageRequest:
        """``request`` with its engine named and its safety level fixed, once it has passed every
        check that needs no input's bytes: the model, a refused provenance opt-out, the prompt's
        length, the input count, what the engine does and the size it makes
        (:func:`~plantain.generation.precheck`), and last the prompt's safety screen (its length
        known to be within limits): a blocked prompt is refused here, in every dialect."""
        engine_name = request.engine or self.engine_name(submission.model)
        request = request.model_copy(update={"engine": engine_name})
        self.provenance.applied(request.provenance)  # a refused opt-out is a 400, not a failed task
        precheck(request, self.registry.get(engine_name), self.limits)
        return self.safety.admit(request)

    async def check_inputs(self, prechecked: ImageRequest, submission: Submission) -> ImageRequest:
        """A request :meth:`precheck` returned with its URL inputs fetched, every input decoded
        and validated off the loop, and its seed fixed so that a rerun makes the same images."""
        if any(image.url is not None for image in prechecked.images):
            self.check_capacity()  # a full queue would refuse it after the fetch: refuse it before
            request_id = submission.request_id
            with task_context(request_id=request_id):  # a Gemini batch checks without submit()
                images = await fetch_inputs(prechecked.images, self.fetch_limits, request_id=request_id)
            prechecked = prechecked.model_copy(update={"images": images})
        engine = self.registry.get(prechecked.engine)
        job = await asyncio.to_thread(prepare, prechecked, engine, self.limits)
        return prechecked.model_copy(update={"seed": job.seeds[0]})

    def check_open(self) -> None:
        """ShuttingDownError (503, with a retry hint) once a drain has begun: tasks queued now
        would wait for the next start, so the caller is better served elsewhere or later."""
        if not self.draining.is_set():
            return
        retry_after = max(1, math.ceil(self.settings.drain_seconds))
        raise ShuttingDownError(
            "the server is shutting down (draining after SIGTERM) and takes no new requests; "
            f"send this one to another server, or retry in {retry_after} s once this one is back",
            retry_after=retry_after,
        )

    def check_capacity(self, count: int = 1, *, field: str | None = None) -> None:
        """Room for ``count`` more tasks, or QueueFullError (429, with a retry hint); a group larger
        than the whole queue can never fit, so it is a 400 naming ``field``."""
        self.check_open()
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
            with task_context(task_id=task.id, request_id=submission.request_id):
                logger.info("task %s queued for request %s", task.id, submission.request_id)
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
        post = self._post
        last_expiry = 0.0
        try:
            while not self.draining.is_set():
                if time.monotonic() - last_expiry > EXPIRY_INTERVAL_SECONDS:
                    last_expiry = time.monotonic()
                    self._expire_quietly()
                claimed = self.store.claim_next()
                if claimed is None:
                    self._wakeup.wait(IDLE_POLL_SECONDS)
                    self._wakeup.clear()
                    continue
                batch = self._batch_led_by(*claimed)
                if batch is not None:
                    try:
                        with task_context(task_id=_batch_ids(batch)):  # lines of the shared run
                            self._run_batch(batch)
                    finally:
                        self._forget(batch.members)
        finally:
            if post is not None:
                post.close()  # a drain waits for the images already made

    def _batch_led_by(self, task: Task, started: TaskEvent) -> Batch | None:
        """A batch led by the claimed ``task``, with the compatible tasks that joined it; None
        when ``task`` could not be prepared (it has failed)."""
        with task_context(task_id=task.id):
            return self._lead(task, started)

    def _lead(self, task: Task, started: TaskEvent) -> Batch | None:
        self._publish(started)
        stop = self._stop_flag(task)
        began = time.perf_counter()  # preparing counts as device time for a task that fails here
        try:
            request = self.store.request(task.id)
            engine = self.registry.get(task.engine)
            job = prepare(request, engine, self.limits)  # the limits check() used
            batch = Batch(engine, [self._member(task, request, job, engine, stop)])
        except Exception as exc:
            self._end(task, exc, self._spent(task, began))
            self._stop_flags.pop(task.id, None)
            self._previews.pop(task.id, None)
            return None
        if self.batching.batches(engine):
            self._gather(batch)
        return batch

    def _gather(self, batch: Batch) -> None:
        """Join compatible queued tasks until the batch is full or its window has passed."""
        deadline = batch.members[0].task.created_at + self.batching.window_seconds
        seen: set[str] = set()
        while batch.images < self.batching.max_images and not self.draining.is_set():
            for task_id in self.store.queued_ids(batch.engine.name, SCAN_LIMIT):
                if task_id not in seen and batch.images < self.batching.max_images:
                    seen.add(task_id)
                    self._try_join(batch, task_id)
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            self._wakeup.wait(remaining)  # every submission wakes it
            self._wakeup.clear()

    def _try_join(self, batch: Batch, task_id: str) -> None:
        if task_id in self._previews and batch.has_previews():
            return  # an engine previews one image per run: this task leads a later batch
        try:
            request = self.store.request(task_id)
            if inputs_digest(request) != batch.members[0].job.inputs_digest:
                return  # other input images can never join: not worth decoding them to see
            job = prepare(request, batch.engine, self.limits)
        except Exception:  # it fails on its own turn, with its own error
            return
        if not batch.takes(job, self.batching.max_images):
            return
        claimed = self.store.claim(task_id)
        if claimed is None:  # cancelled meanwhile
            return
        task, started = claimed
        self._publish(started)
        stop = self._stop_flag(task)
        try:
            batch.members.append(self._member(task, request, job, batch.engine, stop))
        except Exception as exc:
            self._end(task, exc, self._used(task, 0.0))
            self._stop_flags.pop(task.id, None)
            self._previews.pop(task.id, None)

    def _stop_flag(self, task: Task) -> threading.Event:
        stop = self._stop_flags.setdefault(task.id, threading.Event())
        if task.cancel_requested:
            stop.set()
        return stop

    def _member(
        self, task: Task, request: ImageRequest, job: EngineJob, engine: Engine, stop: threading.Event
    ) -> Member:
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
        return Member(task, request, job, stop, stamper, previews)

    def _run_batch(self, batch: Batch) -> None:
        """One engine run for the whole batch; its images go on to post-processing."""
        started = time.perf_counter()
        order = batch.run_order()
        try:
            images = batch.engine.run(
                [member.job for member in order],
                self._on_step(batch, started),
                lambda: self._grace_over.is_set() or batch.all_stopped(),
                order[0].previews,
            )
        except Exception as exc:
            self._batch_failed(batch, exc, started)
            return
        seconds = time.perf_counter() - started
        made = dict(zip((member.task.id for member in order), images, strict=True))
        finished = [
            Finished(
                member,
                made[member.task.id],
                seconds,
                batch.share(member, seconds),
                len(batch.members),
                batch.images,
            )
            for member in batch.live()  # a cancel after the last step is too late: it gets them
        ]
        if self._post is not None:
            self._post.submit(finished)  # blocks while the backlog is full

    def _on_step(self, batch: Batch, started: float) -> StepCallback:
        """Progress for each member; a member stopped meanwhile ends here, the others run on."""

        def on_step(done: int, total: int) -> None:
            for member in batch.live():
                if member.stop.is_set():
                    member.ended = True
                    spent = batch.share(member, time.perf_counter() - started)
                    message = f"stopped after step {done} of {total} of a run it shared"
                    stopped = TaskCancelledError(message, step=done)
                    self._stopped(member.task, stopped, self._used(member.task, spent))
                else:
                    event = self.store.add_event(member.task.id, "progress", {"step": done, "total": total})
                    self._publish(event)

        return on_step

    def _batch_failed(self, batch: Batch, exc: Exception, started: float) -> None:
        """A failed shared run is retried one task at a time, so that one task's failure (or a
        batch too large for the device) does not fail its neighbours; a lone run's failure ends it."""
        live = batch.live()
        if isinstance(exc, EngineRunError) and len(live) > 1:
            logger.warning("a run of %d tasks failed (%s); running each alone", len(live), exc.message)
            for member in live:
                with task_context(task_id=member.task.id):
                    self._run_batch(Batch(batch.engine, [member]))
            return
        elapsed = time.perf_counter() - started
        for member in live:
            self._end(member.task, exc, self._used(member.task, batch.share(member, elapsed)))

    def _end(self, task: Task, exc: BaseException, usage: Usage) -> None:
        """End ``task`` by what ``exc`` says: cancelled (or requeued by a drain), or failed."""
        with task_context(task_id=task.id):  # whichever thread ends it
            self._end_as(task, exc, usage)

    def _end_as(self, task: Task, exc: BaseException, usage: Usage) -> None:
        if isinstance(exc, TaskCancelledError):
            self._stopped(task, exc, usage)
        elif isinstance(exc, PlantainError):
            self._failed(task, TaskError.of(exc), usage)
        else:  # a bug must fail one task, not the worker
            logger.error("task %s failed unexpectedly", task.id, exc_info=exc)
            error = EngineRunError(f"internal error: {type(exc).__name__}: {exc}")
            self._failed(task, TaskError.of(error), usage)

    def _forget(self, members: list[Member]) -> None:
        for member in members:
            self._stop_flags.pop(member.task.id, None)
            self._previews.pop(member.task.id, None)

    # --- post-processing (off the engine thread) -----------------------------------------------

    def _postprocess(self, finished: Finished) -> Processed:
        """Screen, encode, mark, sign and write one task's images (on a post-processing thread)."""
        started = time.perf_counter()
        member = finished.member
        images = finish_images(finished.images, member.request, member.job, self.screen, member.stamper)
        self.store.files_dir.mkdir(parents=True, exist_ok=True)
        outputs = []
        for image in images:
            file_id = self.store.new_file_id()
            write_durably(self.store.files_dir / file_id, image.data)
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
        return Processed(tuple(outputs), time.perf_counter() - started)

    def _commit(self, finished: Finished, processed: Future[Processed]) -> None:
        """Record one task's end, in queue order (on the post-processing stage's commit thread)."""
        task = finished.member.task
        try:
            self._succeed(finished, processed.result())
        except Exception as exc:  # a blocked image, a full disk: this task fails, no other
            self._end(task, exc, self._used(task, finished.device_seconds))

    def _succeed(self, finished: Finished, processed: Processed) -> None:
        member = finished.member
        stored = TaskResult(
            engine=member.task.engine,
            outputs=processed.outputs,
            steps=member.job.steps,
            guidance=member.job.guidance,
            seconds=finished.seconds,
        )
        usage = task_usage(
            member.task,
            images=len(processed.outputs),
            device_seconds=finished.device_seconds,
            price=self.price,
            provenance_seconds=member.stamper.seconds,
        )
        data: dict[str, Any] = {
            "outputs": [output.model_dump() for output in processed.outputs],
            "seconds": finished.seconds,
            "usage": usage.model_dump(),
            "postprocess_seconds": round(processed.seconds, SECONDS_DECIMALS),
            "batch": {"tasks": finished.batch_tasks, "images": finished.batch_images},
        }
        self._publish(self.store.succeed(member.task.id, stored, data, usage))

    def _used(self, task: Task, device_seconds: float) -> Usage:
        """The usage of a run that made no images for ``task``."""
        return task_usage(task, images=0, device_seconds=device_seconds, price=self.price)

    def _spent(self, task: Task, started: float) -> Usage:
        """The usage of a run that made no images: its wall time so far (decoding included)."""
        return self._used(task, time.perf_counter() - started)

    def _stopped(self, task: Task, exc: TaskCancelledError, usage: Usage | None = None) -> None:
        """A stopped run's task: queued again by a drain, else cancelled at the step it reached."""
        if self.draining.is_set() and not self.store.get(task.id).cancel_requested:
            self._publish(self.store.requeue(task.id, "the server was shutting down"))
            return
        self._publish(self.store.mark_cancelled(task.id, exc.step, usage))
        with task_context(task_id=task.id):  # a step callback of a shared run calls this
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


def _batch_ids(batch: Batch) -> str:
    """What a shared run's lines carry as their task id: its tasks' ids, comma-separated."""
    return ",".join(member.task.id for member in batch.members)


def _error_of(task: Task) -> PlantainError:
    if task.status == "cancelled":
        return TaskCancelledError(f"task {task.id} was cancelled")
    if task.error is None:
        return EngineRunError(f"task {task.id} ended as {task.status} without a result")
    return error_from_code(task.error.code, task.error.message, task.error.field, task.error.category)


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
