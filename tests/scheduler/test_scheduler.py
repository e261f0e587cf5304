"""The scheduler on a real SQLite file with the tiny engine: order, cancellation, recovery after a
killed process, idempotency and backpressure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError, IdempotencyConflictError, QueueFullError, TaskCancelledError
from plantain.scheduler import Scheduler, Submission
from plantain.settings import Settings
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import ImageRequest, TaskEvent


def request(prompt: str, steps: int = 2, size: str = "512") -> ImageRequest:
    return ImageRequest.create(prompt=prompt, engine="tiny", size=size, seed=1, options={"steps": steps})


@asynccontextmanager
async def running(data_dir: Path, registry: EngineRegistry, **settings: object) -> AsyncIterator[Scheduler]:
    registry.get("tiny").load()
    scheduler = Scheduler(Settings(data_dir=data_dir, **settings), registry)  # type: ignore[arg-type]
    scheduler.start(asyncio.get_running_loop())
    try:
        yield scheduler
    finally:
        await asyncio.to_thread(scheduler.drain, 5)
        scheduler.close()


def types_of(events: list[TaskEvent]) -> list[str]:
    return [event.type for event in events]


def test_concurrent_requests_run_in_arrival_order(tmp_path: Path, registry: EngineRegistry) -> None:
    """Tasks end in queue order (a batch's tasks too); callers may hear back in any order."""
    ended: dict[str, float] = {}

    async def main() -> None:
        async with running(tmp_path, registry) as scheduler:

            async def one(prompt: str) -> None:
                task, _ = await scheduler.front.run(request(prompt), Submission())
                assert task.completed_at is not None
                ended[prompt] = task.completed_at

            tasks = []
            for prompt in ("first", "second", "third"):
                tasks.append(asyncio.create_task(one(prompt)))
                await asyncio.sleep(0.05)  # let each reach the queue before the next arrives
            await asyncio.gather(*tasks)

    asyncio.run(main())
    assert sorted(ended, key=ended.__getitem__) == ["first", "second", "third"]


def test_the_event_loop_stays_free_while_an_engine_runs(tmp_path: Path, registry: EngineRegistry) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with running(tmp_path, registry) as scheduler:
            task = asyncio.create_task(ticker())
            await scheduler.front.run(request("busy", steps=4, size="1K"), Submission())
            task.cancel()

    asyncio.run(main())
    assert ticks >= 10  # the loop kept ticking through a ~second of engine work


def test_a_disconnected_caller_cancels_its_queued_and_running_tasks(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    async def gone() -> bool:
        return True

    async def main() -> tuple[str, str, float]:
        async with running(tmp_path, registry) as scheduler:
            long_run, _ = await scheduler.front.submit(request("running", steps=30, size="1K"), Submission())
            await asyncio.sleep(0.5)  # it has started
            waiting = asyncio.create_task(
                scheduler.front.run(request("queued"), Submission(), is_disconnected=gone)
            )
            with pytest.raises(TaskCancelledError):
                await waiting
            scheduler.front.cancel(long_run.id)
            ended = await scheduler.front.wait(long_run.id, timeout=30)
            started = time.monotonic()
            await scheduler.front.run(request("after"), Submission())  # the worker is free again
            queued = scheduler.store.page(status="cancelled")[0]
            return (
                ended.status,
                ",".join(sorted(t.request["prompt"] for t in queued)),
                time.monotonic() - started,
            )

    status, cancelled, waited = asyncio.run(main())
    assert status == "cancelled"
    assert cancelled == "queued,running"
    assert waited < 5


def test_events_tell_the_whole_story_in_order(tmp_path: Path, registry: EngineRegistry) -> None:
    async def main() -> list[TaskEvent]:
        async with running(tmp_path, registry) as scheduler:
            task, _ = await scheduler.front.submit(request("story", steps=3), Submission())
            done = await scheduler.front.wait(task.id, timeout=60)
            assert done.status == "succeeded" and done.result is not None
            assert scheduler.store.blobs.get(done.result.outputs[0].file_id)[:4] == b"\x89PNG"
            return scheduler.store.events_after(task.id)

    events = asyncio.run(main())
    assert types_of(events) == ["queued", "started", "progress", "progress", "progress", "completed"]
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
    assert [event.data.get("step") for event in events[2:5]] == [1, 2, 3]


def test_a_task_left_running_by_a_killed_process_runs_again(tmp_path: Path, registry: EngineRegistry) -> None:
    # A process that claimed a task and died: the row says running, nothing finished it.
    store = TaskStore(tmp_path, retention_seconds=3600)
    task, _ = store.create(NewTask(request=request("again"), model="tiny", engine="tiny", source="tasks"))
    assert store.runs.claim_next() is not None
    store.close()

    async def main() -> tuple[str, int, list[str]]:
        async with running(tmp_path, registry) as scheduler:
            done = await scheduler.front.wait(task.id, timeout=60)
            return done.status, done.attempts, types_of(scheduler.store.events_after(task.id))

    status, attempts, events = asyncio.run(main())
    assert (status, attempts) == ("succeeded", 2)
    assert events[:4] == ["queued", "started", "queued", "started"]
    assert events.count("completed") == 1


def test_a_task_interrupted_too_often_fails_instead_of_looping(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    store = TaskStore(tmp_path, retention_seconds=3600)
    task, _ = store.create(NewTask(request=request("doomed"), model="tiny", engine="tiny", source="tasks"))
    for _ in range(2):
        assert store.runs.claim_next() is not None
        store.runs.requeue(task.id, "killed")
    assert store.runs.claim_next() is not None  # the third run is also killed
    store.close()

    async def main() -> str:
        async with running(tmp_path, registry, max_attempts=3) as scheduler:
            done = scheduler.store.get(task.id)
            assert done.error is not None
            return f"{done.status} {done.error.code}"

    assert asyncio.run(main()) == "failed attempts_exhausted"


def test_one_data_directory_serves_one_process(tmp_path: Path, registry: EngineRegistry) -> None:
    async def main() -> None:
        async with running(tmp_path, registry):
            second = Scheduler(Settings(data_dir=tmp_path), registry)
            with pytest.raises(
                ConfigurationError, match="another Plantain server is using the data directory"
            ):
                second.start(asyncio.get_running_loop())

    asyncio.run(main())


def test_an_idempotency_key_replays_its_task_and_refuses_another_body(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    async def main() -> None:
        async with running(tmp_path, registry) as scheduler:
            keyed = Submission(idempotency_key="k1", fingerprint="body-a")
            first, created = await scheduler.front.submit(request("a"), keyed)
            again, created_again = await scheduler.front.submit(request("a"), keyed)
            assert (created, created_again, again.id) == (True, False, first.id)
            other = Submission(idempotency_key="k1", fingerprint="body-b")
            with pytest.raises(IdempotencyConflictError, match="already used with a different request body"):
                await scheduler.front.submit(request("b"), other)

    asyncio.run(main())


def test_a_full_queue_refuses_with_a_retry_hint(tmp_path: Path, registry: EngineRegistry) -> None:
    async def main() -> None:
        async with running(tmp_path, registry, max_queued_tasks=2) as scheduler:
            first, _ = await scheduler.front.submit(request("busy", steps=40, size="1K"), Submission())
            await asyncio.sleep(0.3)  # running, not queued
            for prompt in ("q1", "q2"):
                await scheduler.front.submit(request(prompt), Submission())
            with pytest.raises(QueueFullError, match="the queue is full \\(2 tasks waiting") as error:
                await scheduler.front.submit(request("q3"), Submission())
            assert error.value.retry_after >= 1
            scheduler.front.cancel(first.id)

    asyncio.run(main())
