"""Qwen-Image-2.1 on a tiny random-weight checkpoint: real classes, the real loader, an offline hub.

The checkpoint is built once per module and the engine loads once per module (float32: bfloat16
convolutions are several times slower on a CPU). Two denoising steps keep every run short.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.engines.qwen_conditioning import CONDITIONING_FILE, ConditioningAreas, write_conditioning
from plantain.engines.qwen_image21 import (
    FAMILIES,
    HUB_ID,
    QwenImage21Engine,
    as_made,
    read_condition_resolution,
    step_sigmas,
)
from plantain.engines.qwen_image21_tiny import TINY_CONDITION_RESOLUTION, build_tiny_qwen_image21
from plantain.errors import (
    EngineLoadError,
    LicenceNotAcceptedError,
    TooManyImagesError,
    UnsupportedSizeError,
)
from plantain.generation import prepare, run_request
from plantain.imaging.sizes import nearest_aspect_ratio, resolve_size
from plantain.settings import Settings
from plantain.testing import build_once, last_step_preview, make_input
from plantain.types import ImageRequest, ImageResult

NAME = "qwen-image-2.1"
FAST = {"steps": 2}
ACCEPTED = ["qwen-research"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(build_tiny_qwen_image21, tmp_path_factory.mktemp("qwen21") / "tiny-qwen-image-2.1")


def _settings(tmp: Path, **fields: Any) -> Settings:
    return Settings(data_dir=tmp, device="cpu", dtype="float32", **fields)


def _engine(tmp: Path, checkpoint: Path, **fields: Any) -> QwenImage21Engine:
    """The engine as the registry makes it: the family record's constructor."""
    (family,) = FAMILIES
    engine = family.create(NAME, _settings(tmp, weights={NAME: checkpoint}, **fields))
    assert isinstance(engine, QwenImage21Engine)
    return engine


@pytest.fixture(scope="module")
def engine(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> QwenImage21Engine:
    return _engine(tmp_path_factory.mktemp("data"), checkpoint, accept_licences=ACCEPTED)


def _sizes(result: ImageResult) -> list[tuple[int, int]]:
    return [(image.width, image.height) for image in result.images]


def _pixels(data: bytes) -> npt.NDArray[np.int16]:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image, dtype=np.int16)


# --- text-to-image -----------------------------------------------------------------------------


def test_the_family_record_names_the_engine_and_its_hub_id() -> None:
    (family,) = FAMILIES
    assert (family.engine, family.hub_id) == (NAME, "Qwen/Qwen-Image-2.1") == (NAME, HUB_ID)


