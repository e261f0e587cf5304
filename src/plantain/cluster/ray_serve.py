"""Ray Serve (``plantain[ray]``, docs/deploy.md): one Serve application per engine, whose one
deployment (``plantain-worker-<engine>``) runs a Plantain worker (:class:`WorkerService`) in each
replica, with ``num_gpus`` per replica. Front doors stay ordinary processes (``plantain serve
--no-worker``) behind any load balancer; replicas and front doors meet only in the shared store
(``database_url``, and ``storage_url`` when they do not share a disk). Never imported unless a
deployment asks for it.

    from ray import serve
    from plantain.cluster.ray_serve import build_app, run_apps
    run_apps(build_app({"database_url": "postgresql://…"}, ["flux2-klein-4b"], max_replicas=8))

Scaling by queue depth. Workers pull their tasks from the store: Serve routes no requests to
them, so its default policy (ongoing requests per replica) would see no load at all. Each replica
reports instead, as a custom autoscaling metric (``record_autoscaling_stats``), the number of
replicas its engine's backlog asks for: its queued and running tasks over
``tasks_per_replica``, counted in the store. :func:`queue_depth_policy`, a custom policy
(``AutoscalingConfig.policy``), takes the largest report. This is the simplest mechanism Serve
has that reads a metric of the application's own: no controller process beside Serve, and Serve
applies ``min_replicas``/``max_replicas``, ``upscale_delay_s`` and ``downscale_delay_s`` to the
decision (Ray 2.54 or later; earlier ones bound it only). The limit: a deployment with no
replica reports nothing, so ``min_replicas`` is at least 1 (no scale to zero).

A replica that is stopped (scaled down, redeployed) drains its worker in ``__del__``, Serve's
graceful-shutdown hook: the running batch may finish for ``drain_seconds``, then it is queued
again. A replica that dies instead leaves its tasks to their leases: they are queued again after
``lease_seconds`` and run on another replica.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray import serve
from ray.serve.config import AutoscalingConfig, AutoscalingContext
from ray.serve.deployment import Application

from plantain.cluster.worker import WorkerService
from plantain.errors import ConfigurationError
from plantain.settings import Settings
from plantain.storage.tasks import TaskStore

logger = logging.getLogger(__name__)

WANTED_METRIC = "plantain_wanted_replicas"
"""The custom autoscaling metric each replica reports: the replicas its engine's backlog asks for."""

DRAIN_MARGIN_SECONDS = 30.0  # Serve's graceful-shutdown budget beyond drain_seconds


def deployment_name(engine: str) -> str:
    return f"plantain-worker-{engine}"


def app_name(engine: str) -> str:
    return f"plantain-{engine}"


def engine_backlog(store: TaskStore, engine: str) -> int:
    """The engine's tasks that need a worker: queued, or running (on any replica)."""
    with store.database.read() as db:
        row = db.execute(
            "SELECT COUNT(*) FROM tasks WHERE engine = ? AND status IN ('queued', 'running')", (engine,)
        ).fetchone()
    return int(row[0])


def wanted_replicas(backlog: int, tasks_per_replica: float) -> int:
    return math.ceil(backlog / tasks_per_replica)


