"""What an engine declares and what it runs: capabilities, presets, jobs, callbacks and previews.

Plain values with no torch in them, shared by the engine contract (``engines/base.py``), the
scheduler that batches jobs and the family modules that declare their limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from plantain.imaging.sizes import SizeLimits
from plantain.types import ImageRequest

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, total steps)."""

StopFlag = Callable[[], bool]
"""Polled between steps; returning True stops the run with TaskCancelledError."""

PreviewCallback = Callable[[int, Image.Image], None]
"""Called with (preview index from 0, image) when a preview of the run's first image is decoded."""


@dataclass(frozen=True)
class Previews:
    """Intermediate images of a run (OpenAI's ``partial_images``): after which steps to decode the
    first image's latents, and where to send each preview. Each costs one VAE decode."""

    at_steps: frozenset[int]
    on_preview: PreviewCallback

    @classmethod
    def spread(cls, count: int, total_steps: int, on_preview: PreviewCallback) -> Previews:
        """Up to ``count`` previews spread evenly over the run, never after the last step (that
        one is the image itself), so short runs give fewer previews than asked for."""
        steps = {max(1, round(total_steps * (i + 1) / (count + 1))) for i in range(count)}
        return cls(frozenset(step for step in steps if step < total_steps), on_preview)


@dataclass(frozen=True)
class Preset:
    """Sampler settings a checkpoint is meant to run with (pipeline defaults are not model defaults)."""

    steps: int
    guidance: float
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)  # extra pipeline arguments


@dataclass(frozen=True)
class NamedPreset:
    """A preset a request picks by name (``options.preset``), beside the engine's default one: its
    steps and guidance (a request's own still win) and the LoRAs it turns on (names the engine
    allows: e.g. qwen-image-edit's ``lightning``, 4 steps with the Lightning LoRA)."""

    steps: int
    guidance: float
    loras: tuple[tuple[str, float], ...] = ()
    description: str = ""


@dataclass(frozen=True)
class InputLimits:
    """The shapes a pipeline takes as input images (FLUX.2's processor: sides >= 64, up to 8:1)."""

    min_side: int = 1  # smaller inputs are enlarged to it, aspect kept
    max_aspect: float = float("inf")  # longer inputs are refused, naming the input


@dataclass(frozen=True)
class Capabilities:
    text_to_image: bool
    edit: bool
    max_input_images: int  # 0 for text-to-image-only engines
    sizes: SizeLimits
    batchable: bool = True  # several compatible jobs can share one pipeline call
    inputs: InputLimits = InputLimits()
    # Inpainting (a request's ``mask``): how many input images a masked edit takes, the masked one
    # first and then its references; 0: the engine has no inpainting pipeline.
    inpaint_max_images: int = 0

    @property
    def inpaint(self) -> bool:
        return self.inpaint_max_images > 0

    def tasks(self) -> list[str]:
        named = (("text-to-image", self.text_to_image), ("edit", self.edit), ("inpaint", self.inpaint))
        return [name for name, ok in named if ok]


@dataclass(frozen=True)
class UpscalePlan:
    """A size the engine does not make natively: the job runs at its native size (the job's own
    width and height), then the upscaler (``plantain.upscale``) enlarges each image to exactly
    ``width`` x ``height``, and, at ``refine_strength`` > 0, the engine repaints it tile by tile."""

    width: int
    height: int
    upscaler: str  # what enlarges it, as the answer names it ("ESRGAN 4x (RealESRGAN_x4plus.pth)")
    refine_strength: float = 0.0  # 0: not refined


LoraSet = tuple[tuple[str, float], ...]
"""The LoRAs a job runs with: (allow-listed name, scale) pairs, sorted by name; () for none."""


@dataclass(frozen=True)
class EngineJob:
    """One request resolved for one engine: everything the pipeline call needs."""

    prompt: str
    images: tuple[Image.Image, ...]
    width: int
    height: int
    steps: int
    guidance: float
    seeds: tuple[int, ...]
    inputs_digest: str  # identifies the input images and mask, so only jobs with the same ones batch
    # Where to repaint the first image (``L``, its size: white repaints, black keeps); None: no mask.
    mask: Image.Image | None = None
    loras: LoraSet = ()  # adapters active for the run (engines/lora.py); jobs batch only with equal sets
    upscale: UpscalePlan | None = None  # None: the images are made at the asked size

    @property
    def output_size(self) -> tuple[int, int]:
        """The size the caller gets: the upscale target, or the size the engine makes."""
        return (self.upscale.width, self.upscale.height) if self.upscale else (self.width, self.height)

    def fields(self) -> dict[str, Any]:
        """This job's fields by name, to build a subclass's job from it (a provider's, a route's)."""
        return {name: getattr(self, name) for name in EngineJob.__dataclass_fields__}

    def with_prompt(self, prompt: str) -> EngineJob:
        """This job with another prompt (the planner's rewrite); the rest of the plan holds."""
        return replace(self, prompt=prompt)

    def batch_key(self) -> tuple[object, ...]:
        """Jobs with equal keys can run in one pipeline call (prompts and seeds may differ); a
        masked job runs another pipeline, so it never batches with an unmasked one; the adapters of
        a run are the same for all its images, so jobs with different LoRA sets never batch."""
        return (
            self.width,
            self.height,
            self.steps,
            self.guidance,
            self.inputs_digest,
            self.mask is not None,
            self.loras,
            self.upscale,
        )


def inputs_digest(request: ImageRequest) -> str:
    """What identifies ``request``'s input images (their bytes as sent): jobs batch only when
    theirs are equal, and this is known without decoding them."""
    digest = hashlib.sha256()
    for image in request.images:
        digest.update(hashlib.sha256(image.data).digest())
    if request.mask is not None:
        digest.update(b"mask" + hashlib.sha256(request.mask.data).digest())
    return digest.hexdigest()
