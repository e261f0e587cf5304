"""The Ray Serve deployment (``plantain.cluster.ray_serve``) on a real local Ray instance sized for
2 cores: replicas of the tiny engine's worker deployment take tasks from a shared PostgreSQL
store, a replica killed mid-task leaves its task to another replica, and the replica count
follows the engine's queue depth."""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from tests.services import PostgreSQL

from plantain.errors import ConfigurationError
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import ImageRequest

with warnings.catch_warnings():  # Ray's models use a pydantic 1 idiom that pydantic 2 warns about
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray
    from ray import serve
    from ray.serve.config import AutoscalingContext

    from plantain.cluster import ray_serve

pytestmark = [
    pytest.mark.slow,
    # the test shortens Serve's metrics interval, a field Serve deprecates for environment variables
    # that it does not read yet (2.60)
    pytest.mark.filterwarnings("ignore:The `metrics_interval_s` field:DeprecationWarning"),
]

REPLICA_CPUS = 0.25  # logical CPUs per replica: up to 5 replicas fit the 2 of the local instance
START_SECONDS = 120.0  # a replica imports torch and loads the tiny engine on 2 busy cores
FAST_METRICS = {"metrics_interval_s": 0.5, "look_back_period_s": 1.0, "upscale_delay_s": 0.0}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False)
    serve.start(proxy_location="Disabled")  # nothing is sent to the replicas: they pull
    try:
        yield
    finally:
        serve.shutdown()
        ray.shutdown()


def fields(data_dir: Path, hub_cache: Path, database_url: str) -> dict[str, Any]:
    return {
        "data_dir": data_dir,
        "hub_cache": hub_cache,
        "database_url": database_url,
        "default_engine": "tiny",
        "lease_seconds": 3,  # a killed replica's task is queued again 3 s after its last renewal
        "drain_seconds": 2,
    }


def deploy(settings_fields: dict[str, Any], name: str | None = None, **options: Any) -> str:
    """The tiny engine's application, under its own name (``plantain-tiny``) or ``name``."""
    apps = ray_serve.build_app(settings_fields, ["tiny"], num_gpus=0, num_cpus=REPLICA_CPUS, **options)
    if name is None:
        ray_serve.run_apps(apps)
        (name,) = apps
    else:
        serve.run(apps[ray_serve.app_name("tiny")], name=name, route_prefix=None)
    return name


def replicas(name: str) -> dict[str, int]:
    """The deployment's replicas by state (RUNNING, STARTING, STOPPING, …)."""
    deployment = serve.status().applications[name].deployments[ray_serve.deployment_name("tiny")]
    return {str(getattr(state, "value", state)): count for state, count in deployment.replica_states.items()}


