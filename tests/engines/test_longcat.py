"""LongCat-Image engines on tiny random-weight checkpoints: real classes, the real loader, an offline hub.

Each checkpoint is built once per module and each engine loads once per module (float32). The
text-to-image engine runs without the pipeline's prompt rewrite (``TINY_CALL_KWARGS``: it would
generate 512 tokens per prompt), except where a test replaces the rewrite with a recorder.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.engines.licences import APACHE_2
from plantain.engines.longcat import (
    TINY_CALL_KWARGS,
    LongCatImageEditEngine,
    LongCatImageEngine,
    create,
    create_edit,
    fit_prompt,
)
from plantain.engines.longcat_tiny import build_tiny_longcat_image, build_tiny_longcat_image_edit
from plantain.errors import TaskCancelledError, TooManyImagesError, UnsupportedSizeError, UnsupportedTaskError
from plantain.generation import prepare, run_request
from plantain.imaging.sizes import nearest_aspect_ratio, resolve_size
from plantain.settings import Settings
from plantain.testing import build_once, last_step_preview, make_input
from plantain.types import ImageRequest, ImageResult

T2I = "longcat-image"
EDIT = "longcat-image-edit"
FAST = {"steps": 2}
SMALL: dict[str, Any] = {
    "width": 256,
    "height": 256,
    "options": {"steps": 1},
}  # where size and steps do not matter


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def t2i_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(build_tiny_longcat_image, tmp_path_factory.mktemp("longcat") / "tiny-longcat-image")


@pytest.fixture(scope="module")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("longcat") / "tiny-longcat-image-edit"
    return build_once(build_tiny_longcat_image_edit, directory)


def _settings(tmp: Path, **fields: Any) -> Settings:
    return Settings(data_dir=tmp, device="cpu", dtype="float32", **fields)


def _t2i(directory: Path, tmp: Path, **fields: Any) -> LongCatImageEngine:
    engine = create(T2I, _settings(tmp, weights={T2I: directory}, **fields))
    engine.preset = replace(engine.preset, call_kwargs={**engine.preset.call_kwargs, **TINY_CALL_KWARGS})
    return engine


@pytest.fixture(scope="module")
def t2i_engine(t2i_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LongCatImageEngine:
    return _t2i(t2i_dir, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def edit_engine(edit_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LongCatImageEditEngine:
    return create_edit(EDIT, _settings(tmp_path_factory.mktemp("data"), weights={EDIT: edit_dir}))


def _not_installed(name: str, tmp: Path, hub_cache: Path) -> LongCatImageEngine:
    """An engine whose hub id is not in the cache: any attempt to load it raises."""
    settings = _settings(tmp, repos={name: f"plantain-test/{name}-not-installed"}, hub_cache=hub_cache)
    return create(name, settings) if name == T2I else create_edit(name, settings)


def _sizes(result: ImageResult) -> list[tuple[int, int]]:
    return [(image.width, image.height) for image in result.images]


def _edit_dimensions() -> Any:
    import diffusers.pipelines.longcat_image.pipeline_longcat_image_edit as edit_module

    return edit_module.calculate_dimensions


def _assert_pipeline_restored(engine: LongCatImageEngine) -> None:
    """The per-call adjustments are gone after a run: the next caller gets the stock pipeline."""
    pipeline = engine._pipeline
    assert "step" not in vars(pipeline.scheduler)
    assert "_encode_prompt" not in vars(pipeline)


# --- longcat-image (text-to-image) -------------------------------------------------------------


def test_longcat_image_runs_with_a_seed_twice_to_the_same_bytes(t2i_engine: LongCatImageEngine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(
        prompt='a sign reading "OPEN"', aspect_ratio="16:9", size="512", seed=7, options=FAST
    )

    first = run_request(request, t2i_engine, on_step=lambda done, total: steps.append((done, total)))

    assert _sizes(first) == [resolve_size("16:9", "512", t2i_engine.capabilities.sizes, T2I)]
    assert [image.seed for image in first.images] == [7]
    assert steps == [(1, 2), (2, 2)]  # reported through the wrapped scheduler step
    again = run_request(request, t2i_engine)
    other = run_request(request.model_copy(update={"seed": 8}), t2i_engine)
    assert again.images[0].data == first.images[0].data
    assert other.images[0].data != first.images[0].data
    _assert_pipeline_restored(t2i_engine)


def test_longcat_image_batches_compatible_jobs_in_one_call(t2i_engine: LongCatImageEngine) -> None:
    short = prepare(ImageRequest.create(prompt="a fox", seed=5, **SMALL), t2i_engine)
    long = prepare(
        ImageRequest.create(prompt="a lighthouse at dusk", seed=9, num_images=2, **SMALL), t2i_engine
    )

    images = t2i_engine.run([short, long])

    assert [[image.size for image in job] for job in images] == [[(256, 256)], [(256, 256)] * 2]
    assert images[1][0].tobytes() != images[1][1].tobytes()


def test_longcat_image_cached_embeddings_give_the_pipelines_own_image(
    t2i_engine: LongCatImageEngine, t2i_dir: Path, tmp_path: Path
) -> None:
    request = ImageRequest.create(prompt="a red fox", seed=3, **SMALL)
    uncached = _t2i(t2i_dir, tmp_path, text_embedding_cache=0)
    assert uncached.text_embeddings is None and t2i_engine.text_embeddings is not None

    assert run_request(request, uncached).images[0].data == run_request(request, t2i_engine).images[0].data


def test_longcat_image_rewrites_each_prompt_once_inside_the_cached_encoding(
    t2i_dir: Path, tmp_path: Path
) -> None:
    engine = _t2i(t2i_dir, tmp_path)
    engine.preset = replace(
        engine.preset, call_kwargs={**engine.preset.call_kwargs, "enable_prompt_rewrite": True}
    )
    engine.load()
    rewritten: list[list[str]] = []

    def rewrite(prompts: list[str], device: Any) -> list[str]:  # the text encoder's rewrite, recorded
        rewritten.append(list(prompts))
        return [f"{prompt}, golden hour, 35 mm photograph" for prompt in prompts]

    engine._pipeline.rewire_prompt = rewrite
    request = ImageRequest.create(prompt="a red fox", seed=3, **SMALL)

    first = run_request(request, engine)
    second = run_request(request, engine)

    assert rewritten == [["a red fox"]]  # not the negative prompt, and not again for a cached prompt
    assert first.images[0].data == second.images[0].data
    plain = _t2i(t2i_dir, tmp_path / "plain")
    assert run_request(request, plain).images[0].data != first.images[0].data  # the rewrite was encoded


def test_longcat_image_preview_of_the_final_latents_is_the_image_itself(
    t2i_engine: LongCatImageEngine,
) -> None:
    request = ImageRequest.create(prompt="a sign", width=256, height=320, options=FAST)
    preview, final = last_step_preview(t2i_engine, request)
    assert preview.size == final.size
    assert preview.tobytes() == final.tobytes()


def test_longcat_image_cancels_after_the_first_step(t2i_engine: LongCatImageEngine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(prompt="a fox", width=256, height=256, seed=3, options={"steps": 3})

    with pytest.raises(TaskCancelledError, match="after step 2 of 3"):
        run_request(request, t2i_engine, lambda done, total: steps.append((done, total)), lambda: bool(steps))
    assert steps == [(1, 3)]
    _assert_pipeline_restored(t2i_engine)


def test_longcat_image_refuses_input_images_before_loading(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(T2I, tmp_path, hub_cache)
    request = ImageRequest.create(prompt="edit this", images=[make_input()], size="512")

    with pytest.raises(UnsupportedTaskError, match="text only"):
        run_request(request, engine)
    assert not engine.loaded


@pytest.mark.parametrize("name", [T2I, EDIT])
def test_longcat_refuses_2k_naming_its_megapixel_limit(name: str, tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(name, tmp_path, hub_cache)
    images = [make_input()] if name == EDIT else []
    request = ImageRequest.create(prompt="a poster", images=images, aspect_ratio="1:1", size="2K")

    with pytest.raises(UnsupportedSizeError, match=r"at most 1\.0 megapixels"):
        run_request(request, engine)
    assert not engine.loaded


@pytest.mark.parametrize("name", [T2I, EDIT])
def test_longcat_is_apache_2_and_serves_without_accepting_a_licence(
    name: str, tmp_path: Path, hub_cache: Path
) -> None:
    engine = _not_installed(name, tmp_path, hub_cache)
    assert engine.licence == APACHE_2 and not APACHE_2.gated
    images = [make_input()] if name == EDIT else []
    engine.check_task(ImageRequest.create(prompt="a fox", images=images))  # no LicenceNotAcceptedError


# --- longcat-image-edit -----------------------------------------------------------------------


def test_longcat_image_edit_keeps_the_input_shape_and_repeats_a_seed(
    edit_engine: LongCatImageEditEngine,
) -> None:
    steps: list[tuple[int, int]] = []
    stock_dimensions = _edit_dimensions()
    request = ImageRequest.create(
        prompt="make it blue", images=[make_input(96, 64)], size="512", seed=11, options=FAST
    )

    first = run_request(request, edit_engine, on_step=lambda done, total: steps.append((done, total)))

    sizes = edit_engine.capabilities.sizes
    assert _sizes(first) == [resolve_size(nearest_aspect_ratio(96, 64, sizes), "512", sizes, EDIT)]
    assert steps == [(1, 2), (2, 2)]
    again = run_request(request, edit_engine)
    other = run_request(request.model_copy(update={"seed": 12}), edit_engine)
    assert again.images[0].data == first.images[0].data
    assert other.images[0].data != first.images[0].data
    assert _edit_dimensions() is stock_dimensions  # the planned size was imposed for the call only
    _assert_pipeline_restored(edit_engine)


def test_longcat_image_edit_makes_the_asked_shape_and_one_image_per_seed(
    edit_engine: LongCatImageEditEngine,
) -> None:
    fields: dict[str, Any] = {
        "prompt": "add a hat",
        "images": [make_input(96, 64)],
        "width": 256,  # the landscape input is cropped to portrait, not stretched
        "height": 448,
        "options": {"steps": 1},
    }

    both = run_request(ImageRequest.create(num_images=2, seed=20, **fields), edit_engine)
    second_alone = run_request(ImageRequest.create(seed=21, **fields), edit_engine)

    expected = (256, 448)
    assert _sizes(both) == [expected, expected]
    assert [image.seed for image in both.images] == [20, 21]
    assert both.images[0].data != both.images[1].data
    assert _sizes(second_alone) == [expected]


def test_longcat_image_edit_cached_embeddings_give_the_pipelines_own_image(
    edit_engine: LongCatImageEditEngine, edit_dir: Path, tmp_path: Path
) -> None:
    request = ImageRequest.create(prompt="a hat", images=[make_input()], seed=4, **SMALL)
    uncached = create_edit(EDIT, _settings(tmp_path, weights={EDIT: edit_dir}, text_embedding_cache=0))

    assert run_request(request, uncached).images[0].data == run_request(request, edit_engine).images[0].data


def test_longcat_image_edit_runs_a_prompt_longer_than_its_512_tokens(
    edit_engine: LongCatImageEditEngine,
) -> None:
    prompt = 'write "LONGCAT" on the wall, ' + "then make the sky a little bluer " * 40  # 1300+ tokens here
    edit_engine.load()
    pipeline = edit_engine._pipeline
    fitted = fit_prompt(pipeline, prompt)
    assert prompt.startswith(fitted) and len(fitted) < len(prompt)
    assert fit_prompt(pipeline, fitted) == fitted and fit_prompt(pipeline, "a hat") == "a hat"
    assert fit_prompt(pipeline, fitted + prompt[len(fitted)]) == fitted  # the longest start that fits

    request = ImageRequest.create(prompt=prompt, images=[make_input()], seed=1, **SMALL)
    assert len(run_request(request, edit_engine).images) == 1  # diffusers alone raises a TypeError


def test_longcat_image_edit_preview_of_the_final_latents_is_the_image_itself(
    edit_engine: LongCatImageEditEngine,
) -> None:
    request = ImageRequest.create(
        prompt="a hat", images=[make_input(64, 96)], width=256, height=384, options=FAST
    )
    preview, final = last_step_preview(edit_engine, request)
    assert preview.size == final.size
    assert preview.tobytes() == final.tobytes()


def test_longcat_image_edit_loads_by_hub_id_from_the_offline_cache(
    edit_dir: Path, hub_cache: Path, tmp_path: Path
) -> None:
    repo_id = "plantain-test/tiny-longcat-image-edit"
    install_in_hub_cache(edit_dir, repo_id, hub_cache)
    engine = create_edit(EDIT, _settings(tmp_path, repos={EDIT: repo_id}, hub_cache=hub_cache))
    request = ImageRequest.create(prompt="add a hat", images=[make_input()], seed=1, **SMALL)

    assert _sizes(run_request(request, engine)) == [(256, 256)]


def test_longcat_image_edit_refuses_a_second_image_before_loading(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(EDIT, tmp_path, hub_cache)
    request = ImageRequest.create(prompt="fuse", images=[make_input()] * 2, size="512")

    with pytest.raises(TooManyImagesError, match="at most 1 input images; got 2") as caught:
        run_request(request, engine)
    assert caught.value.field == "images"
    assert not engine.loaded


def test_longcat_image_edit_refuses_text_only_requests(tmp_path: Path, hub_cache: Path) -> None:
    engine = _not_installed(EDIT, tmp_path, hub_cache)

    with pytest.raises(UnsupportedTaskError, match="only edits images"):
        run_request(ImageRequest.create(prompt="a fox", size="512"), engine)
