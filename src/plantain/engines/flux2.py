"""FLUX.2 [klein] (``Flux2KleinPipeline``): text-to-image, editing and multi-reference fusion.

One pipeline covers the whole Nano Banana feature set: with no ``image`` it generates, with 1–4
reference images it edits or fuses them. The distilled 4B checkpoint runs 4 steps at guidance 1
(the pipeline's own default is 50 steps, so the preset matters). Apache-2.0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.fastpath import Embedding, rows
from plantain.engines.jobs import Capabilities, EngineJob, InputLimits, Preset
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks, encoder_kwargs
from plantain.engines.running import decode_latents
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

HUB_ID = "black-forest-labs/FLUX.2-klein-4B"

KLEIN_4B_PRESET = Preset(steps=4, guidance=1.0)

# The tiny checkpoint's text encoder has 2 layers, so the pipeline's default hidden layers
# (9, 18, 27) do not exist there.
TINY_CALL_KWARGS = {"max_sequence_length": 64, "text_encoder_out_layers": (1, 2)}

# Flux2ImageProcessor.check_image_input refuses reference images under 64 px a side or beyond 8:1.
FLUX2_INPUTS = InputLimits(min_side=64, max_aspect=8.0)

KLEIN_CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=True,
    max_input_images=4,  # BFL: up to 4 reference images for klein
    # Up to 4 MP output; the pipeline's sizes are multiples of 16 (8x VAE, 2x2 packing).
    sizes=SizeLimits(multiple=16, min_side=64, max_pixels=2048 * 2048, max_aspect=8.0),
    inputs=FLUX2_INPUTS,
)


class Flux2KleinEngine(Engine, TextEmbeddingHooks):
    family = "flux2-klein"
    pipeline_class = "Flux2KleinPipeline"

    def _load(self) -> Any:
        from diffusers import Flux2KleinPipeline

        return load_pipeline(Flux2KleinPipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        # Reference images are shared by every job in a batch (same inputs digest).
        return self._call_pipeline(pipeline, jobs, callback, image=list(jobs[0].images) or None)

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
        grid = latents.reshape(latents.shape[0], job.height // patch, job.width // patch, -1)
        grid = grid.permute(0, 3, 1, 2)
        bn = pipeline.vae.bn
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipeline.vae.config.batch_norm_eps)
        grid = grid * std.to(grid) + bn.running_mean.view(1, -1, 1, 1).to(grid)
        return decode_latents(pipeline, pipeline._unpatchify_latents(grid))


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
