"""Checks and defaults of single settings, apart from the :class:`~plantain.settings.Settings`
model so that it stays a list of fields: the validators its fields are annotated with (each
ValueError becomes one ConfigurationError naming the setting), the data directory's default, and
a message the engines repeat.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo

from plantain.imaging.sizes import ASPECT_RATIOS, TIERS
from plantain.webhooks.signing import check_secret

__all__ = [
    "REGIONAL_CUDA_GRAPHS",
    "check_cuda_graphs",
    "check_warmup_sizes",
    "check_webhook_secret",
    "default_data_dir",
    "refuse_hub_kernels",
]

# Each compiled block's CUDA graph output is the next block's input, overwritten by its replay.
REGIONAL_CUDA_GRAPHS = (
    "CUDA graphs of regionally compiled blocks crash (pytorch/pytorch#152887): with "
    "torch_compile=regional set cuda_graphs to false, or torch_compile to full or auto"
)


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/plantain``, else ``~/.local/share/plantain``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "plantain"


def check_warmup_sizes(value: list[str] | None) -> list[str] | None:
    """``warmup_sizes``: each entry a "TIER:RATIO" of the size table."""
    for entry in value or []:
        tier, _, ratio = entry.partition(":")
        if tier not in TIERS or ratio not in ASPECT_RATIOS:
            raise ValueError(
                f'{entry!r} is not "TIER:RATIO"; tiers are {", ".join(TIERS)} and ratios '
                f"{', '.join(ASPECT_RATIOS)}, e.g. 1K:1:1"
            )
    return value


def check_cuda_graphs(value: bool, info: ValidationInfo) -> bool:
    """``cuda_graphs``: only with a torch_compile mode that can capture them (full, or auto)."""
    compile_mode = info.data.get("torch_compile")
    if value and compile_mode == "off":
        raise ValueError("CUDA graphs are captured by torch.compile: set torch_compile to auto or full")
    if value and compile_mode == "regional":
        raise ValueError(REGIONAL_CUDA_GRAPHS)
    return value


def refuse_hub_kernels(value: Any) -> Any:
    """``attention_backend``: none of diffusers' ``*_hub`` backends (checked before the choices)."""
    if isinstance(value, str) and value.endswith("_hub"):
        raise ValueError(
            "diffusers' *_hub backends download their kernel from the Hugging Face Hub when the "
            "engine loads, and Plantain fetches no code at run time; install the kernel's package "
            "(flash-attn, flash-attn 3 or sageattention) and use flash, flash3 or sage"
        )
    return value


def check_webhook_secret(value: str | None) -> str | None:
    """``webhook_secret``: a Standard Webhooks secret (a ValueError names what is wrong)."""
    if value is not None:
        check_secret(value)
    return value
