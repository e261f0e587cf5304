"""On a CUDA GPU: the same loader places the pipeline on the GPU in bfloat16 and makes images.

Deselected by the README's test command (no GPU there); run with ``pytest -m gpu`` on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from plantain.engines.registry import EngineRegistry
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.types import ImageRequest

pytestmark = pytest.mark.gpu


def test_tiny_runs_on_cuda_in_bfloat16(data_dir: Path) -> None:
    assert torch.cuda.is_available(), "this test needs a CUDA GPU"
    engine = EngineRegistry(Settings(data_dir=data_dir, device="auto", dtype="bfloat16")).get("tiny")
    engine.load()
    assert engine._pipeline.transformer.device.type == "cuda"
    assert engine._pipeline.transformer.dtype == torch.bfloat16
    request = ImageRequest.create(prompt="a red bicycle", aspect_ratio="16:9", seed=1)
    first, again = (run_request(request, engine).images[0] for _ in range(2))
    assert (first.width, first.height) == (1344, 768)
    assert first.data == again.data
