"""Batching and post-processing beside the engine, on a live server with the tiny engine.

The engine is the real tiny pipeline, subclassed only to record the jobs of each run and, when a
test asks, to hold each run at its start until the test lets it go: that is how a test lines up
tasks in the queue behind a running one without relying on timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import torch
from PIL import Image

from plantain.engines import tiny
from plantain.engines.base import EngineJob, Previews, StepCallback, StopFlag
from plantain.engines.flux2 import Flux2KleinEngine
from plantain.engines.registry import EngineRegistry
from plantain.errors import EngineRunError
from plantain.generation import OutputScreen
from plantain.scheduler import Scheduler
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, same_picture
from plantain.types import ImageRequest

HOLD_SECONDS = 60  # a held run waits this long at most for the test to let it go


class RecordingTiny(Flux2KleinEngine):
    """The tiny engine, recording each run's prompts; runs wait for a permit while gated."""

    def __init__(self, name: str, settings: Settings) -> None:
        base = tiny.create(name, settings)
        super().__init__(
            name,
            settings,
            dtype=torch.float32,
            description=base.description,
            source=base.source,
            capabilities=base.capabilities,
            preset=base.preset,
            random_weights=True,
        )
        self.calls: list[list[str]] = []
        self.permits: threading.Semaphore | None = None  # None: runs start at once
        self.fail_batches = False  # a run of several jobs fails (as a device out of memory would)
        self._called = threading.Condition()

    def run(
        self,
        jobs: Sequence[EngineJob],
        on_step: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        previews: Previews | None = None,
    ) -> list[list[Image.Image]]:
        with self._called:
            self.calls.append([job.prompt for job in jobs])
            self._called.notify_all()
        permits = self.permits
        if permits is not None and not permits.acquire(timeout=HOLD_SECONDS):
            raise EngineRunError("the test never let this run go")
        if self.fail_batches and len(jobs) > 1:
            raise EngineRunError("a run of several jobs failed")
        return super().run(jobs, on_step, should_stop, previews)

    def wait_for_call(self, prompts: list[str], timeout: float = HOLD_SECONDS) -> bool:
        """Whether a run with exactly ``prompts`` has started (waiting up to ``timeout``)."""
        with self._called:
            return self._called.wait_for(lambda: prompts in self.calls, timeout)

    @contextmanager
    def gated(self) -> Iterator[threading.Semaphore]:
        self.permits = permits = threading.Semaphore(0)
        try:
            yield permits
        finally:
            self.permits = None
            permits.release(100)  # whatever still waits goes on


@pytest.fixture(scope="module")
def engine(server_settings: Callable[..., Settings]) -> RecordingTiny:
    settings = server_settings()
    recording = RecordingTiny("tiny", settings)
    recording.load()
    return recording


def serve(settings: Settings, engine: RecordingTiny) -> Iterator[tuple[str, Scheduler]]:
    registry = EngineRegistry(settings, {"tiny": lambda name, settings: engine})
    app = create_app(settings, registry)
    with LiveServer(app) as server:
        server.wait_ready()
        yield server.url, app.state.scheduler


@pytest.fixture(scope="module")
def batching(
    server_settings: Callable[..., Settings], engine: RecordingTiny
) -> Iterator[tuple[str, Scheduler]]:
    yield from serve(server_settings(), engine)


@pytest.fixture(scope="module")
def unbatched(
    server_settings: Callable[..., Settings], engine: RecordingTiny
) -> Iterator[tuple[str, Scheduler]]:
    yield from serve(server_settings(batch_max_images=1), engine)


@pytest.fixture(autouse=True)
def fresh_calls(engine: RecordingTiny) -> None:
    engine.calls.clear()
    engine.fail_batches = False


def submit(base: str, prompt: str, *, seed: int, size: str = "512", wait: bool = False) -> dict[str, Any]:
    body = {"model": "tiny", "input": {"prompt": prompt, "resolution": size, "seed": seed, "steps": 2}}
    headers = {"Prefer": "wait=60"} if wait else {}
    response = httpx.post(f"{base}/v1/tasks", json=body, headers=headers, timeout=120)
    assert response.status_code in {201, 202}, response.text
    return dict(response.json())


def events(base: str, task_id: str) -> list[dict[str, Any]]:
    """The task's events, from the first to its last (the stream ends there)."""
    found = []
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line.removeprefix("data: ")))
    return found


def image_bytes(event: dict[str, Any]) -> bytes:
    return httpx.get(event["outputs"][0]["url"]).content


@contextmanager
def queued_behind_a_held_run(engine: RecordingTiny, base: str) -> Iterator[threading.Semaphore]:
    """The engine busy with a held run, so that what the test submits now waits in the queue; a
    permit lets the held run go, one more permit each later run."""
    with engine.gated() as permits:
        hold = submit(base, "hold", seed=1)
        assert engine.wait_for_call(["hold"])
        yield permits
    assert events(base, hold["id"])[-1]["type"] == "completed"


