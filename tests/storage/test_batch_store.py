"""The batch store beside the task store, on SQLite and on PostgreSQL: a batch's results expire together,
``retention_seconds`` after its *last* request ends, and the batch goes with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantain.errors import NotFoundError
from plantain.storage.batches import BatchStore
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import ImageRequest, TaskError

RETENTION = 1000.0
ERROR = TaskError(code="engine_failed", message="boom", status=500)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tasks(tmp_path: Path, clock: Clock, database_url: str | None) -> Iterator[TaskStore]:
    store = TaskStore(tmp_path, retention_seconds=RETENTION, clock=clock, database_url=database_url)
    yield store
    store.close()


@pytest.fixture
def batches(tasks: TaskStore, clock: Clock) -> BatchStore:
    return BatchStore(tasks.database, clock=clock)


def queue(tasks: TaskStore, count: int) -> list[str]:
    request = ImageRequest.create(prompt="a cube", engine="tiny")
    return [
        tasks.create(NewTask(request=request, model="m", engine="tiny", source="t"))[0].id
        for _ in range(count)
    ]


def expiries(tasks: TaskStore, ids: list[str]) -> list[float | None]:
    return [tasks.get(task_id).expires_at for task_id in ids]


def test_ended_requests_wait_for_the_last_then_all_expire_together_with_the_batch(
    tasks: TaskStore, batches: BatchStore, clock: Clock
) -> None:
    ids = queue(tasks, 3)
    batch = batches.create(source="gemini", model="m", display_name="b", members=[(i, None) for i in ids])
    clock.now = 100
    tasks.runs.fail(ids[0], ERROR)
    clock.now = 200
    tasks.cancel(ids[1])
    assert expiries(tasks, ids) == [None, None, None]  # the third has not ended: nothing expires
    clock.now = 300
    tasks.runs.fail(ids[2], ERROR)
    assert expiries(tasks, ids) == [300 + RETENTION] * 3

    clock.now = 300 + RETENTION - 1
    assert tasks.runs.expire() == 0 and batches.get(batch.id).members
    clock.now = 300 + RETENTION
    assert tasks.runs.expire() == 3
    with pytest.raises(NotFoundError, match="deleted, or its results expired"):
        batches.get(batch.id)


def test_a_batch_of_requests_that_had_already_ended_expires_with_the_latest(
    tasks: TaskStore, batches: BatchStore, clock: Clock
) -> None:
    ids = queue(tasks, 2)
    for when, task_id in zip((10, 20), ids, strict=True):
        clock.now = when
        tasks.runs.fail(task_id, ERROR)
    batches.create(source="gemini", model="m", display_name="b", members=[(i, {"key": i}) for i in ids])
    assert expiries(tasks, ids) == [20 + RETENTION] * 2


def test_deleting_a_batch_expires_its_ended_requests_now(
    tasks: TaskStore, batches: BatchStore, clock: Clock
) -> None:
    ids = queue(tasks, 2)
    batch = batches.create(source="gemini", model="m", display_name="b", members=[(i, None) for i in ids])
    clock.now = 50
    tasks.runs.fail(ids[0], ERROR)
    batches.delete(batch.id)
    assert expiries(tasks, ids) == [50, None]  # the one still queued keeps its own expiry when it ends
    assert tasks.runs.expire() == 1
    with pytest.raises(NotFoundError):
        batches.get(batch.id)


def test_pages_are_newest_first_and_survive_reopening(
    tasks: TaskStore, batches: BatchStore, clock: Clock, tmp_path: Path, database_url: str | None
) -> None:
    made = []
    for when in (1, 2, 3):
        clock.now = when
        made.append(batches.create(source="gemini", model="m", display_name=str(when), members=[]).id)
    first, cursor = batches.page(limit=2)
    assert [batch.id for batch in first] == made[:0:-1] and cursor == made[1]
    tasks.close()
    again = TaskStore(tmp_path, retention_seconds=RETENTION, clock=clock, database_url=database_url)
    reopened = BatchStore(again.database, clock=clock)
    rest, end = reopened.page(limit=2, after=cursor)
    again.close()
    assert [batch.id for batch in rest] == [made[0]] and end is None
