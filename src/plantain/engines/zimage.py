"""Z-Image-Turbo (``ZImagePipeline``): fast text-to-image from Tongyi-MAI.

A 6B single-stream DiT with a Qwen3-4B text encoder and the FLUX.1 VAE, distilled to 8 denoiser
passes at guidance 0 (the pipeline's own default is 50 steps at guidance 5, so the preset matters).
Text-to-image only; strong at Chinese and English text in images. Apache-2.0.

:func:`build_tiny_checkpoint` (the family record's ``build_tiny``) builds the same architecture at
tiny size with random weights, for tests and CPU benchmarks: it makes noise, but every size, seed
and step runs for real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.checkpoints import save_atomically
from plantain.engines.family import Family
from plantain.engines.fastpath import AttentionMasks, Embedding
from plantain.engines.flux1 import tiny_flux1_vae
from plantain.engines.jobs import Capabilities, EngineJob, Preset
from plantain.engines.licences import APACHE_2
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks, encoder_kwargs
from plantain.engines.running import decode_latents
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, tiny_qwen3_config
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

HUB_ID = "Tongyi-MAI/Z-Image-Turbo"

# The model card's "9 steps (= 8 DiT forwards)" predates diffusers PR #13730 (in 0.42), which dropped
# the redundant last timestep: 8 steps now run exactly the 8 distilled forwards.
TURBO_PRESET = Preset(steps=8, guidance=0.0)

# The tiny tokenizer is byte-level: 128 tokens hold the chat template and a short prompt.
TINY_PRESET = Preset(steps=8, guidance=0.0, call_kwargs={"max_sequence_length": 128})

ZIMAGE_CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=False,
    max_input_images=0,
    # Alibaba Cloud Model Studio, Z-Image API reference: total pixels between 512x512 and 2048x2048.
    # Sides are multiples of 16 (8x VAE, 2x2 patches); no evidence of ratios beyond 4:1.
    sizes=SizeLimits(multiple=16, min_side=64, max_pixels=2048 * 2048, max_aspect=4.0),
)

TINY_DIR_NAME = "tiny-z-image"


class ZImageEngine(Engine, TextEmbeddingHooks):
    family = "z-image"
    licence = APACHE_2
    pipeline_class = "ZImagePipeline"

    def _load(self) -> Any:
        from diffusers import ZImagePipeline

        return load_pipeline(ZImagePipeline, self.source, self.settings, default_dtype=self.default_dtype)

    # Each item is one [image, caption] sequence; in a batch the shorter ones are padded at the end.
    attention_masks: AttentionMasks = "trailing"

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        # With CFG the pipeline also encodes a negative prompt: the prompts go to it as text, left
        # uncached (Turbo runs without CFG).
        prompts = [job.prompt for job in jobs for _ in job.seeds]
        as_text = {"prompt": prompts} if jobs[0].guidance > 1 else None
        return self._call_pipeline(pipeline, jobs, callback, prompts=as_text)

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        kwargs = encoder_kwargs(pipeline, self.preset.call_kwargs, "max_sequence_length")
        embeds, _negative = pipeline.encode_prompt(
            prompt=prompts, do_classifier_free_guidance=False, **kwargs
        )
        return [(embed,) for embed in embeds]  # a list of (tokens, width): lengths differ

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        return {"prompt_embeds": [embedding[0] for embedding in embeddings]}

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        # ZImagePipeline keeps latents unpacked; only the VAE's scaling and shift are undone.
        config = pipeline.vae.config
        return decode_latents(pipeline, latents / config.scaling_factor + config.shift_factor)


def create(name: str, settings: Settings) -> ZImageEngine:
    """The Z-Image-Turbo engine, from ``--weights``/settings or the hub cache."""
    source = WeightsSource.hub(
        name,
        settings,
        HUB_ID,
        size_hint="about 33 GB",
    )
    return ZImageEngine(
        name,
        settings,
        description="Z-Image-Turbo 6B: fast text-to-image in 8 steps, good at text in images",
        source=source,
        capabilities=ZIMAGE_CAPABILITIES,
        preset=TURBO_PRESET,
    )


def create_tiny(name: str, settings: Settings) -> ZImageEngine:
    """The tiny random-weight twin, built into the data directory on first use (float32)."""
    source = WeightsSource.built(name, settings, TINY_DIR_NAME, build_tiny_checkpoint)
    return ZImageEngine(
        name,
        settings,
        dtype=torch.float32,
        description="Z-Image architecture at tiny size, random weights: offline demo and tests",
        source=source,
        capabilities=ZIMAGE_CAPABILITIES,
        preset=TINY_PRESET,
        random_weights=True,
    )


# --- the tiny checkpoint -------------------------------------------------------------------


def build_tiny_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``ZImagePipeline`` with random weights and save it to ``directory``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    components = {
        "text_encoder": _tiny_text_encoder(tokenizer),
        "transformer": _tiny_transformer(),
        "vae": tiny_flux1_vae(),
    }
    for module in components.values():
        module.eval()  # fresh modules are in train mode; dropout would make seeds unrepeatable
    pipeline = ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),  # Z-Image-Turbo's scheduler config
        tokenizer=tokenizer,
        **components,
    )
    save_atomically(pipeline, directory)


def _tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Any:
    from transformers import Qwen3Model

    # Two layers: the pipeline reads the second-to-last hidden state.
    return Qwen3Model(tiny_qwen3_config(tokenizer, max_position_embeddings=1024))


def _tiny_transformer() -> Any:
    from diffusers import ZImageTransformer2DModel

    # diffusers 0.42 creates x_pad_token/cap_pad_token as zeros (not torch.empty): nothing to fill.
    return ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=16,
        n_layers=1,
        n_refiner_layers=1,
        # One head: at 1K the image has 4096 tokens, and attention over them is most of a step.
        n_heads=1,
        n_kv_heads=1,
        cap_feat_dim=16,  # the text encoder's hidden size
        axes_dims=[8, 4, 4],  # sums to the head size
        # diffusers' default RoPE table (Z-Image-Turbo's config has 1536 on the first axis): room
        # for 512 text tokens and 8K-pixel sides. A longer table changes no rotation in use.
        axes_lens=[1024, 512, 512],
    )


FAMILIES = (Family("z-image-turbo", create, HUB_ID, build_tiny_checkpoint, TINY_PRESET.call_kwargs),)
