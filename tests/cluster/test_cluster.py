"""Two front doors and two workers as separate processes on one PostgreSQL database and one S3
bucket (tests/cluster/harness.py): what a user of a cluster relies on, including a worker and a
front door killed with SIGKILL."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import standardwebhooks
from tests.cluster.harness import Cluster, FrontDoor, Member

from plantain.testing import WebhookReceiver

pytestmark = pytest.mark.slow  # processes start in seconds each


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, postgres: Any, s3: Any
) -> Iterator[Cluster]:
    bucket = s3.bucket("plantain-cluster")
    s3_settings = {
        "storage_url": f"s3://{bucket}/outputs",
        "s3_endpoint_url": s3.endpoint,
        "s3_access_key_id": "plantain-tests",
        "s3_secret_access_key": "plantain-tests-secret",
    }
    database = postgres.database("plantain_cluster")
    made = Cluster(tmp_path_factory.mktemp("cluster"), data_dir / "models", database, s3_settings)
    try:
        made.front_door()  # the first alone: it migrates the database
        made.front_door()
        made.worker()
        made.worker()
        yield made
    except BaseException:
        for member in made.members:
            print(f"--- {member.name}\n{member.tail()}")
        raise
    finally:
        made.stop()


def doors(cluster: Cluster) -> list[FrontDoor]:
    return [m for m in cluster.members if isinstance(m, FrontDoor) and m.process.poll() is None]


def submit(
    door: FrontDoor, steps: int = 2, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    body = {"model": "tiny", "input": {"prompt": "a kite", "resolution": "512", "steps": steps}, **extra}
    response = httpx.post(f"{door.url}/v1/tasks", json=body, headers=headers or {}, timeout=60)
    assert response.status_code in (201, 202), response.text
    task: dict[str, Any] = response.json()
    return task


def wait_ended(door: FrontDoor, task_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = httpx.get(f"{door.url}/v1/tasks/{task_id}", timeout=10).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
        assert time.monotonic() < deadline, f"{task_id} still {task['status']}"
        time.sleep(0.1)


def events(door: FrontDoor, task_id: str, last_event_id: int | None = None) -> list[tuple[int, str]]:
    """(seq, type) of each event of the SSE stream, from ``last_event_id`` on, to its end."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    with httpx.stream("GET", f"{door.url}/v1/tasks/{task_id}/events", headers=headers, timeout=60) as sse:
        return list(sse_events(sse))


def sse_events(sse: httpx.Response) -> Iterator[tuple[int, str]]:
    """(seq, type) of each event of an SSE stream as it arrives."""
    seq = 0
    for line in sse.iter_lines():
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("event: "):
            yield seq, line[7:]


def test_tasks_sent_to_either_front_door_complete_once_and_read_from_both(cluster: Cluster) -> None:
    first, second = doors(cluster)
    submitted = [submit(door)["id"] for _ in range(4) for door in (first, second)]
    for task_id in submitted:
        ended = wait_ended(first, task_id)
        assert (ended["status"], ended["attempts"]) == ("succeeded", 1), ended
        types = [kind for _, kind in events(second, task_id)]
        assert types.count("started") == 1 and types.count("completed") == 1, types
        file_url = urlsplit(ended["output"]["images"][0]["url"]).path
        downloads = [httpx.get(f"{door.url}{file_url}", timeout=30) for door in (first, second)]
        assert [d.status_code for d in downloads] == [200, 200]
        assert downloads[0].content == downloads[1].content and downloads[0].content[:4] == b"\x89PNG"


