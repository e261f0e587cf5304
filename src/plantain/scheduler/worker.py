"""The worker: claims queued tasks from the store, runs the engine, hands the images to finishing.

One worker thread per process runs one engine call at a time on the device, in submission order,
compatible queued tasks together in one call (``batching.py``). It hears of new tasks and
cancellations on the event channel (and polls the store, so a lost signal only delays), records
each step, stop and failure in the store, and gives every finished run to :class:`Finishing`.
A drain lets the running batch finish for its grace, then stops it at its next step and queues
its tasks again for the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from plantain.engines.base import Engine, EngineJob, Previews, StepCallback, inputs_digest
from plantain.engines.registry import EngineRegistry
from plantain.errors import EngineRunError, TaskCancelledError
from plantain.generation import prepare
from plantain.limits import Limits
from plantain.logs import task_context
from plantain.provenance.policy import ProvenancePolicy
from plantain.providers.routing import RoutedEngine, attempt_of, report
from plantain.safety.policy import SafetyPolicy
from plantain.scheduler.batching import SCAN_LIMIT, Batch, BatchLimits, Finished, Member
from plantain.scheduler.before_run import BeforeRun, runs_alone
from plantain.scheduler.channel import Signal
from plantain.scheduler.finishing import Finishing
from plantain.scheduler.outcomes import Outcomes
from plantain.scheduler.prepared import PreparedJobs
from plantain.storage.tasks import TaskStore
from plantain.types import ImageRequest, Task, TaskEvent

if TYPE_CHECKING:
    from plantain.planner.stage import Planner
    from plantain.search.grounder import Grounder

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # the worker also wakes at once on every ``queued`` signal
EXPIRY_INTERVAL_SECONDS = 60.0
CANCEL_POLL_SECONDS = 1.0  # how often a run reads its tasks' cancel requests from the store


@dataclass(frozen=True)
class Candidate:
    """A queued task picked to join a batch, prepared, not yet claimed."""

    task_id: str
    request: ImageRequest
    job: EngineJob


def _images(picked: list[Candidate]) -> int:
    return sum(len(candidate.job.seeds) for candidate in picked)


class Worker:
    def __init__(
        self,
        outcomes: Outcomes,
        finishing: Finishing,
        registry: EngineRegistry,
        *,
        limits: Limits,
        batching: BatchLimits,
        provenance: ProvenancePolicy,
        safety: SafetyPolicy,
        engines: tuple[str, ...] | None = None,
        idle_poll_seconds: float = IDLE_POLL_SECONDS,
        planner: Planner | None = None,
        grounder: Grounder | None = None,
    ) -> None:
        self.outcomes = outcomes
        self.store = outcomes.store
        self.finishing = finishing
        self.registry = registry
        self.limits = limits  # the limits the front door checked with
        self.batching = batching
        self.provenance = provenance
        self.safety = safety
        self.engines = engines  # the pool this worker serves (None: every engine)
        # Search grounding and the planner stage, when the server has them (search/, planner/)
        self.before = BeforeRun(limits, planner, grounder)
        self.idle_poll_seconds = idle_poll_seconds  # a queued task in another process wakes nobody here
        self.draining = threading.Event()
        self._grace_over = threading.Event()  # a drain's grace is over: the running batch stops
        self._wakeup = threading.Event()
        self.flags = StopFlags()  # a cancel signal or a lost lease stops a task's run
        self._prepared = PreparedJobs()
        self._thread: threading.Thread | None = None
        outcomes.channel.listen(self._hear)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="plantain-worker", daemon=True)
        self._thread.start()

    def drain(self, grace_seconds: float) -> None:
        """Take no more work; give the running batch ``grace_seconds``, then stop it at its next
        step (its tasks queued again). Returns once finishing has stored what was made."""
        self.draining.set()
        self._wakeup.set()
        if self._thread is None:
            return
        self._thread.join(grace_seconds)
        self.stop_now()
        if self._thread.is_alive():
            self._thread.join(30)

    def stop(self) -> None:
        """Take no more work (at close: the running batch, if any, is not waited for)."""
        self.draining.set()
        self._wakeup.set()

    def stop_now(self) -> None:
        """Cut a drain's grace short (a second SIGTERM): stop the running batch at its next step."""
        self.draining.set()
        self._grace_over.set()
        self._wakeup.set()

    def _hear(self, signal: Signal) -> None:
        """A channel signal (on the sender's thread: only flags are set here)."""
        if signal.kind == "queued":
            if signal.job is not None:
                self._prepared.keep(signal.task_id, signal.job)
            self._wakeup.set()
        elif signal.kind == "cancel":
            self._prepared.drop(signal.task_id)
            self.flags.stop(signal.task_id)

    def _work(self) -> None:
        last_expiry = 0.0
        try:
            while not self.draining.is_set():
                if time.monotonic() - last_expiry > EXPIRY_INTERVAL_SECONDS:
                    last_expiry = time.monotonic()
                    _expire_quietly(self.outcomes)
                claimed = self.store.runs.claim_next(self.engines)
                if claimed is None:
                    self._wakeup.wait(self.idle_poll_seconds)
                    self._wakeup.clear()
                    continue
                with task_context(task_id=claimed[0].id):
                    batch = self._lead(*claimed)
                if batch is not None:
                    try:
                        with task_context(task_id=_batch_ids(batch)):  # lines of the shared run
                            self._run(batch)
                    finally:
                        for member in batch.members:
                            self.flags.forget(member.task.id)
        finally:
            self.finishing.close()  # a drain waits for the images already made

    def _lead(self, task: Task, started: TaskEvent) -> Batch | None:
        """A batch led by the claimed ``task``, with the compatible tasks that joined it; None
        when ``task`` could not be prepared (it has failed)."""
        self.outcomes.hold(task)  # its lease is renewed from now until it ends
        self.outcomes.publish(started)
        logger.info("task %s claimed (attempt %d, engine %s)", task.id, task.attempts, task.engine)
        stop = _stop_flag(self.flags, self.store, task)
        began = time.perf_counter()  # preparing counts as device time for a task that fails here
        try:
            request = self.store.request(task.id)
            engine = self.registry.get(task.engine)
            job = self._prepared.take(task.id) or prepare(request, engine, self.limits)
            batch = Batch(engine, [self._member(task, request, job, engine, stop)])
        except Exception as exc:
            self.outcomes.end(task, exc, self.outcomes.used(task, time.perf_counter() - began))
            self.flags.forget(task.id)
            return None
        if self.batching.batches(engine) and not runs_alone(request):
            self._gather(batch)
        return batch

    def _gather(self, batch: Batch) -> None:
        """Join compatible queued tasks until the batch is full or its window has passed: each
        scan picks the tasks that fit, then claims them together in one statement."""
        deadline = batch.members[0].task.created_at + self.batching.window_seconds
        seen: set[str] = set()
        while batch.images < self.batching.max_images and not self.draining.is_set():
            picked: list[Candidate] = []
            for task_id in self.store.runs.queued_ids(batch.engine.name, SCAN_LIMIT):
                if task_id not in seen and batch.images + _images(picked) < self.batching.max_images:
                    seen.add(task_id)
                    picked += self._candidate(batch, picked, task_id)
            self._join(batch, picked)
            remaining = deadline - time.time()
            if remaining <= 0:
                return
            self._wakeup.wait(remaining)  # every submission in this process wakes it
            self._wakeup.clear()

    def _candidate(self, batch: Batch, picked: list[Candidate], task_id: str) -> list[Candidate]:
        """``task_id`` as a joiner of ``batch`` beside the already ``picked`` ones, if it fits."""
        try:
            request = self.store.request(task_id)
            if runs_alone(request):
                return []
            if request.previews and (batch.has_previews() or any(c.request.previews for c in picked)):
                return []  # an engine previews one image per run: this task leads a later batch
            if inputs_digest(request) != batch.members[0].job.inputs_digest:
                return []  # other input images can never join: not worth decoding them to see
            job = self._prepared.peek(task_id) or prepare(request, batch.engine, self.limits)
        except Exception:  # it fails on its own turn, with its own error
            return []
        if not batch.takes(job, self.batching.max_images - _images(picked)):
            return []
        return [Candidate(task_id, request, job)]

    def _join(self, batch: Batch, picked: list[Candidate]) -> None:
        """Claim the ``picked`` tasks in one statement; those cancelled meanwhile stay out."""
        if not picked:
            return
        by_id = {candidate.task_id: candidate for candidate in picked}
        for task, started in self.store.runs.claim_all(list(by_id)):
            candidate = by_id[task.id]
            self._prepared.drop(task.id)
            self.outcomes.hold(task)
            self.outcomes.publish(started)
            logger.info("task %s claimed into the batch of %s", task.id, batch.members[0].task.id)
            stop = _stop_flag(self.flags, self.store, task)
            try:
                batch.members.append(self._member(task, candidate.request, candidate.job, batch.engine, stop))
            except Exception as exc:
                self.outcomes.end(task, exc, self.outcomes.used(task, 0.0))
                self.flags.forget(task.id)

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
        if request.previews:
            channel = self.outcomes.channel
            callback = stamper.marked_previews(  # previews are images handed out too
                lambda index, image: channel.preview(task.id, index, image)
            )
            callback = self.safety.safe_previews(self.safety.level_for(request.safety), callback)
            previews = Previews.spread(request.previews, job.steps, callback)
        return Member(task, request, job, stop, stamper, previews)

    def _run(self, batch: Batch) -> None:
        """One engine run for the whole batch; its images go on to finishing."""
        self._before_run(batch)
        if not batch.live():
            return
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
            if not isinstance(exc, TaskCancelledError):
                self._tried(batch.engine, "failed", started, [])
            self._failed(batch, exc, started)
            return
        self._tried(batch.engine, "succeeded", started, images)
        seconds = time.perf_counter() - started
        made = dict(zip((member.task.id for member in order), images, strict=True))
        self.finishing.submit(
            [
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
        )

    def _before_run(self, batch: Batch) -> None:
        """Search grounding and the planner stage for the members that want them, before the
        engine (before_run.py). A member whose grounding or planning fails ends with that error;
        the others run on."""
        for member in batch.live():
            if not self.before.wanted(member.request) or member.plan is not None or member.grounding:
                continue
            try:
                with task_context(task_id=member.task.id):
                    self.before.apply(batch, member)
            except Exception as exc:
                member.ended = True
                self.outcomes.end(member.task, exc, self.outcomes.used(member.task, 0.0))

    def _tried(self, engine: Engine, outcome: str, started: float, made: list[list[Image.Image]]) -> None:
        """The engine's statistics (a route reports each of its members' tries itself)."""
        if not isinstance(engine, RoutedEngine):
            report(self.registry.attempts, attempt_of(engine, outcome, time.perf_counter() - started, made))

    def _on_step(self, batch: Batch, started: float) -> StepCallback:
        """Progress for each member; a member stopped meanwhile ends here, the others run on."""

        polled = [time.monotonic()]

        def on_step(done: int, total: int) -> None:
            if time.monotonic() - polled[0] >= CANCEL_POLL_SECONDS:
                polled[0] = time.monotonic()
                _poll_cancels(self.store, batch)
            for member in batch.live():
                if member.stop.is_set():
                    member.ended = True
                    spent = batch.share(member, time.perf_counter() - started)
                    message = f"stopped after step {done} of {total} of a run it shared"
                    stopped = TaskCancelledError(message, step=done)
                    usage = self.outcomes.used(member.task, spent)
                    self.outcomes.stopped(member.task, stopped, usage, draining=self.draining.is_set())
                else:
                    progress = {"step": done, "total": total}
                    task = member.task  # a run that lost its lease records nothing more
                    self.outcomes.publish(
                        self.store.runs.add_event(task.id, "progress", progress, task.attempts)
                    )

        return on_step

    def _failed(self, batch: Batch, exc: Exception, started: float) -> None:
        """A failed shared run is retried one task at a time, so that one task's failure (or a
        batch too large for the device) does not fail its neighbours; a lone run's failure ends it."""
        live = batch.live()
        if isinstance(exc, EngineRunError) and len(live) > 1:
            logger.warning("a run of %d tasks failed (%s); running each alone", len(live), exc.message)
            for member in live:
                with task_context(task_id=member.task.id):
                    self._run(Batch(batch.engine, [member]))
            return
        elapsed = time.perf_counter() - started
        for member in live:
            usage = self.outcomes.used(member.task, batch.share(member, elapsed))
            self.outcomes.end(member.task, exc, usage, draining=self.draining.is_set())


class StopFlags:
    """The stop flag of each task this process runs, set by a ``cancel`` signal or a lost lease."""

    def __init__(self) -> None:
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def watch(self, task_id: str) -> threading.Event:
        with self._lock:
            return self._flags.setdefault(task_id, threading.Event())

    def stop(self, task_id: str) -> None:
        with self._lock:
            flag = self._flags.get(task_id)
        if flag is not None:
            flag.set()

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._flags.pop(task_id, None)

    def __contains__(self, task_id: object) -> bool:
        """Whether a run of ``task_id`` is going on here."""
        with self._lock:
            return task_id in self._flags


def _stop_flag(flags: StopFlags, store: TaskStore, task: Task) -> threading.Event:
    """The flag a ``cancel`` signal sets. The store is read after the flag is in place, so a
    cancel between the claim and now is seen one way or the other."""
    stop = flags.watch(task.id)
    if task.cancel_requested or store.get(task.id).cancel_requested:
        stop.set()
    return stop


def _poll_cancels(store: TaskStore, batch: Batch) -> None:
    """Stop the members a caller asked to cancel, read from the store: a ``cancel`` signal is the
    fast way, and this the sure one (a signal from another process may not arrive)."""
    running = {member.task.id: member for member in batch.live() if not member.stop.is_set()}
    for task_id in store.leases.cancel_requested(list(running)):
        running[task_id].stop.set()


def _batch_ids(batch: Batch) -> str:
    """What a shared run's lines carry as their task id: its tasks' ids, comma-separated."""
    return ",".join(member.task.id for member in batch.members)


def _expire_quietly(outcomes: Outcomes) -> None:
    try:
        expired = outcomes.store.runs.expire()
        if expired:
            logger.info("expired %d finished task(s)", expired)
    except Exception:  # retention must never stop the worker
        logger.exception("expiring old tasks failed")
