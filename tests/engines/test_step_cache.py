"""The step cache (first-block cache) on the tiny Qwen-Image-Edit engine, and its refusals.

FLUX.2 (the tiny klein) is refused: diffusers' first-block cache cannot combine its double- and
single-stream blocks (engines/step_cache.py). The checkpoint is built once per module, the engine
loaded once; eight steps give the cache steps to skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from plantain.engines import tiny
from plantain.engines.base import Engine, EngineJob
from plantain.engines.qwen_image import create_qwen_image_edit
from plantain.engines.qwen_image_tiny import build_tiny_qwen_image_edit
from plantain.engines.step_cache import (
    apply_step_cache,
    describe_step_cache,
    reset_step_cache,
    supports_step_cache,
)
from plantain.errors import ConfigurationError, TaskCancelledError
from plantain.generation import prepare
from plantain.settings import Settings
from plantain.testing import build_once, make_input
from plantain.types import ImageRequest

EDIT = "qwen-image-edit"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    directory = build_once(build_tiny_qwen_image_edit, tmp_path_factory.mktemp("qwen") / "tiny-edit")
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), weights={EDIT: directory}, dtype="float32")
    engine = create_qwen_image_edit(EDIT, settings)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def job(engine: Engine) -> EngineJob:
    request = ImageRequest.create(
        prompt="make it blue", size="512", seed=11, images=[make_input()], options={"steps": 4}
    )
    return prepare(request, engine)


@pytest.fixture
def uncached(engine: Engine, job: EngineJob) -> Iterator[np.ndarray]:
    """The image without the cache; the cache is off again after each test."""
    yield image(engine, job)
    transformer = engine._pipeline.transformer
    if transformer.is_cache_enabled:
        transformer.disable_cache()


def image(engine: Engine, job: EngineJob) -> np.ndarray:
    return np.asarray(engine.run([job])[0][0]).astype(np.int16)


def test_threshold_zero_gives_the_uncached_image(
    engine: Engine, job: EngineJob, uncached: np.ndarray
) -> None:
    apply_step_cache(engine._pipeline, 0.0, engine=EDIT)
    assert describe_step_cache(engine._pipeline) == {"kind": "first-block", "threshold": 0.0}
    assert np.array_equal(image(engine, job), uncached)


def test_a_high_threshold_skips_steps_and_the_run_succeeds(
    engine: Engine, job: EngineJob, uncached: np.ndarray
) -> None:
    apply_step_cache(engine._pipeline, 100.0, engine=EDIT)
    cached = image(engine, job)
    assert cached.shape == uncached.shape
    assert np.abs(cached - uncached).mean() > 0.01
    assert np.array_equal(image(engine, job), cached)  # the cache starts afresh each run


def test_a_stopped_run_leaves_nothing_once_reset(
    engine: Engine, job: EngineJob, uncached: np.ndarray
) -> None:
    apply_step_cache(engine._pipeline, 100.0, engine=EDIT)
    cached = image(engine, job)
    other = replace(job, seeds=(99,))  # stopped after its first step: its residuals stay behind
    steps: list[int] = []
    with pytest.raises(TaskCancelledError):
        engine.run([other], on_step=lambda done, total: steps.append(done), should_stop=lambda: bool(steps))
    reset_step_cache(engine._pipeline)
    assert np.array_equal(image(engine, job), cached)


def test_klein_is_refused_naming_the_setting(tmp_path: Path) -> None:
    directory = build_once(tiny.build_checkpoint, tmp_path / "klein")
    klein = tiny.create("tiny", Settings(data_dir=tmp_path, weights={"tiny": directory}, dtype="float32"))
    pipeline = klein._load()
    assert not supports_step_cache(pipeline)
    with pytest.raises(ConfigurationError, match="Flux2SingleTransformerBlock") as info:
        apply_step_cache(pipeline, 0.1, engine="tiny")
    assert info.value.field == "step_cache" and "PLANTAIN_STEP_CACHE" in info.value.message
    assert describe_step_cache(pipeline) is None


def test_a_transformer_without_cache_support_is_refused() -> None:
    pipeline = SimpleNamespace(transformer=torch.nn.Linear(2, 2))
    with pytest.raises(ConfigurationError, match="does not support caching") as info:
        apply_step_cache(pipeline, 0.1, engine="plain")
    assert info.value.field == "step_cache"


@pytest.mark.parametrize("threshold", [-0.1, float("nan"), float("inf")])
def test_a_threshold_that_is_not_a_number_from_zero_is_refused(engine: Engine, threshold: float) -> None:
    with pytest.raises(ConfigurationError, match="threshold") as info:
        apply_step_cache(engine._pipeline, threshold, engine=EDIT)
    assert info.value.field == "step_cache"
    assert describe_step_cache(engine._pipeline) is None
