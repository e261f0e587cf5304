"""FLUX.2 [klein] (``Flux2KleinPipeline``): text-to-image, editing and multi-reference fusion.

One pipeline covers the whole Nano Banana feature set: with no ``image`` it generates, with 1–4
reference images it edits or fuses them. The distilled 4B checkpoint runs 4 steps at guidance 1
(the pipeline's own default is 50 steps, so the preset matters). Apache-2.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageFilter

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.fastpath import Embedding, rows
from plantain.engines.jobs import Capabilities, EngineJob, InputLimits, Preset
from plantain.engines.licences import APACHE_2
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks, encoder_kwargs
from plantain.engines.running import decode_latents, vae_tiling
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

HUB_ID = "black-forest-labs/FLUX.2-klein-4B"

KLEIN_4B_PRESET = Preset(steps=4, guidance=1.0)

# The tiny checkpoint's text encoder has 2 layers, so the pipeline's default hidden layers
# (9, 18, 27) do not exist there.
TINY_CALL_KWARGS = {"max_sequence_length": 64, "text_encoder_out_layers": (1, 2)}

# Flux2ImageProcessor.check_image_input refuses reference images under 64 px a side or beyond 8:1.
FLUX2_INPUTS = InputLimits(min_side=64, max_aspect=8.0)

# Flux2KleinInpaintPipeline repaints one image and takes one reference image (``image_reference``):
# a batch of several references would be read as one per output image.
FLUX2_INPAINT_MAX_IMAGES = 2

# The inpainting pipeline works at the input image's size, scaled down to at most 1 MP
# (Flux2KleinInpaintPipeline.__call__); a larger output is scaled up from it.
INPAINT_MAX_PIXELS = 1024 * 1024

# Pixels over which an inpainted area fades into the input's own kept pixels (a Gaussian radius).
INPAINT_FEATHER = 4

KLEIN_CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=True,
    max_input_images=4,  # BFL: up to 4 reference images for klein
    # Up to 4 MP output; the pipeline's sizes are multiples of 16 (8x VAE, 2x2 packing).
    sizes=SizeLimits(multiple=16, min_side=64, max_pixels=2048 * 2048, max_aspect=8.0),
    inputs=FLUX2_INPUTS,
    inpaint_max_images=FLUX2_INPAINT_MAX_IMAGES,
)


class Flux2KleinEngine(Engine, TextEmbeddingHooks):
    family = "flux2-klein"
    pipeline_class = "Flux2KleinPipeline"
    licence = APACHE_2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inpaint: Any = None  # Flux2KleinInpaintPipeline on the same modules, built on first use

    def _load(self) -> Any:
        from diffusers import Flux2KleinPipeline

        return load_pipeline(Flux2KleinPipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        # Reference images are shared by every job in a batch (same inputs digest), as is a mask.
        first = jobs[0]
        if first.mask is not None:
            return self._inpaint_images(pipeline, jobs, first.mask, callback)
        return self._call_pipeline(pipeline, jobs, callback, image=list(first.images) or None)

    def _inpaint_pipeline(self, pipeline: Any) -> Any:
        """The inpainting pipeline, made once with ``from_pipe``: the same modules (weights, fast
        path and all), no second copy. Called under the run lock."""
        if self._inpaint is None or self._inpaint.transformer is not pipeline.transformer:
            from diffusers import Flux2KleinInpaintPipeline

            self._inpaint = Flux2KleinInpaintPipeline.from_pipe(pipeline)
        return self._inpaint

    def _inpaint_images(
        self, pipeline: Any, jobs: Sequence[EngineJob], mask: Image.Image, callback: Callable[..., Any]
    ) -> list[Image.Image]:
        """Repaint the first image where ``mask`` is white, at full strength (every step runs),
        its other image (if any) as reference. The pipeline works at its input's size, so the
        image and mask go in at the planned one (at most 1 MP, scaled back up after). The pipeline
        keeps the rest in latent space, which a VAE round trip blurs; so the kept pixels are the
        input's own, pasted back over the result with an edge feathered by INPAINT_FEATHER."""
        first = jobs[0]
        size = (first.width, first.height)
        original = first.images[0].convert("RGB").resize(size, Image.Resampling.LANCZOS)
        width, height = _inpaint_size(*size)
        small = (
            original
            if (width, height) == size
            else original.resize((width, height), Image.Resampling.LANCZOS)
        )
        reference = first.images[1] if len(first.images) > 1 else None
        images = self._call_pipeline(
            self._inpaint_pipeline(pipeline),
            [replace(job, width=width, height=height) for job in jobs],
            callback,
            image=small,
            mask_image=mask.resize((width, height), Image.Resampling.BILINEAR),
            image_reference=reference,
            strength=1.0,
        )
        blend = mask.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(INPAINT_FEATHER))
        made = [
            image if image.size == size else image.resize(size, Image.Resampling.LANCZOS) for image in images
        ]
        return [Image.composite(image.convert("RGB"), original, blend) for image in made]

    def refine_tile(
        self, pipeline: Any, tile: Image.Image, job: EngineJob, seed: int, strength: float
    ) -> Image.Image:
        """Repaint an upscaled tile at ``strength``: the inpainting pipeline with the whole tile
        masked is img2img (klein has no img2img pipeline of its own), at a size of multiples of 16
        and with the VAE tiled, then back to the tile's size."""
        size = (max(64, tile.width // 16 * 16), max(64, tile.height // 16 * 16))
        image = tile if tile.size == size else tile.resize(size, Image.Resampling.LANCZOS)
        # Enough steps that strength x steps is at least one: img2img runs only that share of them.
        steps = max(job.steps, math.ceil(1 / strength))
        with vae_tiling(pipeline.vae):
            output = self._inpaint_pipeline(pipeline)(
                prompt=job.prompt,
                image=image,
                mask_image=Image.new("L", size, 255),
                strength=strength,
                height=size[1],
                width=size[0],
                num_inference_steps=steps,
                guidance_scale=job.guidance,
                generator=torch.Generator("cpu").manual_seed(seed),
                output_type="pil",
                **self.preset.call_kwargs,
            )
        repainted: Image.Image = output.images[0]
        if repainted.size != tile.size:
            repainted = repainted.resize(tile.size, Image.Resampling.LANCZOS)
        return repainted

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        kwargs = encoder_kwargs(
            pipeline, self.preset.call_kwargs, "max_sequence_length", "text_encoder_out_layers"
        )
        embeds, _text_ids = pipeline.encode_prompt(prompt=prompts, **kwargs)
        return rows(embeds)

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        return {"prompt_embeds": torch.cat([embedding[0] for embedding in embeddings])}

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        # The pipeline's own unpacking: its latent ids are a row-major grid, so a reshape puts each
        # token in place; then the VAE's batch-norm statistics are undone and the 2x2 patches
        # unfolded (Flux2KleinPipeline.__call__ after the loop).
        patch = pipeline.vae_scale_factor * 2
        width, height = (job.width, job.height) if job.mask is None else _inpaint_size(job.width, job.height)
        grid = latents.reshape(latents.shape[0], height // patch, width // patch, -1)
        grid = grid.permute(0, 3, 1, 2)
        bn = pipeline.vae.bn
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipeline.vae.config.batch_norm_eps)
        grid = grid * std.to(grid) + bn.running_mean.view(1, -1, 1, 1).to(grid)
        return decode_latents(pipeline, pipeline._unpatchify_latents(grid))


def _inpaint_size(width: int, height: int) -> tuple[int, int]:
    """The planned size, scaled down to the inpainting pipeline's 1 MP (sides multiples of 16)."""
    if width * height <= INPAINT_MAX_PIXELS:
        return width, height
    scale = math.sqrt(INPAINT_MAX_PIXELS / (width * height))
    return max(64, int(width * scale) // 16 * 16), max(64, int(height * scale) // 16 * 16)


def create(name: str, settings: Settings) -> Flux2KleinEngine:
    """The FLUX.2-klein-4B engine, from ``--weights``/settings or the hub cache."""
    source = WeightsSource.hub(
        name,
        settings,
        HUB_ID,
        size_hint="about 16 GB",
    )
    return Flux2KleinEngine(
        name,
        settings,
        description="FLUX.2 [klein] 4B: fast text-to-image, editing and fusion of up to 4 images",
        source=source,
        capabilities=KLEIN_CAPABILITIES,
        preset=KLEIN_4B_PRESET,
    )


def build_tiny(directory: Path) -> None:
    """The served ``tiny`` engine's checkpoint: klein's architecture at tiny size."""
    from plantain.engines import tiny  # tiny.py builds on this module: imported when called

    tiny.build_checkpoint(directory)


FAMILIES = (Family("flux2-klein-4b", create, HUB_ID, build_tiny, TINY_CALL_KWARGS),)
