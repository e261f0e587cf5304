"""Claims are leases (storage/leases.py, scheduler/leases.py): a task whose worker stops renewing
its lease is queued again for another run, the run that lost it can record nothing more, and a
task interrupted ``max_attempts`` times fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from plantain.engines.registry import EngineRegistry
from plantain.scheduler import Scheduler, Submission
from plantain.scheduler.batching import Finished
from plantain.settings import Settings
from plantain.storage.leases import LOST_LEASE
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import ImageRequest, TaskError, TaskOutput, TaskResult
from plantain.usage import no_usage

LEASE = 30.0


class Clocked:
    def __init__(self, path: Path, database_url: str | None) -> None:
        self.now = 1000.0
        self.store = TaskStore(
            path,
            retention_seconds=3600,
            clock=lambda: self.now,
            lease_seconds=LEASE,
            database_url=database_url,
        )

    def queue(self) -> str:
        request = ImageRequest.create(prompt="a cube", engine="tiny")
        task, _ = self.store.create(NewTask(request=request, model="tiny", engine="tiny", source="tasks"))
        return task.id

    def claim(self) -> tuple[str, int]:
        claimed = self.store.runs.claim_next()
        assert claimed is not None
        return claimed[0].id, claimed[0].attempts


def result() -> TaskResult:
    output = TaskOutput(file_id="f", media_type="image/png", width=8, height=8, seed=1)
    return TaskResult(engine="tiny", outputs=(output,), steps=1, guidance=1.0, seconds=0.1)


def test_a_task_whose_lease_runs_out_runs_again_and_its_first_run_records_nothing(
    tmp_path: Path, database_url: str | None
) -> None:
    clocked = Clocked(tmp_path, database_url)
    store, runs = clocked.store, clocked.store.runs
    task_id = clocked.queue()
    assert clocked.claim() == (task_id, 1)
    clocked.now += LEASE - 1
    assert store.leases.reclaim_expired(max_attempts=3) == ([], [])  # still within its lease
    clocked.now += 2
    requeued, failed = store.leases.reclaim_expired(max_attempts=3)
    assert [event.task_id for event in requeued] == [task_id] and failed == []
    assert requeued[0].data == {"position": 1, "requeued": LOST_LEASE}
    assert clocked.claim() == (task_id, 2)  # the next claim runs it again, as attempt 2
    # The first run comes back (it was only slow): nothing it sends is recorded.
    assert runs.add_event(task_id, "progress", {"step": 1, "total": 4}, attempt=1) is None
    assert runs.succeed(task_id, result(), {}, no_usage("USD"), attempt=1) is None
    assert runs.mark_cancelled(task_id, 1, attempt=1) is None
    assert runs.fail(task_id, TaskError(code="engine_failed", message="x", status=500), attempt=1) is None
    assert store.leases.renew({task_id: 1}) == [task_id]  # and its lease is not its own any more
    assert store.get(task_id).status == "running"
    assert runs.succeed(task_id, result(), {}, no_usage("USD"), attempt=2) is not None
    types = [event.type for event in store.events_after(task_id)]
    assert types == ["queued", "started", "queued", "started", "completed"]
    store.close()


def test_a_renewed_lease_holds_the_task(tmp_path: Path, database_url: str | None) -> None:
    clocked = Clocked(tmp_path, database_url)
    task_id = clocked.queue()
    clocked.claim()
    for _ in range(5):
        clocked.now += LEASE / 3
        assert clocked.store.leases.renew({task_id: 1}) == []
    assert clocked.store.leases.reclaim_expired(max_attempts=3) == ([], [])
    assert clocked.store.get(task_id).status == "running"
    clocked.store.close()


def test_a_task_that_keeps_losing_its_worker_fails_after_max_attempts(
    tmp_path: Path, database_url: str | None
) -> None:
    clocked = Clocked(tmp_path, database_url)
    task_id = clocked.queue()
    for attempt in (1, 2):
        assert clocked.claim() == (task_id, attempt)
        clocked.now += LEASE + 1
        assert len(clocked.store.leases.reclaim_expired(max_attempts=2)[0]) == (1 if attempt == 1 else 0)
    task = clocked.store.get(task_id)
    assert task.status == "failed" and task.error is not None and task.error.code == "attempts_exhausted"
    assert "interrupted 2 times" in task.error.message
    clocked.store.close()


def test_a_worker_that_lost_its_lease_stops_the_run_and_leaves_the_task_to_the_new_one(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    """The keeper finds the lease gone (another worker reclaimed and claimed the task): the run
    here stops at its next step, and neither its progress nor a cancellation is recorded."""

    async def main() -> None:
        registry.get("tiny").load()
        scheduler = Scheduler(Settings(data_dir=tmp_path, batch_max_images=1), registry)
        finished: list[str] = []
        hand_over = scheduler.finishing.submit

        def recording(run: list[Finished]) -> None:  # what the worker hands to finishing
            finished.extend(item.member.task.id for item in run)
            hand_over(run)

        scheduler.finishing.submit = recording  # type: ignore[method-assign]
        scheduler.start(asyncio.get_running_loop())
        try:
            request = ImageRequest.create(
                prompt="a long run", engine="tiny", size="1K", options={"steps": 60}
            )
            task, _ = await scheduler.front.submit(request, Submission())
            while scheduler.store.get(task.id).status != "running":
                await asyncio.sleep(0.02)
            runs = scheduler.store.runs
            assert runs.requeue(task.id, "taken by another worker", attempt=1) is not None
            assert runs.claim(task.id) is not None  # "another worker" now runs attempt 2
            scheduler.leases.tick()
            deadline = time.monotonic() + 30
            while task.id in scheduler.worker.flags:  # the run here stops and lets go
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            after = scheduler.store.get(task.id)
            assert (after.status, after.attempts) == ("running", 2)
            types = [event.type for event in scheduler.store.events_after(task.id)]
            assert "cancelled" not in types and types[-2:] == ["queued", "started"]
            assert finished == []  # stopped mid-run: none of its images went on to finishing
            assert scheduler.store.runs.fail(
                task.id, TaskError(code="x", message="done", status=500), attempt=2
            )
        finally:
            await asyncio.to_thread(scheduler.drain, 5)
            scheduler.close()

    asyncio.run(main())
