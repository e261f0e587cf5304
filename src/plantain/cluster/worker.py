"""A worker process (``plantain worker``): the worker and finishing roles of the scheduler on the
shared store (``database_url``) and storage (``storage_url``), for one or more engines, with no
HTTP API. Front doors (``plantain serve --no-worker``) take the requests; any number of workers
claim them. Workers of one engine share its queue; workers of different engines are separate
pools. The Ray Serve deployment (``ray_serve.py``) runs one of these in each replica.

A worker renders webhook bodies itself (the event that ends a task is written where it ends), so
every process of a cluster needs the same ``base_url``: the address clients reach the front doors
at.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from plantain.dialects import webhooks
from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError
from plantain.scheduler.scheduler import Roles, Scheduler
from plantain.settings import Settings

logger = logging.getLogger(__name__)


class WorkerService:
    """One worker process's scheduler, from start to a drained stop."""

    def __init__(
        self, settings: Settings, engines: Sequence[str], registry: EngineRegistry | None = None
    ) -> None:
        if settings.database_url is None:
            raise ConfigurationError(
                "plantain worker needs database_url (postgresql://…): a worker takes its tasks from "
                "the store its front doors share; with the embedded database, `plantain serve` "
                "runs the worker itself"
            )
        if not engines:
            raise ConfigurationError("plantain worker needs at least one --engine")
        self.settings = settings
        self.engines = tuple(engines)
        registry = registry or EngineRegistry(settings)
        for name in self.engines:
            registry.get(name)  # an unknown engine fails here, before anything starts
        self.scheduler = Scheduler(
            settings,
            registry,
            webhook_body=webhooks.webhook_renderer(settings.base_url),
            roles=Roles(front=False, worker=True, engines=self.engines),
        )
        self.stopped = threading.Event()

    def start(self) -> None:
        """Start claiming at once; the engines load meanwhile (a claim waits for its engine)."""
        self.scheduler.start(None)
        self.scheduler.load(list(self.engines))
        logger.info("worker ready: %s", ", ".join(self.engines))

    def drain(self) -> None:
        """Take no more tasks; let the running batch finish for ``drain_seconds`` (then it is
        queued again for another worker), store what was made, and close."""
        if self.stopped.is_set():
            return
        self.scheduler.drain(self.settings.drain_seconds)
        self.scheduler.close()
        self.stopped.set()

    def kill_switch(self) -> None:
        """A second signal: stop the running batch at its next step (it is queued again)."""
        self.scheduler.stop_now()