def submit(store: TaskStore, steps: int) -> str:
    request = ImageRequest.create(prompt="a cube", engine="tiny", size="512", options={"steps": steps})
    task, _ = store.create(NewTask(request=request, model="tiny", engine="tiny", source="tasks"))
    return task.id


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def holder(name: str, task_id: str) -> dict[str, Any]:
    """The replica running ``task_id``: Serve routes each call to some replica, so ask until one
    says it holds the task."""
    handle = serve.get_app_handle(name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        described: dict[str, Any] = handle.describe.remote().result()
        if task_id in described["held"]:
            return described
    raise AssertionError(f"no replica says it holds {task_id}")


@pytest.fixture(scope="module")
def pair(
    local_ray: None, data_dir: Path, hub_cache: Path, postgres: PostgreSQL
) -> Iterator[tuple[str, TaskStore]]:
    """Two replicas of the tiny engine's deployment on one new database, and a store on it."""
    url = postgres.database(f"plantain_{secrets.token_hex(6)}")
    store = TaskStore(data_dir, retention_seconds=3600, database_url=url)
    name = deploy(fields(data_dir, hub_cache, url), min_replicas=2, max_replicas=2)
    try:
        yield name, store
    finally:
        serve.delete(name)
        store.close()


def test_replicas_run_the_queued_tasks(pair: tuple[str, TaskStore]) -> None:
    name, store = pair
    assert replicas(name) == {"RUNNING": 2}
    task_ids = [submit(store, steps=4) for _ in range(4)]
    wait_for(
        lambda: all(store.get(task_id).status == "succeeded" for task_id in task_ids),
        START_SECONDS,
        "the tasks to succeed",
    )
    assert [store.get(task_id).attempts for task_id in task_ids] == [1, 1, 1, 1]


def test_a_killed_replicas_task_completes_on_another(pair: tuple[str, TaskStore]) -> None:
    name, store = pair
    task_id = submit(store, steps=200)  # long enough to be killed in the middle
    wait_for(lambda: store.get(task_id).status == "running", START_SECONDS, "the task to start")
    victim = holder(name, task_id)
    ray.kill(ray.get_actor(victim["actor"], namespace="serve"), no_restart=True)
    assert store.get(task_id).status == "running"  # killed mid-task
    wait_for(lambda: store.get(task_id).status == "succeeded", START_SECONDS, "the task to succeed")
    assert store.get(task_id).attempts == 2
    wait_for(lambda: replicas(name) == {"RUNNING": 2}, START_SECONDS, "Serve to replace the replica")
    assert victim["pid"] not in {holder_pid(name) for _ in range(10)}


def holder_pid(name: str) -> int:
    pid: int = serve.get_app_handle(name).describe.remote().result()["pid"]
    return pid


def test_replicas_follow_the_queue_depth(
    local_ray: None, data_dir: Path, hub_cache: Path, postgres_url: str
) -> None:
    store = TaskStore(data_dir, retention_seconds=3600, database_url=postgres_url)
    name = deploy(
        fields(data_dir, hub_cache, postgres_url),
        "plantain-tiny-autoscaled",  # beside the module's pair, on a database of its own
        min_replicas=1,
        max_replicas=3,
        tasks_per_replica=2,
        autoscaling={**FAST_METRICS, "downscale_delay_s": 1.0},
    )
    try:
        assert replicas(name) == {"RUNNING": 1}
        task_ids = [submit(store, steps=40) for _ in range(8)]  # 8 tasks: 4 replicas asked, 3 allowed
        wait_for(lambda: running_or_starting(name) == 3, START_SECONDS, "the deployment to scale up")
        wait_for(
            lambda: all(store.get(task_id).status == "succeeded" for task_id in task_ids),
            START_SECONDS,
            "the tasks to succeed",
        )
        wait_for(lambda: running_or_starting(name) == 1, START_SECONDS, "the deployment to scale down")
    finally:
        serve.delete(name)
        store.close()


def running_or_starting(name: str) -> int:
    states = replicas(name)
    return states.get("RUNNING", 0) + states.get("STARTING", 0)


class Context:
    """What :func:`ray_serve.queue_depth_policy` reads of Serve's AutoscalingContext."""

    def __init__(self, target: int, reports: dict[str, float]) -> None:
        self.target_num_replicas = target
        self.aggregated_metrics = {ray_serve.WANTED_METRIC: reports} if reports else {}


def decide(target: int, reports: dict[str, float]) -> int:
    replicas, state = ray_serve.queue_depth_policy(cast(AutoscalingContext, Context(target, reports)))
    assert state == {}
    return replicas


def test_the_policy_takes_the_largest_report_and_waits_for_one() -> None:
    assert decide(2, {}) == 2  # no replica has reported yet: keep the target
    assert decide(1, {"a": 3.0, "b": 2.5}) == 3
    assert decide(3, {"a": 0.0}) == 0  # Serve raises it to min_replicas
    assert ray_serve.wanted_replicas(0, 2) == 0
    assert ray_serve.wanted_replicas(5, 2) == 3


def test_build_app_refuses_what_cannot_work(data_dir: Path, postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="database_url"):
        ray_serve.build_app({"data_dir": data_dir}, ["tiny"])
    with pytest.raises(ConfigurationError, match="min_replicas"):
        ray_serve.build_app({"data_dir": data_dir, "database_url": postgres_url}, ["tiny"], min_replicas=0)
