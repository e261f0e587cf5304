"""The FLUX.1-schnell engine on its tiny random-weight checkpoint, through the real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantain.engines import flux1
from plantain.engines.checkpoints import install_in_hub_cache
from plantain.engines.flux1 import Flux1Engine
from plantain.errors import CancelledError, MissingWeightsError, UnsupportedSizeError, UnsupportedTaskError
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.sizes import resolve_size
from plantain.testing import make_input
from plantain.types import ImageRequest, ImageResult

NAME = "flux1-schnell"
TINY_REPO = "plantain-test/tiny-flux1-schnell"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("flux1") / "checkpoint"
    flux1.build_tiny_checkpoint(directory)
    return directory


@pytest.fixture(scope="module")
def engine(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> Flux1Engine:
    """The real engine pointed at the tiny checkpoint; loaded once for the module."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        hub_cache=hub_cache,
        weights={NAME: checkpoint},
        dtype="float32",
    )
    return flux1.create(NAME, settings)


@pytest.fixture
def unloadable(tmp_path: Path, hub_cache: Path) -> Flux1Engine:
    """The real engine pointed at a hub id that is not in the (offline) cache."""
    settings = Settings(data_dir=tmp_path, hub_cache=hub_cache, repos={NAME: "plantain-test/not-pulled"})
    return flux1.create(NAME, settings)


def generate(engine: Flux1Engine, seed: int, **fields: object) -> ImageResult:
    fields = {"aspect_ratio": "16:9", "size": "512", "options": {"steps": 2}, **fields}
    return run_request(ImageRequest.create(prompt="a lighthouse at dusk", seed=seed, **fields), engine)


def test_runs_from_a_local_directory_at_the_exact_size(engine: Flux1Engine) -> None:
    steps: list[tuple[int, int]] = []
    request = ImageRequest.create(
        prompt="a lighthouse at dusk", aspect_ratio="16:9", size="512", seed=7, options={"steps": 2}
    )
    result = run_request(request, engine, on_step=lambda done, total: steps.append((done, total)))
    width, height = resolve_size("16:9", "512", engine.capabilities.sizes, NAME)
    assert [(image.width, image.height) for image in result.images] == [(width, height)]
    assert [image.seed for image in result.images] == [7]
    assert steps == [(1, 2), (2, 2)]
    assert (result.steps, result.guidance) == (2, 0.0)


def test_a_seed_gives_the_same_bytes_and_another_seed_others(engine: Flux1Engine) -> None:
    first, again, other = (generate(engine, seed).images[0].data for seed in (11, 11, 12))
    assert first == again
    assert first != other


def test_two_images_get_consecutive_seeds_and_differ(engine: Flux1Engine) -> None:
    result = generate(engine, 21, num_images=2)
    assert [image.seed for image in result.images] == [21, 22]
    assert result.images[0].data != result.images[1].data


def test_loads_by_hub_id_from_the_offline_cache(checkpoint: Path, tmp_path: Path, hub_cache: Path) -> None:
    install_in_hub_cache(checkpoint, TINY_REPO, hub_cache)
    settings = Settings(data_dir=tmp_path, hub_cache=hub_cache, repos={NAME: TINY_REPO}, dtype="float32")
    engine = flux1.create(NAME, settings)
    assert engine.weights_status().present
    result = generate(engine, 3, options={"steps": 1})
    assert [(image.width, image.height) for image in result.images] == [(672, 384)]


def test_missing_weights_name_the_engine_the_hub_id_and_the_pull_command(unloadable: Flux1Engine) -> None:
    with pytest.raises(MissingWeightsError) as caught:
        generate(unloadable, 1)
    message = str(caught.value)
    assert NAME in message
    assert "plantain-test/not-pulled" in message
    assert f"plantain pull {NAME}" in message


def test_an_input_image_is_refused_before_loading(unloadable: Flux1Engine) -> None:
    assert unloadable.capabilities.tasks() == ["text-to-image"] and not unloadable.random_weights
    with pytest.raises(UnsupportedTaskError):
        generate(unloadable, 1, images=(make_input(),))
    assert not unloadable.loaded


def test_a_size_beyond_the_limit_is_refused_with_the_megapixel_limit(unloadable: Flux1Engine) -> None:
    with pytest.raises(UnsupportedSizeError) as caught:
        generate(unloadable, 1, aspect_ratio="1:1", size="2K")
    assert "2.0 megapixels" in str(caught.value)
    assert not unloadable.loaded


def test_a_stop_flag_cancels_between_steps(engine: Flux1Engine) -> None:
    done_steps: list[int] = []

    def on_step(done: int, total: int) -> None:
        done_steps.append(done)

    def should_stop() -> bool:
        return len(done_steps) >= 1  # True once step 1 is done

    request = ImageRequest.create(prompt="a lighthouse", size="512", seed=5, options={"steps": 3})
    with pytest.raises(CancelledError):
        run_request(request, engine, on_step=on_step, should_stop=should_stop)
    assert done_steps == [1]


def test_the_tiny_engine_builds_on_first_use_and_makes_1k(tmp_path: Path) -> None:
    engine = flux1.create_tiny("tiny-flux1", Settings(data_dir=tmp_path))
    assert engine.weights_status().buildable and engine.random_weights
    assert engine.plan(ImageRequest.create(prompt="a lighthouse"), [], 1).steps == flux1.TINY_PRESET.steps
    result = run_request(ImageRequest.create(prompt="a lighthouse", seed=1, options={"steps": 2}), engine)
    assert (result.images[0].width, result.images[0].height) == (1024, 1024)
    assert (tmp_path / "models" / flux1.TINY_DIR_NAME / "model_index.json").is_file()
