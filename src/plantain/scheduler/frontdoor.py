"""The front door: what every dialect's routes call to check, queue, wait for and cancel a task.

A request is checked (everything that needs no image bytes first, then its URL inputs fetched,
its inputs decoded, its run planned and its seed fixed) *before* it becomes a task, so a bad input
is an ordinary 400 and never a failed task, and a refused request fetches nothing. Then it is a
row in the task store and a ``queued`` signal on the event channel, which carries the decoded
inputs to a worker in this process. A synchronous call (Gemini, OpenAI) is a task its caller
waits on through the channel; when such a caller goes away, its task is cancelled.

The front door talks to the worker and finishing only through the store and the channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from plantain.engines.base import EngineJob, PreviewCallback
from plantain.engines.model_names import engine_for_model
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidRequestError, QueueFullError, ShuttingDownError
from plantain.generation import precheck, prepare
from plantain.limits import Limits
from plantain.logs import task_context
from plantain.net.fetch import FetchLimits, fetch_inputs
from plantain.provenance.policy import ProvenancePolicy
from plantain.safety.policy import SafetyPolicy
from plantain.scheduler.channel import EventChannel, Images, Signal, Subscription
from plantain.scheduler.quotas import Quotas
from plantain.scheduler.results import error_of, images_of, result_from
from plantain.settings import Settings
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import TERMINAL_EVENTS, ImageRequest, ImageResult, Task
from plantain.usage import ANONYMOUS, Price

logger = logging.getLogger(__name__)

DisconnectCheck = Callable[[], Awaitable[bool]]
DISCONNECT_POLL_SECONDS = 0.2


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


@dataclass(frozen=True)
class Checked:
    """A request :meth:`FrontDoor.check` passed: its engine named, its inputs fetched and its
    seed fixed, with the job planned from its decoded inputs (handed to the worker)."""

    request: ImageRequest
    job: EngineJob | None = None


class FrontDoor:
    """Reads go to :attr:`store` (tasks, events, files, usage); everything else is a method here."""

    def __init__(
        self,
        settings: Settings,
        registry: EngineRegistry,
        store: TaskStore,
        channel: EventChannel,
        *,
        safety: SafetyPolicy,
        provenance: ProvenancePolicy,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.channel = channel
        self.safety = safety
        self.provenance = provenance
        self.price = Price.from_settings(settings)
        self.limits = Limits.from_settings(settings)  # what every door and the worker check
        self.fetch_limits = FetchLimits.from_settings(settings)  # image URLs, whichever door
        self.quotas = Quotas(settings)  # per API key, from the shared store
        self.closed = threading.Event()  # a drain has begun: new requests are refused

    def engine_name(self, model: str | None) -> str:
        return engine_for_model(self.registry, model)

    async def submit(self, request: ImageRequest, submission: Submission) -> tuple[Task, bool]:
        """Check ``request`` and queue it; returns (task, created). Bad input raises here."""
        with task_context(request_id=submission.request_id):  # its lines before it is a task
            self.check_open()  # a draining server refuses before it checks: the request may be fine
            if submission.idempotency_key is not None:  # a replay answers its first task, unchecked
                first = self.store.replayed(submission.idempotency_key, submission.fingerprint)
                if first is not None:
                    return first, False
            key_id = submission.api_key_id or ANONYMOUS
            self.quotas.check(key_id, self.store, images=request.num_images)  # before any work on it
            checked = await self.check(request, submission)
            self.check_capacity()
            return await self.enqueue(checked, submission)

    async def check(self, request: ImageRequest, submission: Submission) -> Checked:
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
        self._check_plan(request)
        self._check_grounding(request)
        request = self._without_unplanned_history(request)
        precheck(request, self.registry.get(engine_name), self.limits)
        return self.safety.admit(request)

    def _check_plan(self, request: ImageRequest) -> None:
        """A request that asks for the planner stage on a server without one is refused, not run
        without it: the caller expects its rewrite and text."""
        if request.plan and self.settings.planner != "on":
            raise InvalidRequestError(
                "plan: True is not allowed; this server has no planner stage (setting planner, "
                "PLANTAIN_PLANNER, is off), so a prompt cannot be rewritten here; send the request "
                "without asking for it",
                field="plan",
            )

    def _without_unplanned_history(self, request: ImageRequest) -> ImageRequest:
        """``request`` without its conversation's earlier images when no planner will run for it:
        nothing else reads them, so they are neither stored nor kept (the dialect's rule stands)."""
        if not request.earlier or self.settings.plans(request.plan):
            return request
        return request.model_copy(update={"history": (), "earlier": (), "from_history": 0})

    def _check_grounding(self, request: ImageRequest) -> None:
        """A request that asks for search grounding on a server without a search provider is
        refused, not run ungrounded: the caller expects its image to follow what search finds."""
        if request.grounding and self.settings.search_provider == "none":
            raise InvalidRequestError(
                "grounding: search was asked for, but this server has no search provider (setting "
                "search_provider, PLANTAIN_SEARCH_PROVIDER, is none); an operator can configure a "
                "SearXNG or Brave Search provider (docs/grounding.md), or send the request without search",
                field="grounding",
            )

    async def check_inputs(self, prechecked: ImageRequest, submission: Submission) -> Checked:
        """A request :meth:`precheck` returned with its URL inputs fetched, every input decoded
        and validated off the loop, and its seed fixed so that a rerun makes the same images."""
        if any(image.url is not None for image in prechecked.images):
            self.check_capacity()  # a full queue would refuse it after the fetch: refuse it before
            request_id = submission.request_id
            with task_context(request_id=request_id):  # a Gemini batch checks without submit()
                images = await fetch_inputs(prechecked.images, self.fetch_limits, request_id=request_id)
            prechecked = prechecked.model_copy(update={"images": images})
        engine = self.registry.get(prechecked.engine or "")
        job = await asyncio.to_thread(prepare, prechecked, engine, self.limits)
        return Checked(prechecked.model_copy(update={"seed": job.seeds[0]}), job)

    def check_open(self) -> None:
        """ShuttingDownError (503, with a retry hint) once a drain has begun: tasks queued now
        would wait for the next start, so the caller is better served elsewhere or later."""
        if self.closed.is_set():
            raise _shutting_down(self.settings.drain_seconds)

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
        queued = self.store.count("queued")
        if queued + count > limit:
            raise _queue_full(queued, count, limit)

    async def enqueue(self, checked: Checked, submission: Submission) -> tuple[Task, bool]:
        """Queue a request :meth:`check` returned; returns (task, created)."""
        request = checked.request
        engine_name = request.engine
        if engine_name is None:
            raise ValueError("enqueue() takes a request that check() returned (its engine is named)")
        new = NewTask(
            request=request,
            model=submission.model or engine_name,
            engine=engine_name,
            source=submission.source,
            idempotency_key=submission.idempotency_key,
            fingerprint=submission.fingerprint,
            webhook_url=submission.webhook_url,
            webhook_events=submission.webhook_events,
            api_key_id=submission.api_key_id or ANONYMOUS,
        )
        admit = self.quotas.admit(new.api_key_id, 1, request.num_images)  # checked again as it is queued
        task, created = await asyncio.to_thread(self.store.create, new, admit)
        if created:
            with task_context(task_id=task.id, request_id=submission.request_id):
                logger.info("task %s queued for request %s", task.id, submission.request_id)
            for event in self.store.events_after(task.id):
                self.channel.publish(event)
            self.channel.signal(Signal("queued", task.id, checked.job))
        return task, created

    def cancel(self, task_id: str) -> Task:
        """A queued task ends at once; a running one at its next step; an ended one stays."""
        event = self.store.cancel(task_id)
        if event is not None:
            self.channel.publish(event)
        self.channel.signal(Signal("cancel", task_id))
        return self.store.get(task_id)

    def subscribe(self, task_id: str) -> AbstractContextManager[Subscription]:
        """Live events of ``task_id`` (subscribe before reading the store, then skip what the
        store already gave, so none is missed between the two)."""
        return self.channel.subscribe(task_id)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """The task once it has ended, or as it is when ``timeout`` passes."""
        task, _ = await self._wait(task_id, timeout)
        return task

    async def _wait(self, task_id: str, timeout: float | None = None) -> tuple[Task, Images | None]:
        with self.subscribe(task_id) as events:
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
            return task, events.images

    async def run(
        self,
        request: ImageRequest,
        submission: Submission,
        *,
        is_disconnected: DisconnectCheck | None = None,
        on_preview: PreviewCallback | None = None,
    ) -> tuple[Task, ImageResult]:
        """Submit and wait (the synchronous dialects): the task and its images, or its error raised.
        ``on_preview`` gets the run's previews (``request.previews`` of them, on the worker's
        thread). A caller that goes away (or is cancelled) cancels the task, queued or running."""
        task, _ = await self.submit(request, submission)
        watcher = asyncio.create_task(_watch(self, task.id, is_disconnected)) if is_disconnected else None
        # Watched from just after the task is queued: its first preview comes after a claim and
        # at least one denoising step, long after this line has run.
        previews = (
            self.channel.watch_previews(task.id, on_preview) if on_preview else contextlib.nullcontext()
        )
        try:
            with previews:
                task, images = await self._wait(task.id)
        except asyncio.CancelledError:
            self.cancel(task.id)
            raise
        finally:
            if watcher is not None:
                watcher.cancel()
        if images is not None and task.status == "succeeded":
            return task, result_from(task, images)  # straight from finishing: no file read back
        return task, await asyncio.to_thread(self.result_of, task)

    def result_of(self, task: Task) -> ImageResult:
        """A finished task's images read back from its files, or its error raised again."""
        if task.status != "succeeded" or task.result is None:
            raise error_of(task)
        return result_from(task, images_of(task, self.store))


async def _watch(door: FrontDoor, task_id: str, is_disconnected: DisconnectCheck) -> None:
    while True:
        if await is_disconnected():
            door.cancel(task_id)
            return
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


def _shutting_down(drain_seconds: float) -> ShuttingDownError:
    retry_after = max(1, math.ceil(drain_seconds))
    return ShuttingDownError(
        "the server is shutting down (draining after SIGTERM) and takes no new requests; "
        f"send this one to another server, or retry in {retry_after} s once this one is back",
        retry_after=retry_after,
    )


def _queue_full(queued: int, count: int, limit: int) -> QueueFullError:
    waiting = f"{queued} tasks waiting, max_queued_tasks is {limit}"
    return QueueFullError(
        f"the queue is full ({waiting}); retry later"
        if count == 1
        else f"the queue has room for {limit - queued} more tasks ({waiting}) and this batch has "
        f"{count}; retry later",
        retry_after=max(1, min(60, queued // 4)),
    )
