"""Z-Image-Turbo and FLUX.1-schnell on their tiny random-weight checkpoints, through the real loaders.

Both families are text-to-image only and share one behaviour contract, so one set of tests runs
against each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from plantain.engines import flux1, registry, zimage
from plantain.engines.base import Engine
from plantain.engines.family import Family as Record
from plantain.errors import (
    MissingWeightsError,
    TaskCancelledError,
    UnsupportedSizeError,
    UnsupportedTaskError,
)
from plantain.generation import run_request
from plantain.imaging.sizes import resolve_size
from plantain.settings import Settings
from plantain.testing import install_in_hub_cache, last_step_preview, make_input
from plantain.types import ImageRequest, ImageResult


@dataclass(frozen=True)
class Family:
    record: Record  # the registry's: name, constructor, tiny builder
    module: ModuleType  # for its tiny twin (create_tiny, TINY_PRESET, TINY_DIR_NAME)
    too_big: str  # a size tier beyond the engine's limit at 1:1
    limit_text: str  # how the refusal states the limit

    @property
    def name(self) -> str:
        return self.record.engine

    @property
    def create(self) -> Callable[[str, Settings], Engine]:
        return self.record.create


# What this file needs per family beyond the registry's record, for the text-to-image-only
# families with a tiny twin.
CASES = {
    "z-image-turbo": (zimage, "4K", "4.2 megapixels"),
    "flux1-schnell": (flux1, "2K", "2.0 megapixels"),
}

FAMILIES = [Family(record, *CASES[record.engine]) for record in registry.FAMILIES if record.engine in CASES]


def test_every_case_is_a_registered_family() -> None:
    assert [family.name for family in FAMILIES] == list(CASES)


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda family: family.name)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def checkpoint(family: Family, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp(family.name) / "checkpoint"
    family.record.build_tiny(directory)
    return directory


@pytest.fixture(scope="module")
def engine(
    family: Family, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, hub_cache: Path
) -> Engine:
    """The real engine (real preset) pointed at the tiny checkpoint; loaded once per family."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        hub_cache=hub_cache,
        weights={family.name: checkpoint},
        dtype="float32",
    )
    return family.create(family.name, settings)


@pytest.fixture
def unloadable(family: Family, tmp_path: Path, hub_cache: Path) -> Engine:
    """The real engine pointed at a hub id that is not in the (offline) cache."""
    settings = Settings(
        data_dir=tmp_path, hub_cache=hub_cache, repos={family.name: "plantain-test/not-pulled"}
    )
    return family.create(family.name, settings)


def generate(engine: Engine, seed: int, **fields: object) -> ImageResult:
    fields = {"aspect_ratio": "16:9", "size": "512", "options": {"steps": 2}, **fields}
    return run_request(ImageRequest.create(prompt="a lighthouse at dusk", seed=seed, **fields), engine)


def test_runs_from_a_local_directory_at_the_exact_size(engine: Engine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(
        prompt="a lighthouse", aspect_ratio="16:9", size="512", seed=7, options={"steps": 2}
    )
    result = run_request(request, engine, on_step=lambda done, total: steps.append((done, total)))
    width, height = resolve_size("16:9", "512", engine.capabilities.sizes, engine.name)
    assert [(image.width, image.height, image.seed) for image in result.images] == [(width, height, 7)]
    assert steps == [(1, 2), (2, 2)]
    assert (result.steps, result.guidance) == (2, engine.preset.guidance)


def test_a_seed_gives_the_same_bytes_and_another_seed_others(engine: Engine) -> None:
    first, again, other = (generate(engine, seed).images[0].data for seed in (11, 11, 12))
    assert first == again
    assert first != other


def test_two_images_get_consecutive_seeds_and_differ(engine: Engine) -> None:
    result = generate(engine, 21, num_images=2)
    assert [image.seed for image in result.images] == [21, 22]
    assert result.images[0].data != result.images[1].data


def test_a_preview_of_the_final_latents_is_the_image_itself(engine: Engine) -> None:
    request = ImageRequest.create(
        prompt="a lighthouse", aspect_ratio="16:9", size="512", options={"steps": 2}
    )
    preview, final = last_step_preview(engine, request)
    assert preview.size == final.size
    assert preview.tobytes() == final.tobytes()


def test_loads_by_hub_id_from_the_offline_cache(
    family: Family, checkpoint: Path, tmp_path: Path, hub_cache: Path
) -> None:
    repo = f"plantain-test/tiny-{family.name}"
    install_in_hub_cache(checkpoint, repo, hub_cache)
    settings = Settings(data_dir=tmp_path, hub_cache=hub_cache, repos={family.name: repo}, dtype="float32")
    engine = family.create(family.name, settings)
    assert engine.weights_status().present
    result = generate(engine, 3, options={"steps": 1})
    assert [(image.width, image.height) for image in result.images] == [(672, 384)]


def test_missing_weights_name_the_engine_the_hub_id_and_the_pull_command(unloadable: Engine) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        generate(unloadable, 1)
    message = str(caught.value)
    assert unloadable.name in message and "plantain-test/not-pulled" in message
    assert f"plantain pull {unloadable.name}" in message


def test_an_input_image_is_refused_before_loading(unloadable: Engine) -> None:
    assert unloadable.capabilities.tasks() == ["text-to-image"] and not unloadable.random_weights
    with pytest.raises(UnsupportedTaskError, match="makes images from text only"):
        generate(unloadable, 1, images=(make_input(),))
    assert not unloadable.loaded


def test_a_size_beyond_the_limit_is_refused_with_the_megapixel_limit(
    family: Family, unloadable: Engine
) -> None:
    with pytest.raises(UnsupportedSizeError, match=f"at most {family.limit_text}"):
        generate(unloadable, 1, aspect_ratio="1:1", size=family.too_big)
    assert not unloadable.loaded


def test_a_stop_flag_cancels_between_steps(engine: Engine) -> None:
    done_steps: list[int] = []
    request = ImageRequest.create(prompt="a lighthouse", size="512", seed=5, options={"steps": 3})
    with pytest.raises(TaskCancelledError):
        run_request(
            request,
            engine,
            on_step=lambda done, _: done_steps.append(done),
            should_stop=lambda: len(done_steps) >= 1,
        )
    assert done_steps == [1]


def test_the_tiny_variant_builds_on_first_use_and_makes_1k(family: Family, tmp_path: Path) -> None:
    engine = family.module.create_tiny(f"tiny-{family.name}", Settings(data_dir=tmp_path))
    assert engine.weights_status().buildable and engine.random_weights
    assert (
        engine.plan(ImageRequest.create(prompt="a lighthouse"), [], 1).steps
        == family.module.TINY_PRESET.steps
    )
    result = run_request(ImageRequest.create(prompt="a lighthouse", seed=1, options={"steps": 2}), engine)
    assert (result.images[0].width, result.images[0].height) == (1024, 1024)
    assert (tmp_path / "models" / family.module.TINY_DIR_NAME / "model_index.json").is_file()
