"""The scheduler's three roles and their seams: the front door, the worker and finishing talk
through the store and the event channel; what the channel hands over in memory (checked inputs,
finished images) saves work, and a channel that carries none of it loses nothing."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from plantain import generation
from plantain.engines.base import EngineJob
from plantain.engines.registry import EngineRegistry
from plantain.scheduler import LocalChannel, Scheduler, Submission, frontdoor
from plantain.scheduler.channel import Images, Signal
from plantain.scheduler.prepared import PreparedJobs, job_bytes
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer
from plantain.types import ImageRequest, InputImage, TaskEvent


class ForgetfulChannel(LocalChannel):
    """A channel across processes as the roles must expect it: attachments (decoded inputs,
    finished images) never arrive, and ``queued`` signals may be lost (the worker polls)."""

    def publish(self, event: TaskEvent, images: Images | None = None) -> None:
        super().publish(event, None)

    def signal(self, signal: Signal) -> None:
        if signal.kind == "cancel":
            super().signal(Signal("cancel", signal.task_id))


@asynccontextmanager
async def running(
    data_dir: Path, registry: EngineRegistry, channel: LocalChannel | None = None, **settings: object
) -> AsyncIterator[Scheduler]:
    registry.get("tiny").load()
    configured = Settings(data_dir=data_dir, batch_max_images=1, **settings)  # type: ignore[arg-type]
    scheduler = Scheduler(configured, registry, channel=channel)
    scheduler.start(asyncio.get_running_loop())
    try:
        yield scheduler
    finally:
        await asyncio.to_thread(scheduler.drain, 5)
        scheduler.close()


def png(size: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (200, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def edit(prompt: str = "make it blue") -> ImageRequest:
    return ImageRequest.create(
        prompt=prompt,
        engine="tiny",
        size="512",
        seed=7,
        options={"steps": 2},
        images=[InputImage(data=png(), label="image")],
    )


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    real = generation.decode_image

    def counting(image: InputImage, *args: object, **kwargs: object) -> Image.Image:
        decoded.append(image.label)
        return real(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generation, "decode_image", counting)
    return decoded


def test_an_input_is_decoded_once_between_check_and_run(
    tmp_path: Path, registry: EngineRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = count_decodes(monkeypatch)

    async def main() -> None:
        async with running(tmp_path, registry) as scheduler:
            task, result = await scheduler.front.run(edit(), Submission())
            assert task.status == "succeeded" and len(result.images) == 1

    asyncio.run(main())
    assert decoded == ["image"]


def test_without_the_checked_inputs_the_worker_decodes_them_from_the_store(
    tmp_path: Path, registry: EngineRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Across processes (or after a restart) the worker prepares the task again: same images."""
    decoded = count_decodes(monkeypatch)

    async def run(data_dir: Path, channel: LocalChannel | None) -> bytes:
        # No watermark: its payload names the task, so two tasks' pixels would differ by it.
        async with running(data_dir, registry, channel, watermark=False) as scheduler:
            task, result = await scheduler.front.run(edit(), Submission())
            assert task.status == "succeeded"
            return result.images[0].data

    here = asyncio.run(run(tmp_path / "one", None))
    assert decoded == ["image"]
    apart = asyncio.run(run(tmp_path / "two", ForgetfulChannel()))
    assert decoded == ["image", "image", "image"]  # checked, then prepared again by the worker
    assert Image.open(io.BytesIO(apart)).tobytes() == Image.open(io.BytesIO(here)).tobytes()


def test_a_synchronous_caller_gets_its_images_without_reading_the_files_back(
    tmp_path: Path, registry: EngineRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: object) -> None:
        raise AssertionError("a same-process caller read its files back")

    async def main() -> None:
        async with running(tmp_path, registry) as scheduler:
            with monkeypatch.context() as patch:
                patch.setattr(frontdoor, "images_of", no_reading)
                task, result = await scheduler.front.run(edit(), Submission())
            assert task.result is not None
            (output,) = task.result.outputs
            # the file holds what was answered
            assert result.images[0].data == scheduler.store.blobs.get(
                output.file_id
            )  # the file holds what was answered

    asyncio.run(main())


