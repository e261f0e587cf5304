"""One process's scheduler: the front door, the worker and finishing over one task store and one
event channel, with the data directory's lock, crash recovery and the webhook sender.

The roles talk only through the store and the channel (``channel.py``), except the worker's
one-way hand-off of a finished run's images to finishing, which needs them in memory:

    route ──> FrontDoor.check ──> store.create ──> "queued" signal ──> Worker claims, runs engine
                                                                         │ Finishing.submit
    route <── FrontDoor.wait <── "completed" event (images attached) <── Finishing encodes, stores

The thread hand-offs of a synchronous request, in order: the event loop (route, fetch) → a
thread for the prechecks → a thread for decoding and planning → a thread for the store insert →
the worker thread (claim, engine run) → a post-processing thread (screen, mark, encode, sign,
write) → the commit thread (record the end) → the event loop (``call_soon_threadsafe``). Each
carries the task's log context (``logs.py``).

Roles (:class:`Roles`): the embedded default runs all three in one process. With a shared store
(``database_url``) a process may run only the front door (``serve --no-worker``) or only a worker
with finishing (``plantain worker``, for some engines: a pool), and the channel is the store
itself (``store_channel.py``).

On the embedded database only one server process may use a data directory (a lock file says so):
at start, tasks left running by a killed process are queued again (or failed once they have used
``max_attempts``). On a shared store no process may do that, since the others are alive: a task
whose worker died is taken back when its lease runs out (``leases.py``), by any process.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from plantain.engines.licences import licence_refused
from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError
from plantain.provenance.policy import ProvenancePolicy
from plantain.providers.routing import Attempt
from plantain.safety.policy import SafetyPolicy
from plantain.scheduler.batching import BatchLimits
from plantain.scheduler.channel import EventChannel, LocalChannel
from plantain.scheduler.finishing import Finishing
from plantain.scheduler.frontdoor import FrontDoor
from plantain.scheduler.leases import LeaseKeeper
from plantain.scheduler.outcomes import Outcomes
from plantain.scheduler.store_channel import StoreChannel
from plantain.scheduler.worker import IDLE_POLL_SECONDS, Worker
from plantain.settings import Settings
from plantain.storage.blobs import open_blobs
from plantain.storage.tasks import TaskStore, WebhookBody
from plantain.webhooks.delivery import RetryPolicy, WebhookDeliverer, webhook_secret

if TYPE_CHECKING:
    from plantain.planner.stage import Planner
    from plantain.search.grounder import Grounder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Roles:
    """What one process runs: the front door (the HTTP API's side), and a worker with finishing
    for ``engines`` (None: every engine it is asked for)."""

    front: bool = True
    worker: bool = True
    engines: tuple[str, ...] | None = None


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        registry: EngineRegistry,
        *,
        webhook_body: WebhookBody | None = None,
        channel: EventChannel | None = None,
        roles: Roles | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.shared = settings.database_url is not None  # other processes use the same store
        self.roles = roles or Roles(worker=settings.serve_worker)
        if not self.roles.worker and not self.shared:
            raise ConfigurationError(
                "a front door without a worker (serve --no-worker, serve_worker=false) needs "
                "database_url: on the embedded database no other process could run its tasks"
            )
        self.store = TaskStore(
            settings.data_dir,
            retention_seconds=settings.retention_seconds,
            webhook_body=webhook_body,
            currency=settings.price_currency,
            blobs=open_blobs(settings),
            lease_seconds=settings.lease_seconds,
            database_url=settings.database_url,
        )
        registry.attempts = self._record_attempt  # each engine's tries, for /metrics and /v1/usage
        self.channel = channel or (
            StoreChannel(self.store, settings.poll_seconds) if self.shared else LocalChannel()
        )
        self.safety = SafetyPolicy.from_settings(settings)
        self.provenance = ProvenancePolicy(settings)  # the signing identity is made on first start
        self.front = FrontDoor(
            settings, registry, self.store, self.channel, safety=self.safety, provenance=self.provenance
        )
        outcomes = Outcomes(self.store, self.channel, self.front.price, self._wake_webhooks)
        self.planner = _planner(settings) if self.roles.worker else None
        self.grounder = _grounder(settings) if self.roles.worker else None
        self.finishing = Finishing(outcomes, self.safety.screen_images, workers=settings.postprocess_workers)
        self.worker = Worker(
            outcomes,
            self.finishing,
            registry,
            limits=self.front.limits,
            batching=BatchLimits.from_settings(settings),
            provenance=self.provenance,
            safety=self.safety,
            engines=self.roles.engines,
            idle_poll_seconds=settings.poll_seconds if self.shared else IDLE_POLL_SECONDS,
            planner=self.planner,
            grounder=self.grounder,
        )
        self.leases = LeaseKeeper(
            outcomes, max_attempts=settings.max_attempts, on_lost=self.worker.flags.stop
        )
        self.webhooks: WebhookDeliverer | None = None
        self.ready = threading.Event()  # engines loaded
        self.load_error: str | None = None
        self._lock_file: IO[str] | None = None

    @property
    def draining(self) -> threading.Event:
        """Set once a drain has begun: the front door refuses new requests from then on."""
        return self.front.closed

    def _record_attempt(self, attempt: Attempt) -> None:
        self.store.engine_stats.record(
            attempt.engine,
            attempt.outcome,
            attempt.seconds,
            images=attempt.images,
            cost=attempt.cost,
            currency=self.settings.price_currency,
        )

    def start(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Take the data directory and recover what a dead process left (embedded database
        only), then start this process's roles. ``loop``: where subscribers live (None: a worker
        process, which has none)."""
        self.store.blobs.check()  # a bucket that cannot take the outputs stops the start, not each task
        if not self.shared:
            self._lock_file = _lock_data_dir(self.settings)
            self._recover()
        if loop is not None:
            self.channel.bind(loop)
        if self.roles.front or not self.shared:
            self._start_webhooks()  # what a killed server left pending goes out now
        if self.roles.worker:
            self.finishing.start()
            self.worker.start()
        self.leases.start()  # a front door too takes back the tasks of workers that died

    def _recover(self) -> None:
        requeued, failed = self.store.runs.recover(self.settings.max_attempts)
        if requeued or failed:
            logger.warning(
                "recovered after a stop: %d task(s) queued again, %d failed", len(requeued), len(failed)
            )
        self.store.runs.sweep_orphan_files()

    def _start_webhooks(self) -> None:
        self.webhooks = WebhookDeliverer(
            self.store.outbox,
            webhook_secret(self.settings),
            allowed_hosts=self.settings.allowed_hosts,
            timeout=self.settings.webhook_timeout_seconds,
            policy=RetryPolicy.from_settings(self.settings),
        )
        self.webhooks.start()

    def load(self, names: list[str]) -> None:
        """Load ``names`` (blocking) where this process runs a worker, then mark it ready; a
        front door alone loads no weights (it only checks requests against the engines)."""
        if self.roles.worker:
            for name in names:
                engine = self.registry.get(name)
                if licence_refused(engine):
                    # Served and refused per request, naming the licence: not a failed start.
                    logger.warning("engine %s not loaded: its licence is not accepted", name)
                    continue
                engine.load()
            if self.planner is not None:
                self.planner.load()  # a missing planner model shows in readiness, not per task
            if self.grounder is not None:
                self.grounder.load()  # so does a missing reranker
        self.safety.load()  # a missing or mislabelled classifier shows in readiness, not per task
        self.ready.set()

    def drain(self, grace_seconds: float) -> None:
        """Stop taking work; let the running batch finish for ``grace_seconds``, then stop it at
        its next step and queue its tasks again for the next start. Images already made are
        post-processed and stored before this returns."""
        self.front.closed.set()
        self.worker.drain(grace_seconds)  # leases are kept until the last image is stored

    def stop_now(self) -> None:
        """Cut a drain's grace short (a second SIGTERM): take no more work, and stop the running
        batch at its next step, its tasks queued again for the next start."""
        self.front.closed.set()
        self.worker.stop_now()

    def close(self) -> None:
        self.front.closed.set()
        self.worker.stop()
        self.leases.stop()
        if isinstance(self.channel, StoreChannel):
            self.channel.close()
        if self.webhooks is not None:
            self.webhooks.stop()  # undelivered webhooks stay in the outbox for the next start
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    def _wake_webhooks(self) -> None:
        if self.webhooks is not None:
            self.webhooks.wake()


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


def _planner(settings: Settings) -> Planner | None:
    """The planner stage when the server has one (``planner`` on), imported only then: its model
    is a language model, loaded beside the engines by the worker."""
    if settings.planner != "on":
        return None
    from plantain.planner.stage import Planner

    return Planner(settings)


def _grounder(settings: Settings) -> Grounder | None:
    """Search grounding when the server has a search provider, imported only then: its reranker
    is an image-text model, loaded beside the engines by the worker."""
    if settings.search_provider == "none":
        return None
    from plantain.search.grounder import Grounder

    return Grounder.from_settings(settings)