def queue_depth_policy(ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
    """Serve's custom policy: the largest number of replicas a replica asked for (they all count
    the same queue); no report yet keeps the current target. Serve bounds and delays the result."""
    reports = (ctx.aggregated_metrics or {}).get(WANTED_METRIC, {})
    if not reports:
        return ctx.target_num_replicas, {}
    return math.ceil(max(reports.values())), {}


class PlantainWorker:
    """One replica: a worker for one engine, started in the background so that the replica
    answers Serve (health checks, metrics) while the engine loads."""

    def __init__(self, settings_fields: dict[str, Any], engine: str, tasks_per_replica: float) -> None:
        self.engine = engine
        self.tasks_per_replica = tasks_per_replica
        self.service = WorkerService(Settings(**settings_fields), [engine])
        self.start_error: BaseException | None = None
        self._starter = threading.Thread(target=self._start, name="plantain-start", daemon=True)
        self._starter.start()

    def _start(self) -> None:
        try:
            self.service.start()
        except BaseException as exc:  # reported by check_health, which has Serve replace the replica
            logger.exception("worker for %s failed to start", self.engine)
            self.start_error = exc

    def check_health(self) -> None:
        """Serve's health check: fails once the worker failed to start, stopped, or its claiming
        thread died."""
        if self.start_error is not None:
            raise RuntimeError(f"the {self.engine} worker failed to start: {self.start_error!r}")
        if self.service.stopped.is_set():
            raise RuntimeError(f"the {self.engine} worker has stopped")
        claiming = self.service.scheduler.worker._thread
        if claiming is not None and not claiming.is_alive() and not self._draining():
            raise RuntimeError(f"the {self.engine} worker's claiming thread died")

    def _draining(self) -> bool:
        return self.service.scheduler.worker.draining.is_set()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's custom autoscaling metrics, every metrics interval (one short read of the store)."""
        backlog = engine_backlog(self.service.scheduler.store, self.engine)
        return {WANTED_METRIC: float(wanted_replicas(backlog, self.tasks_per_replica))}

    def describe(self) -> dict[str, Any]:
        """Which replica this is and what it runs: its Ray actor name, pid and held task ids."""
        return {
            "actor": ray.get_runtime_context().get_actor_name(),
            "pid": os.getpid(),
            "held": sorted(self.service.scheduler.worker.outcomes.held()),
        }

    def __del__(self) -> None:
        """Serve's graceful-shutdown hook: drain (the running batch may finish), then close."""
        service: WorkerService | None = getattr(self, "service", None)
        if service is not None:
            service.drain()


def worker_deployment(
    settings: Settings,
    engine: str,
    *,
    num_gpus: float,
    num_cpus: float,
    min_replicas: int,
    max_replicas: int,
    autoscaling: Mapping[str, Any],
) -> serve.Deployment:
    if min_replicas < 1:
        raise ConfigurationError(
            f"min_replicas must be at least 1, not {min_replicas}: the replicas report the queue "
            "depth, so a deployment scaled to zero would never scale up again"
        )
    config = AutoscalingConfig(
        **{
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "policy": {"policy_function": queue_depth_policy},
            **autoscaling,
        }
    )
    return serve.deployment(
        name=deployment_name(engine),
        ray_actor_options={"num_gpus": num_gpus, "num_cpus": num_cpus},
        autoscaling_config=config,
        graceful_shutdown_timeout_s=settings.drain_seconds + DRAIN_MARGIN_SECONDS,
    )(PlantainWorker)


def build_app(
    settings_fields: dict[str, Any],
    engines: Sequence[str],
    *,
    num_gpus: float = 1,
    num_cpus: float = 1,
    min_replicas: int = 1,
    max_replicas: int = 4,
    tasks_per_replica: float = 2,
    autoscaling: Mapping[str, Any] | None = None,
) -> dict[str, Application]:
    """One Serve application per engine, by application name (``plantain-<engine>``), for
    :func:`run_apps` or ``serve.run``. ``settings_fields``: :class:`Settings` fields for every
    replica (on top of its PLANTAIN_* environment); they must name a shared ``database_url``.
    ``autoscaling``: more :class:`AutoscalingConfig` fields (``upscale_delay_s``, …)."""
    settings = Settings(**settings_fields)
    if settings.database_url is None:
        raise ConfigurationError("Ray Serve workers need database_url (postgresql://…): the shared store")
    apps: dict[str, Application] = {}
    for engine in engines:
        deployment = worker_deployment(
            settings,
            engine,
            num_gpus=num_gpus,
            num_cpus=num_cpus,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            autoscaling=autoscaling or {},
        )
        apps[app_name(engine)] = deployment.bind(settings_fields, engine, tasks_per_replica)
    return apps


def app_builder(args: dict[str, Any]) -> Application:
    """For a Serve config file (``serve deploy``/``serve run``): one engine's application, from
    ``{"engine": …, "settings": {…}, "num_gpus": …, "min_replicas": …, …}`` (:func:`build_app`'s
    keywords)."""
    options = dict(args)
    engine = str(options.pop("engine"))
    settings_fields = dict(options.pop("settings", {}))
    return build_app(settings_fields, [engine], **options)[app_name(engine)]


def run_apps(apps: Mapping[str, Application]) -> None:
    """Deploy :func:`build_app`'s applications on the connected Ray cluster, with no HTTP route
    (nothing is sent to them), and return once each is running."""
    for name, app in apps.items():
        serve.run(app, name=name, route_prefix=None)
