"""Qwen-Image-Edit's fast path (docs/loras.md, "Presets"): the ``lightning`` preset per request (4
steps, no CFG, the Lightning LoRA as an adapter) and ``qwen-image-edit-lightning`` (the same LoRA
fused at load), on the tiny Edit-2511 checkpoint with a tiny random LoRA in its place."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from plantain.engines.qwen_image import (
    LIGHTNING_DIR,
    build_tiny_qwen_image_edit_lightning,
    create_qwen_image_edit,
    create_qwen_image_edit_lightning,
)
from plantain.errors import InvalidRequestError, UnsupportedTaskError
from plantain.generation import prepare, run_request
from plantain.settings import Settings
from plantain.testing import build_once, make_input
from plantain.types import ImageRequest, ImageResult


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(build_tiny_qwen_image_edit_lightning, tmp_path_factory.mktemp("edit") / "tiny")


def _settings(checkpoint: Path, name: str, **fields: object) -> Settings:
    lora = {"lightning": {"source": str(checkpoint / LIGHTNING_DIR)}}
    return Settings(
        data_dir=checkpoint.parent / "data",
        weights={name: checkpoint},
        dtype="float32",
        loras={name: lora},
        **fields,  # type: ignore[arg-type]
    )


def _edit(**fields: object) -> ImageRequest:
    return ImageRequest.create(prompt="make it blue", images=(make_input(),), size="512", seed=9, **fields)  # type: ignore[arg-type]


def _pixels(result: ImageResult) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(result.images[0].data)).convert("RGB")).astype(int)


def test_the_lightning_preset_runs_4_steps_without_cfg_with_the_lora(checkpoint: Path) -> None:
    engine = create_qwen_image_edit("qwen-image-edit", _settings(checkpoint, "qwen-image-edit"))
    job = prepare(_edit(options={"preset": "lightning"}), engine)
    assert (job.steps, job.guidance, job.loras) == (4, 1.0, (("lightning", 1.0),))
    assert prepare(_edit(), engine).steps == 40  # the default preset is untouched
    fast = run_request(_edit(options={"preset": "lightning"}), engine)
    without = run_request(
        _edit(options={"preset": "lightning"}, loras=[{"name": "lightning", "scale": 0}]), engine
    )
    assert fast.steps == 4 and np.abs(_pixels(fast) - _pixels(without)).max() > 0


def test_explicit_steps_win_over_the_preset(checkpoint: Path) -> None:
    engine = create_qwen_image_edit("qwen-image-edit", _settings(checkpoint, "qwen-image-edit"))
    assert prepare(_edit(options={"preset": "lightning", "steps": 8}), engine).steps == 8


def test_an_unknown_preset_is_refused_naming_the_engines_presets(checkpoint: Path) -> None:
    engine = create_qwen_image_edit("qwen-image-edit", _settings(checkpoint, "qwen-image-edit"))
    with pytest.raises(InvalidRequestError) as refused:
        prepare(_edit(options={"preset": "turbo"}), engine)
    assert refused.value.field == "preset" and "its presets are lightning" in refused.value.message


def test_the_lightning_engine_fuses_the_lora_and_matches_the_preset(checkpoint: Path) -> None:
    # No loras entry for it: the engine takes the LoRA from the lightning/ folder beside its weights.
    settings = Settings(
        data_dir=checkpoint.parent / "data",
        weights={"qwen-image-edit-lightning": checkpoint},
        dtype="float32",
    )
    fused = create_qwen_image_edit_lightning("qwen-image-edit-lightning", settings)
    result = run_request(_edit(), fused)
    assert result.steps == 4 and result.guidance == 1.0
    transformer = fused._pipeline.transformer
    assert not any("lora" in name for name, _ in transformer.named_modules())  # no adapter left
    adapter = create_qwen_image_edit("qwen-image-edit", _settings(checkpoint, "qwen-image-edit"))
    preset = run_request(_edit(options={"preset": "lightning"}), adapter)
    assert np.abs(_pixels(result) - _pixels(preset)).max() <= 2  # fused vs adapter: float rounding


def test_per_request_loras_are_refused_on_an_fp8_engine(checkpoint: Path) -> None:
    engine = create_qwen_image_edit("qwen-image-edit", _settings(checkpoint, "unused", quantization="fp8"))
    with pytest.raises(UnsupportedTaskError) as refused:
        prepare(_edit(options={"preset": "lightning"}), engine)
    assert refused.value.field == "loras" and "qwen-image-edit-lightning" in refused.value.message