def test_text_to_image_at_512_is_the_same_for_the_same_seed(engine: QwenImage21Engine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(prompt="a sign reading OPEN", size="512", seed=7, options=FAST)

    first = run_request(request, engine, on_step=lambda done, total: steps.append((done, total)))

    assert _sizes(first) == [(512, 512)]
    assert [image.seed for image in first.images] == [7]
    assert steps == [(1, 2), (2, 2)]
    assert engine.condition_resolution == TINY_CONDITION_RESOLUTION  # the checkpoint's sidecar
    again = run_request(request, engine)
    other = run_request(request.model_copy(update={"seed": 8}), engine)
    assert again.images[0].data == first.images[0].data
    assert other.images[0].data != first.images[0].data


def test_preview_of_the_final_latents_is_the_image_itself(engine: QwenImage21Engine) -> None:
    request = ImageRequest.create(prompt="a sign", aspect_ratio="16:9", size="512", options=FAST)
    preview, final = last_step_preview(engine, request)
    assert preview.size == final.size == (672, 384)
    assert preview.mode == final.mode
    assert preview.tobytes() == final.tobytes()


def test_compatible_jobs_run_in_one_call(engine: QwenImage21Engine) -> None:
    short = prepare(ImageRequest.create(prompt="a fox", size="512", seed=5, options=FAST), engine)
    long = prepare(
        ImageRequest.create(prompt="a lighthouse at dusk", size="512", seed=9, num_images=2, options=FAST),
        engine,
    )

    images = engine.run([short, long])

    assert [[image.size for image in job] for job in images] == [[(512, 512)], [(512, 512)] * 2]


# --- editing -----------------------------------------------------------------------------------


def test_an_edit_of_one_image_keeps_its_shape_and_its_seeds(engine: QwenImage21Engine) -> None:
    request = ImageRequest.create(
        prompt="make it blue", images=[make_input(96, 64)], size="512", seed=11, num_images=2, options=FAST
    )

    result = run_request(request, engine)

    sizes = engine.capabilities.sizes
    assert _sizes(result) == [resolve_size(nearest_aspect_ratio(96, 64, sizes), "512", sizes, NAME)] * 2
    assert [image.seed for image in result.images] == [11, 12]
    assert result.images[0].data != result.images[1].data
    # Each image depends on its own seed only: alone, the second one comes out the same but for
    # float rounding (a batch of two attends in other tile shapes than a batch of one).
    alone = run_request(request.model_copy(update={"seed": 12, "num_images": 1}), engine)
    assert np.abs(_pixels(alone.images[0].data) - _pixels(result.images[1].data)).max() <= 1


def test_an_edit_takes_up_to_ten_images(engine: QwenImage21Engine) -> None:
    images = [make_input(96, 64, (20 * index, 30, 200 - 20 * index)) for index in range(10)]
    request = ImageRequest.create(prompt="all of them at a table", images=images, size="512", options=FAST)

    ten = run_request(request, engine)
    three = run_request(request.model_copy(update={"images": images[:3]}), engine)

    assert _sizes(ten) == _sizes(three) == [(640, 416)]  # the first input's 3:2
    assert ten.images[0].data != three.images[0].data  # every reference reaches the model


def test_eleven_images_are_refused_naming_images_before_loading(checkpoint: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, checkpoint, accept_licences=ACCEPTED)
    request = ImageRequest.create(prompt="fuse", images=[make_input()] * 11, size="512")

    with pytest.raises(TooManyImagesError, match="at most 10 input images; got 11") as caught:
        run_request(request, engine)
    assert caught.value.field == "images"
    assert not engine.loaded


def test_cached_embeddings_give_the_pipelines_own_image(
    engine: QwenImage21Engine, checkpoint: Path, tmp_path: Path
) -> None:
    """With references and true CFG the cache hands the pipeline embeddings and image-token masks
    it cannot take as arguments: the image must be the one it makes encoding the prompts itself."""
    uncached = _engine(tmp_path, checkpoint, accept_licences=ACCEPTED, text_embedding_cache=0)
    assert engine.text_embeddings is not None and uncached.text_embeddings is None
    images = [make_input(96, 64, (200, 30, 30)), make_input(64, 96, (30, 30, 200))]
    request = ImageRequest.create(
        prompt="the two side by side", images=images, size="512", seed=4, options={**FAST, "guidance": 3.0}
    )

    cached = run_request(request, engine)

    assert cached.images[0].data == run_request(request, uncached).images[0].data
    assert "encode_prompt" not in vars(engine._pipeline)  # the call's wrapper is gone
    plain = run_request(
        ImageRequest.create(prompt=request.prompt, images=images, size="512", seed=4, options=FAST), engine
    )
    assert plain.images[0].data != cached.images[0].data  # guidance 3 ran true CFG


# --- licence and sizes ---------------------------------------------------------------------------


def test_the_licence_gate_refuses_before_loading_and_serves_once_accepted(
    checkpoint: Path, tmp_path: Path
) -> None:
    gated = _engine(tmp_path, checkpoint)
    request = ImageRequest.create(prompt="a fox", size="512", seed=1, options=FAST)

    with pytest.raises(LicenceNotAcceptedError, match="Qwen Research License") as caught:
        run_request(request, gated)
    message = str(caught.value)
    assert "'qwen-research'" in message and "accept_licences" in message
    assert caught.value.field == "engine"
    with pytest.raises(LicenceNotAcceptedError):
        gated.load()
    assert not gated.loaded

    accepted = _engine(tmp_path, checkpoint, accept_licences=ACCEPTED)
    assert _sizes(run_request(request, accepted)) == [(512, 512)]


def test_2k_is_native_and_4k_is_refused(engine: QwenImage21Engine) -> None:
    for ratio in ("1:1", "16:9", "9:16", "4:3", "3:2"):
        engine.check_size(ImageRequest.create(prompt="a poster", aspect_ratio=ratio, size="2K"))
    engine.check_size(ImageRequest.create(prompt="README's 16:9", width=2752, height=1536))

    with pytest.raises(UnsupportedSizeError, match=r"at most 4\.3 megapixels"):
        engine.check_size(ImageRequest.create(prompt="a poster", aspect_ratio="1:1", size="4K"))
    with pytest.raises(UnsupportedSizeError, match="multiples of 32"):
        engine.check_size(ImageRequest.create(prompt="a poster", width=1000, height=1000))


def test_loads_by_hub_id_from_the_offline_cache(checkpoint: Path, hub_cache: Path, tmp_path: Path) -> None:
    repo_id = "plantain-test/tiny-qwen-image-2.1"
    install_in_hub_cache(checkpoint, repo_id, hub_cache)
    (family,) = FAMILIES
    settings = _settings(tmp_path, repos={NAME: repo_id}, hub_cache=hub_cache, accept_licences=ACCEPTED)
    engine = family.create(NAME, settings)
    request = ImageRequest.create(prompt="add a hat", images=[make_input()], size="512", seed=1, options=FAST)

    assert len(run_request(request, engine).images) == 1
    assert isinstance(engine, QwenImage21Engine)
    assert engine.condition_resolution == TINY_CONDITION_RESOLUTION  # read from the cached snapshot


# --- the pieces around the pipeline --------------------------------------------------------------


def test_a_shipped_sigma_grid_is_resampled_to_the_requested_steps() -> None:
    shipped = SimpleNamespace(config={"sample_sigmas": [1.0, 0.75, 0.5, 0.25]})
    assert step_sigmas(shipped, 4) == {}
    assert step_sigmas(shipped, 2) == {"sigmas": [1.0, 0.25]}
    assert step_sigmas(shipped, 7)["sigmas"] == pytest.approx([1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25])
    assert step_sigmas(SimpleNamespace(config={"sample_sigmas": None}), 40) == {}


def test_an_opaque_image_is_rgb_and_a_transparent_one_keeps_its_alpha() -> None:
    assert as_made(Image.new("RGBA", (4, 4), (1, 2, 3, 255))).mode == "RGB"
    cutout = Image.new("RGBA", (4, 4), (1, 2, 3, 255))
    cutout.putpixel((0, 0), (0, 0, 0, 0))
    assert as_made(cutout).mode == "RGBA"


def test_the_conditioning_sidecar_must_declare_one_square_area(tmp_path: Path) -> None:
    assert read_condition_resolution(tmp_path) is None
    write_conditioning(tmp_path, ConditioningAreas(64 * 64, 56 * 56))
    with pytest.raises(EngineLoadError, match="one square area"):
        read_condition_resolution(tmp_path)
    (tmp_path / CONDITIONING_FILE).unlink()
    write_conditioning(tmp_path, ConditioningAreas(96 * 96, 96 * 96))
    assert read_condition_resolution(tmp_path) == 96


def test_the_stock_processor_is_used_where_torchvision_is_installed(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    engine = _engine(tmp_path, checkpoint)
    assert set(engine._processor_override(checkpoint)) == {"processor"}
    monkeypatch.setattr(transformers, "is_torchvision_available", lambda: True)
    assert engine._processor_override(checkpoint) == {}
