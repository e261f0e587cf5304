"""FLUX.2-klein family: the real loader on the tiny checkpoint, from a directory and by hub id."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from plantain.engines import flux2, tiny
from plantain.engines.base import Previews
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidImageError, MissingWeightsError, TaskCancelledError, TooManyImagesError
from plantain.generation import prepare, run_request
from plantain.settings import Settings
from plantain.testing import install_in_hub_cache, last_step_preview, make_input
from plantain.types import ImageRequest


def klein_on_tiny_weights(settings: Settings) -> flux2.Flux2KleinEngine:
    engine = flux2.create("flux2-klein-4b", settings)
    # The tiny text encoder has 2 layers, not the real 36: run it with the tiny checkpoint's preset.
    engine.preset = tiny.TINY_PRESET
    return engine


def pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image


def test_klein_loads_a_local_directory(data_dir: Path, hub_cache: Path) -> None:
    weights = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    settings = Settings(data_dir=data_dir, hub_cache=hub_cache, weights={"flux2-klein-4b": weights})
    engine = klein_on_tiny_weights(settings)
    assert engine.weights_status().present
    result = run_request(ImageRequest.create(prompt="a red bicycle", size="512", seed=1), engine)
    assert pixels(result.images[0].data).size == (512, 512)


def test_klein_loads_by_hub_id_from_the_offline_cache(data_dir: Path, hub_cache: Path) -> None:
    install_in_hub_cache(
        tiny.checkpoint_dir(Settings(data_dir=data_dir)), "plantain-test/tiny-klein", hub_cache
    )
    settings = Settings(
        data_dir=data_dir, hub_cache=hub_cache, repos={"flux2-klein-4b": "plantain-test/tiny-klein"}
    )
    engine = klein_on_tiny_weights(settings)
    assert engine.weights_status().present
    result = run_request(ImageRequest.create(prompt="a red bicycle", aspect_ratio="16:9", size="512"), engine)
    assert (result.images[0].width, result.images[0].height) == (672, 384)


def test_missing_weights_name_the_model_the_place_and_the_remedies(settings: Settings) -> None:
    engine = flux2.create("flux2-klein-4b", settings)
    assert not engine.weights_status().present
    with pytest.raises(MissingWeightsError) as info:
        engine.load()
    message = str(info.value)
    assert "black-forest-labs/FLUX.2-klein-4B" in message and str(settings.hub_cache) in message
    assert (
        "plantain pull flux2-klein-4b" in message
        and "--weights DIR" in message
        and "--engine tiny" in message
    )


def test_missing_local_directory_is_named(tmp_path: Path, settings: Settings) -> None:
    engine = flux2.create(
        "flux2-klein-4b", settings.model_copy(update={"weights": {"flux2-klein-4b": tmp_path}})
    )
    with pytest.raises(MissingWeightsError, match=f"no diffusers checkpoint in {tmp_path}"):
        engine.load()


def test_tiny_builds_once_then_loads_like_a_real_checkpoint(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    engine = EngineRegistry(settings).get("tiny")
    assert engine.weights_status().buildable and not engine.weights_status().present
    engine.load()
    index = tiny.checkpoint_dir(settings) / "model_index.json"
    assert index.is_file() and "Flux2KleinPipeline" in index.read_text()
    built_at = index.stat().st_mtime_ns
    EngineRegistry(settings).get("tiny").load()  # a new process would load, not rebuild
    assert index.stat().st_mtime_ns == built_at


def test_registry_hands_out_one_loaded_instance(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")
    engine.load()
    pipeline = engine._pipeline
    assert registry.get("tiny") is engine
    engine.load()
    assert engine._pipeline is pipeline


def test_same_seed_same_bytes_other_seed_other_bytes(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")

    def make(seed: int) -> bytes:
        request = ImageRequest.create(prompt="a red bicycle", aspect_ratio="21:9", seed=seed)
        return run_request(request, engine).images[0].data

    first = make(7)
    assert pixels(first).size == (1536, 672)
    assert make(7) == first
    assert make(8) != first


def test_several_images_use_consecutive_seeds(registry: EngineRegistry) -> None:
    request = ImageRequest.create(prompt="a red bicycle", size="512", num_images=3, seed=40)
    result = run_request(request, registry.get("tiny"))
    assert [image.seed for image in result.images] == [40, 41, 42]
    assert len({image.data for image in result.images}) == 3
    alone = run_request(request.model_copy(update={"num_images": 1, "seed": 41}), registry.get("tiny"))
    # Image k of a request is the image a single request with seed+k-1 makes.
    assert _close(alone.images[0].data, result.images[1].data)


def test_without_a_seed_each_image_reports_the_seed_that_reproduces_it(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")
    result = run_request(ImageRequest.create(prompt="a red bicycle", size="512"), engine)
    seed = result.images[0].seed
    again = run_request(ImageRequest.create(prompt="a red bicycle", size="512", seed=seed), engine)
    assert again.images[0].data == result.images[0].data


def test_edit_fuses_three_formats_and_keeps_the_first_inputs_shape(registry: EngineRegistry) -> None:
    images = [
        make_input(160, 90, fmt="PNG", label="a.png"),
        make_input(64, 64, (0, 0, 255), fmt="WEBP", label="b.webp"),
        make_input(64, 96, (0, 255, 0), fmt="JPEG", label="c.jpg"),
    ]
    request = ImageRequest.create(prompt="make it night", images=images, size="512", seed=3)
    result = run_request(request, registry.get("tiny"))
    assert (result.images[0].width, result.images[0].height) == (672, 384)  # 16:9 like a.png


def test_more_inputs_than_the_engine_takes_are_refused_before_loading(settings: Settings) -> None:
    engine = flux2.create("flux2-klein-4b", settings)  # no weights: refusal must not need them
    request = ImageRequest.create(prompt="fuse", images=[make_input()] * 5)
    with pytest.raises(TooManyImagesError, match="flux2-klein-4b takes at most 4 input images; got 5"):
        prepare(request, engine)
    assert not engine.loaded


def test_inputs_smaller_than_the_pipeline_takes_are_enlarged(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")
    request = ImageRequest.create(prompt="make it night", images=[make_input(40, 20)], size="512", seed=1)
    job = prepare(request, engine)
    assert job.images[0].size == (128, 64)  # the processor's 64-pixel minimum, aspect kept
    result = run_request(request, engine)
    assert pixels(result.images[0].data).size == (672, 384)  # 16:9, the nearest table ratio to 2:1


def test_inputs_beyond_8_to_1_are_refused_naming_the_input(settings: Settings) -> None:
    engine = flux2.create("flux2-klein-4b", settings)
    long = make_input(900, 100)
    request = ImageRequest.create(
        prompt="fuse", images=[make_input(), long.model_copy(update={"label": "image 2"})]
    )
    with pytest.raises(InvalidImageError, match="image 2 is 900x100, longer than 8:1; engine flux2-klein-4b"):
        prepare(request, engine)
    assert not engine.loaded


def test_progress_reports_every_step(registry: EngineRegistry) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(prompt="a red bicycle", size="512", options={"steps": 3})
    run_request(request, registry.get("tiny"), on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(1, 3), (2, 3), (3, 3)]


def test_stop_flag_cancels_at_the_next_step(registry: EngineRegistry) -> None:
    steps: list[int] = []
    request = ImageRequest.create(prompt="a red bicycle", size="512", options={"steps": 4})
    with pytest.raises(TaskCancelledError, match="cancelled after step 2 of 4") as stopped:
        run_request(
            request,
            registry.get("tiny"),
            on_step=lambda done, _: steps.append(done),
            should_stop=lambda: len(steps) >= 1,
        )
    assert steps == [1]
    assert stopped.value.step == 2  # what the task's `cancelled` event reports


def test_asking_to_load_does_not_wait_for_a_running_job(registry: EngineRegistry) -> None:
    # The server marks itself ready after load(); a task started at boot must not hold that up.
    engine = registry.get("tiny")
    engine.load()
    started, release = threading.Event(), threading.Event()

    def on_step(done: int, total: int) -> None:
        started.set()
        release.wait(30)

    job = prepare(ImageRequest.create(prompt="busy", size="512", options={"steps": 2}), engine)
    runner = threading.Thread(target=engine.run, args=([job], on_step))
    runner.start()
    assert started.wait(30)
    engine.load()  # returns although the run holds the engine
    assert runner.is_alive()
    release.set()
    runner.join(30)


def test_compatible_jobs_share_one_pipeline_call(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")
    jobs = [
        prepare(ImageRequest.create(prompt=prompt, size="512", seed=seed, num_images=n), engine)
        for prompt, seed, n in (("a red bicycle", 1, 2), ("a blue boat", 9, 1))
    ]
    calls: list[int] = []
    images = engine.run(jobs, on_step=lambda done, total: calls.append(done))
    assert [len(group) for group in images] == [2, 1]
    assert calls == [1, 2, 3, 4]  # one denoising loop for all three images


def test_incompatible_jobs_are_not_batched(registry: EngineRegistry) -> None:
    engine = registry.get("tiny")
    jobs = [prepare(ImageRequest.create(prompt="a", size=size, seed=1), engine) for size in ("512", "1K")]
    with pytest.raises(ValueError, match="must share size"):
        engine.run(jobs)


@pytest.mark.parametrize(
    ("count", "steps", "expected"),
    [(3, 4, {1, 2, 3}), (1, 4, {2}), (2, 4, {1, 3}), (3, 2, {1}), (2, 1, set()), (3, 50, {12, 25, 38})],
)
def test_previews_spread_over_the_run_and_never_repeat_the_last_step(
    count: int, steps: int, expected: set[int]
) -> None:
    assert Previews.spread(count, steps, lambda index, image: None).at_steps == expected


def test_a_preview_of_the_final_latents_is_the_image_itself(registry: EngineRegistry) -> None:
    request = ImageRequest.create(prompt="a red bicycle", aspect_ratio="16:9", size="512", seed=3)
    preview, final = last_step_preview(registry.get("tiny"), request)
    assert preview.size == final.size == (672, 384)
    assert preview.tobytes() == final.tobytes()


def test_previews_arrive_during_the_run_in_order_for_the_first_image(registry: EngineRegistry) -> None:
    timeline: list[str] = []
    sizes: list[tuple[int, int]] = []

    def on_preview(index: int, image: Image.Image) -> None:
        timeline.append(f"preview {index}")
        sizes.append(image.size)

    request = ImageRequest.create(
        prompt="a red bicycle", size="512", seed=3, num_images=2, options={"steps": 4}
    )
    engine = registry.get("tiny")
    job = prepare(request, engine)
    images = engine.run(
        [job],
        on_step=lambda done, total: timeline.append(f"step {done}"),
        previews=Previews.spread(2, job.steps, on_preview),
    )[0]
    assert timeline == ["preview 0", "step 1", "step 2", "preview 1", "step 3", "step 4"]
    assert sizes == [images[0].size] * 2  # of the first image only, at the output size


@pytest.mark.slow
def test_2k_tier_makes_2k_pixels(registry: EngineRegistry) -> None:
    request = ImageRequest.create(
        prompt="a red bicycle", aspect_ratio="21:9", size="2K", seed=1, options={"steps": 1}
    )
    result = run_request(request, registry.get("tiny"))
    assert pixels(result.images[0].data).size == (3072, 1344)


def _close(a: bytes, b: bytes) -> bool:
    """Equal up to batch-size rounding noise in float32 matmuls (at most 1 level in 255)."""
    left, right = pixels(a).tobytes(), pixels(b).tobytes()
    return len(left) == len(right) and max(abs(x - y) for x, y in zip(left, right, strict=True)) <= 1
