"""bench/fullwidth_smoke.py at tiny widths: the full-width CPU smoke run's own code path (build in a
child process, save in the hub repo's layout, load through the engine registry, one 256² step),
kept working without its 16 GB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "fullwidth_smoke.py"

HUB_MODEL_INDEX = {
    "transformer": "Flux2Transformer2DModel",
    "vae": "AutoencoderKLFlux2",
    "text_encoder": "Qwen3ForCausalLM",
    "tokenizer": "Qwen2Tokenizer",
    "scheduler": "FlowMatchEulerDiscreteScheduler",
}


def smoke(checkpoint: Path, data_dir: Path) -> dict[str, Any]:
    """Run the script as a user does; its last line is the JSON report."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PLANTAIN_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.slow
def test_tiny_smoke_builds_the_hub_layout_once_and_makes_a_256_image_through_the_engine(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "checkpoint"
    first = smoke(checkpoint, tmp_path / "data")
    assert first["checkpoint"]["built"] is True
    assert first["checkpoint"]["model_index"] == HUB_MODEL_INDEX
    assert (checkpoint / "text_encoder" / "config.json").is_file()
    assert first["loaded"]["dtypes"] == dict.fromkeys(
        ("transformer", "text_encoder", "vae"), "torch.bfloat16"
    )
    assert first["image"] == first["image"] | {"width": 256, "height": 256}
    assert set(first["phases"]) == {"build", "save", "load", "run"}
    for figures in first["phases"].values():
        assert figures["seconds"] > 0 and figures["peak_rss_gib"] > 0

    again = smoke(checkpoint, tmp_path / "data")  # the directory is a cache: loaded, not rebuilt
    assert again["checkpoint"]["built"] is False
    assert set(again["phases"]) == {"load", "run"}
    assert again["image"] == first["image"]  # same seed, same weights: the same pixels