def test_fifty_idempotent_submissions_split_across_front_doors_make_fifty_tasks(cluster: Cluster) -> None:
    first, second = doors(cluster)

    def send(index: int) -> tuple[str, str]:
        door = (first, second)[index % 2]
        key = f"cluster-key-{index // 2}"  # each key is sent once to each front door, at once
        task = submit(door, headers={"Idempotency-Key": key})
        return key, task["id"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(send, range(100)))
    by_key: dict[str, set[str]] = {}
    for key, task_id in results:
        by_key.setdefault(key, set()).add(task_id)
    assert len(by_key) == 50 and all(len(ids) == 1 for ids in by_key.values())
    for (task_id,) in by_key.values():
        ended = wait_ended(second, task_id)
        assert (ended["status"], ended["attempts"]) == ("succeeded", 1)
        assert [kind for _, kind in events(first, task_id)].count("completed") == 1


def test_each_completed_webhook_is_delivered_once_signed(cluster: Cluster) -> None:
    with WebhookReceiver() as receiver:
        submitted = [submit(door, webhook=receiver.url)["id"] for door in doors(cluster) for _ in range(3)]
        receiver.wait_for(lambda seen: _completed(seen) >= len(submitted), timeout=120)
        time.sleep(2)  # any duplicate a second front door sent would have arrived by now
        hook = standardwebhooks.Webhook(cluster.secret)
        payloads = [hook.verify(d.body, d.headers) for d in receiver.deliveries]
    completed = Counter(p["data"]["id"] for p in payloads if p["type"] == "task.completed")
    assert completed == Counter(submitted)  # each task once, none twice
    ids = Counter(d.headers["webhook-id"] for d in receiver.deliveries)
    assert max(ids.values()) == 1  # no message sent twice


def _completed(seen: list[Any]) -> int:
    return sum(1 for d in seen if json.loads(d.body)["type"] == "task.completed")


def test_a_task_whose_worker_is_killed_completes_on_the_other(cluster: Cluster) -> None:
    workers = [m for m in cluster.members if not isinstance(m, FrontDoor) and m.process.poll() is None]
    door = doors(cluster)[0]
    task_id = submit(door, steps=120)["id"]
    holder = _holder(cluster, workers, door, task_id)
    holder.kill()
    ended = wait_ended(door, task_id, timeout=180)
    assert (ended["status"], ended["attempts"]) == ("succeeded", 2), ended
    types = [kind for _, kind in events(door, task_id)]
    assert types.count("started") == 2 and types.count("completed") == 1
    assert any("requeued" in json.dumps(e) for e in _stored_events(door, task_id))
    cluster.worker()  # back to two for the tests after this one


def _holder(cluster: Cluster, workers: list[Member], door: FrontDoor, task_id: str) -> Member:
    """The worker running ``task_id``: the one whose log names it once it is running."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{door.url}/v1/tasks/{task_id}", timeout=10).json()["status"] == "running":
            for worker in workers:
                if task_id in worker.log.read_text(errors="replace"):
                    return worker
        time.sleep(0.05)
    raise AssertionError(f"no worker said it ran {task_id}")


def _stored_events(door: FrontDoor, task_id: str) -> list[dict[str, Any]]:
    with httpx.stream("GET", f"{door.url}/v1/tasks/{task_id}/events", timeout=30) as sse:
        return [json.loads(line[6:]) for line in sse.iter_lines() if line.startswith("data: ")]


def test_an_sse_client_resumes_on_the_other_front_door_after_a_kill(cluster: Cluster) -> None:
    first, second = doors(cluster)
    task_id = submit(first, steps=60)["id"]
    seen: list[tuple[int, str]] = []
    with httpx.stream("GET", f"{first.url}/v1/tasks/{task_id}/events", timeout=60) as sse:
        for event in sse_events(sse):
            seen.append(event)
            if event[1] == "progress" and len(seen) >= 4:
                first.kill()  # mid-stream, mid-run
                break
    rest = events(second, task_id, last_event_id=seen[-1][0])
    whole = seen + rest
    assert [seq for seq, _ in whole] == list(range(1, len(whole) + 1))  # nothing missed or repeated
    assert whole[-1][1] == "completed"
    cluster.front_door()
