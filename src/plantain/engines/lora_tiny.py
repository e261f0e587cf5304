"""Random LoRAs for the tiny checkpoints: tests and bench scripts of per-request LoRAs.

A LoRA is made the way a trainer makes one (PEFT's ``LoraConfig`` on the checkpoint's own
transformer, its state dict saved with the pipeline class's ``save_lora_weights`` and the adapter
config as metadata), so the real loader reads it as it would a downloaded one. Both matrices are
random (a trained LoRA's B is non-zero; PEFT's default initialises it to zero, a no-op), so a LoRA
visibly changes the image.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

# Attention projections every diffusers transformer of these families names the same way.
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")

WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default file name for a LoRA


def build_tiny_lora(
    checkpoint_dir: Path,
    pipeline_class_name: str,
    out_dir: Path,
    rank: int = 4,
    seed: int = 0,
    targets: Sequence[str] | None = None,
) -> Path:
    """Save a random rank-``rank`` LoRA for the transformer of the checkpoint in ``checkpoint_dir``
    (a ``pipeline_class_name`` pipeline) into ``out_dir``; returns the LoRA file's path."""
    import diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    pipeline_class = getattr(diffusers, pipeline_class_name)
    transformer = _load_transformer(checkpoint_dir)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=list(targets or DEFAULT_TARGETS),
        init_lora_weights=False,  # random A and B: a LoRA that changes the output
    )
    with torch.random.fork_rng(devices=[]):  # the global generator is left as it was
        torch.manual_seed(seed)
        transformer.add_adapter(config)
    layers = get_peft_model_state_dict(transformer)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(
        out_dir,
        transformer_lora_layers=layers,
        transformer_lora_adapter_metadata=config.to_dict(),
        weight_name=WEIGHT_NAME,
    )
    return out_dir / WEIGHT_NAME


def _load_transformer(checkpoint_dir: Path) -> Any:
    """The checkpoint's transformer, by the class its ``model_index.json`` names."""
    import diffusers

    index = json.loads((checkpoint_dir / "model_index.json").read_text())
    _library, class_name = index["transformer"]
    transformer_class = getattr(diffusers, class_name)
    return transformer_class.from_pretrained(checkpoint_dir / "transformer").eval()