def test_with_no_attachments_the_caller_reads_the_same_images_from_the_files(
    tmp_path: Path, registry: EngineRegistry
) -> None:
    async def main() -> None:
        async with running(tmp_path, registry, ForgetfulChannel()) as scheduler:
            first, result = await scheduler.front.run(edit("one"), Submission())
            again = await asyncio.to_thread(scheduler.front.result_of, first)
            assert result == again and len(result.images) == 1

    asyncio.run(main())


def test_a_lost_queued_signal_only_delays_the_task(tmp_path: Path, registry: EngineRegistry) -> None:
    async def main() -> None:
        async with running(tmp_path, registry, ForgetfulChannel()) as scheduler:
            task, _ = await scheduler.front.submit(edit(), Submission())
            done = await scheduler.front.wait(task.id, timeout=30)
            assert done.status == "succeeded"

    asyncio.run(main())


def test_the_worker_holds_a_bounded_amount_of_decoded_inputs() -> None:
    request = edit()
    image = Image.new("RGB", (100, 100))
    job = EngineJob(
        prompt=request.prompt,
        images=(image,),
        width=512,
        height=512,
        steps=2,
        guidance=1.0,
        seeds=(1,),
        inputs_digest="x",
    )
    size = job_bytes(job)
    assert size == 100 * 100 * 3
    kept = PreparedJobs(max_bytes=2 * size)
    for task_id in ("a", "b", "c"):
        kept.keep(task_id, job)
    assert len(kept) == 2 and kept.take("a") is None  # the oldest went first
    assert kept.take("c") is job and kept.take("c") is None  # taken once
    kept.drop("b")
    assert len(kept) == 0
    small = PreparedJobs(max_bytes=size - 1)
    small.keep("big", job)  # larger than the whole bound: not kept at all
    assert len(small) == 0 and small.take("big") is None


def test_a_gemini_batch_does_not_hold_its_decoded_inputs_until_the_worker_runs(
    server_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch may carry many images: each is decoded to check it, let go, and decoded again by
    the worker, so a batch never holds all of them decoded at once."""
    decoded = count_decodes(monkeypatch)
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png()).decode()}}
    requests = [
        {"request": {"contents": [{"parts": [{"text": f"make it blue, take {n}"}, image]}]}} for n in range(2)
    ]
    body = {"batch": {"displayName": "two edits", "inputConfig": {"requests": {"requests": requests}}}}
    with LiveServer(create_app(server_settings())) as live:
        live.wait_ready()
        answer = httpx.post(f"{live.url}/v1beta/models/tiny:batchGenerateContent", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        name = answer.json()["name"]
        deadline = time.monotonic() + 60
        while not httpx.get(f"{live.url}/v1beta/{name}").json().get("done"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert len(decoded) == 4  # each input: once to check it, once to run it


class DeafChannel(LocalChannel):
    """A channel whose ``cancel`` signals never arrive (another process's, cut off)."""

    def signal(self, signal: Signal) -> None:
        if signal.kind != "cancel":
            super().signal(signal)


def test_a_cancel_whose_signal_is_lost_still_stops_the_run(tmp_path: Path, registry: EngineRegistry) -> None:
    async def main() -> None:
        async with running(tmp_path, registry, DeafChannel()) as scheduler:
            long_run = ImageRequest.create(
                prompt="a long run", engine="tiny", size="1K", options={"steps": 60}
            )
            task, _ = await scheduler.front.submit(long_run, Submission())
            while scheduler.store.get(task.id).status != "running":
                await asyncio.sleep(0.02)
            scheduler.front.cancel(task.id)
            ended = await scheduler.front.wait(task.id, timeout=30)
            assert ended.status == "cancelled"
            stopped_at = scheduler.store.events_after(task.id)[-1].data["step"]
            assert stopped_at < 60  # stopped by reading the store, not by running to the end

    asyncio.run(main())
