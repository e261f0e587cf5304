"""The settings of what an operator adds to the engines (issue 22): the upscaler behind sizes an
engine cannot make natively (docs/upscaling.md), the LoRA allow-list (docs/loras.md), the step
cache, and the licences acknowledged for engines that need it (docs/engines.md). A base of
:class:`~plantain.settings.model.Settings`, so they are ordinary ``PLANTAIN_*`` settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings

LICENCE_IDS = ("qwen-research",)  # licences an engine may be gated behind (engines/licences.py)


class LoraSource(BaseModel):
    """One allow-listed LoRA: where its weights are, and the scale a request gets by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        min_length=1,
        description="A local file or directory, or a hub repository id found in the hub cache "
        "(never downloaded by the server).",
    )
    weight_name: str | None = Field(
        default=None, description="The file inside a directory or repository holding several."
    )
    scale: float = Field(default=1.0, ge=-4.0, le=4.0, description="The scale when a request names none.")


class ExtrasSettings(BaseSettings):
    upscaler: Path | None = Field(
        default=None,
        description="A super-resolution checkpoint file (Real-ESRGAN, SwinIR, HAT and others that "
        "spandrel reads; .pth or .safetensors) that makes the sizes an engine cannot make natively "
        "(4K on every engine, 2K on Qwen-Image): the engine makes its largest native size of the "
        "ratio, the upscaler enlarges it to the tier's exact size (docs/upscaling.md). Unset: such "
        "sizes are refused.",
    )
    upscale_tile: int = Field(
        default=512,
        ge=64,
        le=4096,
        description="The upscaler works on tiles of at most this many pixels a side (overlapping, "
        "blended), so its memory does not grow with the image.",
    )
    upscale_refine_strength: float = Field(
        default=0.0,
        ge=0.0,
        le=0.6,
        description="After the upscaler, the engine repaints the enlarged image tile by tile at this "
        "strength (img2img with VAE tiling) to add detail; 0 turns refining off. Engines without an "
        "img2img pipeline are upscaled without it (each answer says which).",
    )
    loras: dict[str, dict[str, LoraSource]] = Field(
        default_factory=dict,
        description='LoRAs a request may ask for, per engine: {"ENGINE": {"NAME": {"source": '
        'PATH_OR_HUB_ID, "weight_name": FILE, "scale": 1.0}}}. Requests name a LoRA, never a path '
        "(docs/loras.md).",
    )
    lora_hotswap_rank: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Hot-swap LoRAs into one adapter slot of this rank (the largest rank of the "
        "allow-listed LoRAs) instead of loading each beside the others: a compiled transformer is "
        "not compiled again when the LoRA changes. Unset: each LoRA is its own adapter.",
    )
    step_cache: dict[str, float] = Field(
        default_factory=dict,
        description='First-block cache per engine, {"ENGINE": THRESHOLD} (e.g. {"qwen-image-edit": '
        "0.08}): a step whose first transformer block changes its output by less than THRESHOLD "
        "(relative) reuses the previous step's other blocks. Faster on the 40–50-step engines, "
        'slightly different images (docs/performance.md, "Step cache"). Off for every engine unless named.',
    )
    accept_licences: list[str] = Field(
        default_factory=list,
        description="Licences the operator has read and accepts for the engines under them: "
        '"qwen-research" (the Qwen Research License, non-commercial) serves qwen-image-2.1. An '
        "engine whose licence is not listed refuses every request, naming the licence and this setting.",
    )