def test_compatible_queued_tasks_share_one_engine_run_and_get_what_each_makes_alone(
    batching: tuple[str, Scheduler], engine: RecordingTiny
) -> None:
    base, _ = batching
    prompts = {"a red kite": 11, "a blue boat": 22, "a green hill": 33}
    with queued_behind_a_held_run(engine, base) as permits:
        tasks = {prompt: submit(base, prompt, seed=seed) for prompt, seed in prompts.items()}
        permits.release(2)
        stories = {prompt: events(base, task["id"]) for prompt, task in tasks.items()}
    assert engine.calls == [["hold"], list(prompts)]
    for prompt, story in stories.items():
        assert [event["type"] for event in story] == [
            "queued",
            "started",
            "progress",
            "progress",
            "completed",
        ]
        done = story[-1]
        assert done["batch"] == {"tasks": 3, "images": 3}
        assert [output["seed"] for output in done["outputs"]] == [prompts[prompt]]
        assert done["usage"]["images"] == 1 and done["postprocess_seconds"] >= 0
        alone = submit(base, prompt, seed=prompts[prompt], wait=True)
        assert same_picture(image_bytes(done), httpx.get(alone["output"]["images"][0]["url"]).content)
    assert engine.calls[2:] == [[prompt] for prompt in prompts]  # each alone, after the batch


def test_incompatible_tasks_wait_their_turn_and_compatible_ones_join_in_queue_order(
    batching: tuple[str, Scheduler], engine: RecordingTiny
) -> None:
    base, _ = batching
    with queued_behind_a_held_run(engine, base) as permits:
        tasks = [
            submit(base, "square one", seed=1),
            submit(base, "a bigger one", seed=2, size="1K"),
            submit(base, "square two", seed=3),
        ]
        permits.release(3)
        ends = [events(base, task["id"])[-1] for task in tasks]
    assert engine.calls == [["hold"], ["square one", "square two"], ["a bigger one"]]
    assert [end["type"] for end in ends] == ["completed"] * 3
    assert [end["batch"]["tasks"] for end in ends] == [2, 1, 2]


def test_a_task_cancelled_in_a_running_batch_ends_cancelled_and_the_others_finish(
    batching: tuple[str, Scheduler], engine: RecordingTiny
) -> None:
    base, _ = batching
    with queued_behind_a_held_run(engine, base) as permits:
        tasks = [submit(base, prompt, seed=seed) for prompt, seed in (("keep", 1), ("drop", 2), ("also", 3))]
        permits.release()  # the held run goes; the batch of three is claimed and held at its start
        assert engine.wait_for_call(["keep", "drop", "also"])
        assert httpx.post(f"{base}/v1/tasks/{tasks[1]['id']}/cancel").status_code == 202
        permits.release()
        stories = [events(base, task["id"]) for task in tasks]
    assert [story[-1]["type"] for story in stories] == ["completed", "cancelled", "completed"]
    assert [event["type"] for event in stories[1]] == ["queued", "started", "cancelled"]
    assert stories[1][-1]["while"] == "running" and stories[1][-1]["step"] == 1
    assert httpx.get(f"{base}/v1/tasks/{tasks[1]['id']}").json()["status"] == "cancelled"


def test_a_failed_shared_run_runs_each_task_alone(
    batching: tuple[str, Scheduler], engine: RecordingTiny
) -> None:
    base, _ = batching
    engine.fail_batches = True
    with queued_behind_a_held_run(engine, base) as permits:
        tasks = [submit(base, prompt, seed=seed) for prompt, seed in (("one", 1), ("two", 2))]
        permits.release(4)
        ends = [events(base, task["id"])[-1] for task in tasks]
    assert engine.calls == [["hold"], ["one", "two"], ["one"], ["two"]]
    assert [end["type"] for end in ends] == ["completed", "completed"]


def test_batching_off_runs_each_task_alone(unbatched: tuple[str, Scheduler], engine: RecordingTiny) -> None:
    base, _ = unbatched
    with queued_behind_a_held_run(engine, base) as permits:
        tasks = [submit(base, prompt, seed=seed) for prompt, seed in (("one", 1), ("two", 2), ("three", 3))]
        permits.release(4)
        ends = [events(base, task["id"])[-1] for task in tasks]
    assert engine.calls == [["hold"], ["one"], ["two"], ["three"]]
    assert [end["type"] for end in ends] == ["completed"] * 3


def test_the_engine_starts_the_next_task_while_the_last_one_is_post_processed(
    batching: tuple[str, Scheduler], engine: RecordingTiny
) -> None:
    base, scheduler = batching
    overlapped: list[bool] = []
    screen: OutputScreen = scheduler.finishing.screen

    def waits_for_the_next_run(images: Sequence[Image.Image], request: ImageRequest) -> None:
        if request.prompt == "first":  # its post-processing lasts until the engine runs "second"
            overlapped.append(engine.wait_for_call(["second"], timeout=30))
        screen(images, request)

    scheduler.finishing.screen = waits_for_the_next_run
    try:
        with engine.gated() as permits:
            first = submit(base, "first", seed=1)
            assert engine.wait_for_call(["first"])
            second = submit(base, "second", seed=2)
            permits.release(2)
            first_story, second_story = events(base, first["id"]), events(base, second["id"])
    finally:
        scheduler.finishing.screen = screen
    assert overlapped == [True]
    second_started = next(event for event in second_story if event["type"] == "started")
    assert second_started["seq"] == 2 and first_story[-1]["type"] == "completed"
    assert second_started["created_at"] <= first_story[-1]["created_at"]
