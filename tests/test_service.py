"""The server's engine service: FIFO order off the event loop, and disconnects cancel work."""

from __future__ import annotations

import asyncio
import time

import pytest

from plantain.engines.registry import EngineRegistry
from plantain.service import ImageService
from plantain.types import ImageRequest


def request(prompt: str, steps: int = 2, size: str = "512") -> ImageRequest:
    return ImageRequest.create(prompt=prompt, engine="tiny", size=size, seed=1, options={"steps": steps})


@pytest.fixture
def service(registry: EngineRegistry) -> ImageService:
    registry.get("tiny").load()
    return ImageService(registry)


def test_concurrent_requests_run_in_arrival_order(service: ImageService) -> None:
    finished: list[str] = []

    async def one(prompt: str) -> None:
        await service.run(request(prompt))
        finished.append(prompt)

    async def main() -> None:
        tasks = []
        for prompt in ("first", "second", "third"):
            tasks.append(asyncio.create_task(one(prompt)))
            await asyncio.sleep(0)  # let each reach the queue before the next arrives
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert finished == ["first", "second", "third"]


def test_the_event_loop_stays_free_while_an_engine_runs(service: ImageService) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def main() -> None:
        task = asyncio.create_task(ticker())
        await service.run(request("busy", steps=4, size="1K"))
        task.cancel()

    asyncio.run(main())
    assert ticks >= 10  # the loop kept ticking through a ~second of engine work


def test_a_disconnected_client_cancels_its_queued_and_running_work(service: ImageService) -> None:
    steps: dict[str, list[int]] = {"running": [], "queued": []}

    async def gone() -> bool:
        return True

    async def main() -> None:
        gone_after_first_step = lambda: asyncio.sleep(0, result=bool(steps["running"]))  # noqa: E731
        running = asyncio.create_task(
            service.run(
                request("running", steps=30, size="1K"),
                on_step=lambda done, _: steps["running"].append(done),
                is_disconnected=gone_after_first_step,
            )
        )
        await asyncio.sleep(0)
        queued = asyncio.create_task(
            service.run(
                request("queued"), on_step=lambda done, _: steps["queued"].append(done), is_disconnected=gone
            )
        )
        for task in (running, queued):
            with pytest.raises(asyncio.CancelledError):
                await task
        started = time.monotonic()
        await service.run(request("after"))  # the worker is free again: the running job stopped early
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert steps["queued"] == []
    assert 1 <= len(steps["running"]) < 30
    assert waited < 5
