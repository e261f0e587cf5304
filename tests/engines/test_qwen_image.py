"""Qwen-Image engines on tiny random-weight checkpoints: real classes, the real loader, an offline hub.

Each checkpoint is built once per module; each engine loads once per module (float32: bfloat16
convolutions are several times slower on a CPU). Two denoising steps keep every run under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.engines.qwen_conditioning import CONDITIONING_FILE, read_conditioning
from plantain.engines.qwen_image import (
    QwenImageEditEngine,
    QwenImageEngine,
    create_qwen_image,
    create_qwen_image_edit,
)
from plantain.engines.qwen_image_tiny import (
    TINY_CONDITIONING,
    build_tiny_qwen_image,
    build_tiny_qwen_image_edit,
)
from plantain.errors import (
    EngineLoadError,
    InvalidImageError,
    MissingWeightsError,
    TaskCancelledError,
    TooManyImagesError,
    UnsupportedSizeError,
    UnsupportedTaskError,
)
from plantain.generation import prepare, run_request
from plantain.imaging.sizes import nearest_aspect_ratio, resolve_size
from plantain.settings import Settings
from plantain.testing import build_once, last_step_preview, make_input
from plantain.types import ImageRequest, ImageResult

T2I = "qwen-image"
EDIT = "qwen-image-edit"
FAST = {"steps": 2}


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t2i_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(build_tiny_qwen_image, tmp_path_factory.mktemp("qwen") / "tiny-qwen-image")


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("qwen") / "tiny-qwen-image-edit"
    return build_once(build_tiny_qwen_image_edit, directory)


def _settings(tmp: Path, **fields: Any) -> Settings:
    return Settings(data_dir=tmp, device="cpu", dtype="float32", **fields)


@pytest.fixture(scope="module")
def t2i_engine(t2i_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> QwenImageEngine:
    return create_qwen_image(T2I, _settings(tmp_path_factory.mktemp("data"), weights={T2I: t2i_dir}))


@pytest.fixture(scope="module")
def edit_engine(edit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> QwenImageEditEngine:
    return create_qwen_image_edit(EDIT, _settings(tmp_path_factory.mktemp("data"), weights={EDIT: edit_dir}))


def _not_installed(name: str, tmp: Path, hub_cache: Path) -> QwenImageEngine | QwenImageEditEngine:
    """An engine whose hub id is not in the cache: any attempt to load it raises."""
    settings = _settings(tmp, repos={name: f"plantain-test/{name}-not-installed"}, hub_cache=hub_cache)
    return create_qwen_image(name, settings) if name == T2I else create_qwen_image_edit(name, settings)


def _edit_constants() -> tuple[int, int]:
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    return edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE


DIFFUSERS_AREAS = (1024 * 1024, 384 * 384)


def _sizes(result: ImageResult) -> list[tuple[int, int]]:
    return [(image.width, image.height) for image in result.images]


# --- qwen-image (text-to-image) -----------------------------------------------------------------


def test_qwen_image_runs_from_a_local_directory(t2i_engine: QwenImageEngine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(
        prompt="a sign reading OPEN", aspect_ratio="16:9", size="512", seed=7, options=FAST
    )

    first = run_request(request, t2i_engine, on_step=lambda done, total: steps.append((done, total)))

    expected = resolve_size("16:9", "512", t2i_engine.capabilities.sizes, T2I)
    assert _sizes(first) == [expected]
    assert [image.seed for image in first.images] == [7]
    assert steps == [(1, 2), (2, 2)]
    again = run_request(request, t2i_engine)
    other = run_request(request.model_copy(update={"seed": 8}), t2i_engine)
    assert again.images[0].data == first.images[0].data
    assert other.images[0].data != first.images[0].data


def test_qwen_image_preview_of_the_final_latents_is_the_image_itself(t2i_engine: QwenImageEngine) -> None:
    request = ImageRequest.create(prompt="a sign", aspect_ratio="16:9", size="512", options=FAST)
    preview, final = last_step_preview(t2i_engine, request)
    assert preview.size == final.size
    assert preview.tobytes() == final.tobytes()


def test_qwen_image_batches_compatible_jobs_in_one_call(t2i_engine: QwenImageEngine) -> None:
    short = prepare(ImageRequest.create(prompt="a fox", size="512", seed=5, options=FAST), t2i_engine)
    long = prepare(
        ImageRequest.create(prompt="a lighthouse at dusk", size="512", seed=9, num_images=2, options=FAST),
        t2i_engine,
    )

    images = t2i_engine.run([short, long])

    assert [[image.size for image in job] for job in images] == [[(512, 512)], [(512, 512)] * 2]


def test_qwen_image_loads_by_hub_id_from_the_offline_cache(
    t2i_dir: Path, hub_cache: Path, tmp_path: Path
) -> None:
    repo_id = "plantain-test/tiny-qwen-image"
    install_in_hub_cache(t2i_dir, repo_id, hub_cache)
    engine = create_qwen_image(T2I, _settings(tmp_path, repos={T2I: repo_id}, hub_cache=hub_cache))

    result = run_request(ImageRequest.create(prompt="a fox", size="512", seed=1, options=FAST), engine)

    assert _sizes(result) == [resolve_size("1:1", "512", engine.capabilities.sizes, T2I)]


def test_qwen_image_refuses_input_images_before_loading(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(T2I, tmp_path, hub_cache)
    request = ImageRequest.create(prompt="edit this", images=[make_input()], size="512")

    with pytest.raises(UnsupportedTaskError, match="text only"):
        run_request(request, engine)
    assert not engine.loaded


def test_qwen_image_refuses_2k_naming_its_megapixel_limit(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(T2I, tmp_path, hub_cache)
    request = ImageRequest.create(prompt="a poster", aspect_ratio="1:1", size="2K")

    with pytest.raises(UnsupportedSizeError, match=r"at most 1\.8 megapixels"):
        run_request(request, engine)


def test_qwen_image_cancels_after_the_first_step(t2i_engine: QwenImageEngine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(prompt="a fox", size="512", seed=3, options={"steps": 3})

    with pytest.raises(TaskCancelledError, match="after step 2 of 3"):
        run_request(request, t2i_engine, lambda done, total: steps.append((done, total)), lambda: bool(steps))
    assert steps == [(1, 3)]


# --- qwen-image-edit ----------------------------------------------------------------------------


def test_qwen_image_edit_runs_from_a_local_directory(edit_engine: QwenImageEditEngine) -> None:
    steps: list[tuple[int, int]] = []
    areas_during_run: list[tuple[int, int]] = []

    def on_step(done: int, total: int) -> None:
        steps.append((done, total))
        areas_during_run.append(_edit_constants())

    source = make_input(96, 64)
    request = ImageRequest.create(prompt="make it blue", images=[source], size="512", seed=11, options=FAST)
    first = run_request(request, edit_engine, on_step=on_step)

    sizes = edit_engine.capabilities.sizes
    assert _sizes(first) == [resolve_size(nearest_aspect_ratio(96, 64, sizes), "512", sizes, EDIT)]
    assert [image.seed for image in first.images] == [11]
    assert steps == [(1, 2), (2, 2)]
    tiny_areas = (TINY_CONDITIONING.vae_image_area, TINY_CONDITIONING.condition_image_area)
    assert areas_during_run == [tiny_areas, tiny_areas]  # the checkpoint's knobs, for the call only
    assert _edit_constants() == DIFFUSERS_AREAS
    again = run_request(request, edit_engine)
    other = run_request(request.model_copy(update={"seed": 12}), edit_engine)
    assert again.images[0].data == first.images[0].data
    assert other.images[0].data != first.images[0].data


def test_qwen_image_edit_loads_by_hub_id_from_the_offline_cache(
    edit_dir: Path, hub_cache: Path, tmp_path: Path
) -> None:
    repo_id = "plantain-test/tiny-qwen-image-edit"
    install_in_hub_cache(edit_dir, repo_id, hub_cache)
    engine = create_qwen_image_edit(EDIT, _settings(tmp_path, repos={EDIT: repo_id}, hub_cache=hub_cache))
    request = ImageRequest.create(
        prompt="add a hat", images=[make_input()], aspect_ratio="1:1", size="512", seed=1, options=FAST
    )

    result = run_request(request, engine)

    assert _sizes(result) == [resolve_size("1:1", "512", engine.capabilities.sizes, EDIT)]
    assert engine.conditioning == TINY_CONDITIONING  # read from the cached snapshot's sidecar


def test_qwen_image_edit_preview_of_the_final_latents_is_the_image_itself(
    edit_engine: QwenImageEditEngine,
) -> None:
    images = [make_input(96, 64, (200, 30, 30)), make_input(64, 96, (30, 30, 200))]
    request = ImageRequest.create(prompt="side by side", images=images, size="512", options=FAST)
    preview, final = last_step_preview(edit_engine, request)
    assert preview.size == final.size == (624, 416)  # the first input's 3:2
    assert preview.tobytes() == final.tobytes()


def test_qwen_image_edit_takes_a_tiny_input_and_refuses_one_beyond_8_to_1(
    edit_engine: QwenImageEditEngine,
) -> None:
    small = run_request(
        ImageRequest.create(prompt="x", images=[make_input(20, 10)], size="512", options=FAST), edit_engine
    )
    assert _sizes(small) == [(672, 384)]
    long = ImageRequest.create(prompt="x", images=[make_input(180, 20)], size="512", options=FAST)
    with pytest.raises(InvalidImageError, match="is 180x20, longer than 8:1; engine qwen-image-edit takes"):
        run_request(long, edit_engine)  # a 400, not the pipeline's ValueError as a 500


def test_qwen_image_edit_fuses_two_images_once_per_seed(edit_engine: QwenImageEditEngine) -> None:
    images = [make_input(96, 64, (200, 30, 30)), make_input(64, 96, (30, 30, 200))]
    fields: dict[str, Any] = {
        "prompt": "the two side by side",
        "images": images,
        "size": "512",
        "options": FAST,
    }

    both = run_request(ImageRequest.create(num_images=2, seed=20, **fields), edit_engine)
    second_alone = run_request(ImageRequest.create(seed=21, **fields), edit_engine)

    assert [image.seed for image in both.images] == [20, 21]
    assert len(set(_sizes(both))) == 1
    assert both.images[0].data != both.images[1].data
    assert both.images[1].data == second_alone.images[0].data  # each image depends on its seed only


def test_qwen_image_edit_refuses_four_images_before_loading(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(EDIT, tmp_path, hub_cache)
    request = ImageRequest.create(prompt="fuse", images=[make_input()] * 4, size="512")

    with pytest.raises(TooManyImagesError, match="at most 3 input images; got 4"):
        run_request(request, engine)
    assert not engine.loaded


def test_qwen_image_edit_refuses_text_only_requests(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(EDIT, tmp_path, hub_cache)

    with pytest.raises(UnsupportedTaskError, match="only edits images"):
        run_request(ImageRequest.create(prompt="a fox", size="512"), engine)


def test_qwen_image_edit_cancels_and_restores_the_conditioning_areas(
    edit_engine: QwenImageEditEngine,
) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(
        prompt="a fox", images=[make_input()], size="512", seed=3, options={"steps": 3}
    )

    with pytest.raises(TaskCancelledError, match="after step 2 of 3"):
        run_request(
            request, edit_engine, lambda done, total: steps.append((done, total)), lambda: bool(steps)
        )
    assert steps == [(1, 3)]
    assert _edit_constants() == DIFFUSERS_AREAS


def test_qwen_image_edit_uses_the_stock_processor_where_torchvision_is_installed(
    edit_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    engine = create_qwen_image_edit(EDIT, _settings(tmp_path, weights={EDIT: edit_dir}))
    assert set(engine._processor_override(edit_dir)) == {"processor"}
    monkeypatch.setattr(transformers, "is_torchvision_available", lambda: True)
    assert engine._processor_override(edit_dir) == {}


def test_qwen_image_edit_rejects_a_malformed_conditioning_file(tmp_path: Path) -> None:
    (tmp_path / CONDITIONING_FILE).write_text('{"vae_image_area": "big"}')

    with pytest.raises(EngineLoadError, match=CONDITIONING_FILE):
        read_conditioning(tmp_path)
    assert read_conditioning(tmp_path / "elsewhere") is None


# --- both ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [T2I, EDIT])
def test_missing_weights_name_the_engine_the_hub_id_and_the_pull_command(
    name: str, tmp_path: Path, hub_cache: Path
) -> None:
    engine = _not_installed(name, tmp_path, hub_cache)
    images = [make_input()] if name == EDIT else []
    request = ImageRequest.create(prompt="a fox", images=images, size="512", options=FAST)

    with pytest.raises(MissingWeightsError) as caught:
        run_request(request, engine)

    message = str(caught.value)
    assert f"engine {name}" in message
    assert f"plantain-test/{name}-not-installed" in message
    assert f"plantain pull {name}" in message
