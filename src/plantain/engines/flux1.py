"""FLUX.1 [schnell] (``FluxPipeline``): fast text-to-image from Black Forest Labs.

A 12B rectified-flow transformer with CLIP-L and T5-XXL text encoders, timestep-distilled to 1–4
steps at guidance 0; its T5 prompt is at most 256 tokens (the pipeline's own defaults are 28 steps
and 512 tokens, so the preset matters). Text-to-image only. Apache-2.0.

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
from plantain.engines.fastpath import Embedding, rows
from plantain.engines.jobs import Capabilities, EngineJob, Preset
from plantain.engines.licences import APACHE_2
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks, encoder_kwargs
from plantain.engines.running import decode_latents
from plantain.engines.tiny_tokenizers import tiny_clip_tokenizer, tiny_t5_tokenizer
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

if TYPE_CHECKING:
    from transformers import CLIPTokenizer, T5Tokenizer

HUB_ID = "black-forest-labs/FLUX.1-schnell"

# Model card and diffusers' Flux docs: 4 steps, guidance 0, max_sequence_length at most 256.
SCHNELL_PRESET = Preset(steps=4, guidance=0.0, call_kwargs={"max_sequence_length": 256})

# The tiny T5 tokenizer spells prompts character by character; 64 tokens is plenty and cheap.
TINY_PRESET = Preset(steps=4, guidance=0.0, call_kwargs={"max_sequence_length": 64})

SCHNELL_CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=False,
    max_input_images=0,
    # BFL's FLUX.1 launch post: any aspect ratio from 0.1 to 2.0 megapixels. Sides are multiples of
    # 16 (8x VAE, 2x2 packing); the 4:1 cap is ours, for lack of evidence beyond it.
    sizes=SizeLimits(multiple=16, min_side=64, max_pixels=2_000_000, max_aspect=4.0),
)

TINY_DIR_NAME = "tiny-flux1"


class Flux1Engine(Engine, TextEmbeddingHooks):
    family = "flux1"
    licence = APACHE_2
    pipeline_class = "FluxPipeline"

    def _load(self) -> Any:
        from diffusers import FluxPipeline

        return load_pipeline(FluxPipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        return self._call_pipeline(pipeline, jobs, callback)

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        kwargs = encoder_kwargs(pipeline, self.preset.call_kwargs, "max_sequence_length")
        embeds, pooled, _text_ids = pipeline.encode_prompt(prompt=prompts, prompt_2=None, **kwargs)
        return rows(embeds, pooled)  # T5 sequence and CLIP pooled vector

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        embeds, pooled = (torch.cat(parts) for parts in zip(*embeddings, strict=True))
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        # FluxPipeline.__call__ after its loop: unpack the 2x2 patches, undo scaling and shift.
        unpacked = pipeline._unpack_latents(latents, job.height, job.width, pipeline.vae_scale_factor)
        config = pipeline.vae.config
        return decode_latents(pipeline, unpacked / config.scaling_factor + config.shift_factor)


def create(name: str, settings: Settings) -> Flux1Engine:
    """The FLUX.1-schnell engine, from ``--weights``/settings or the hub cache."""
    source = WeightsSource.hub(
        name,
        settings,
        HUB_ID,
        size_hint="about 34 GB",
        # The repo also holds single-file copies of the weights that the diffusers layout does not use.
        pull_ignore=("flux1-schnell.safetensors", "ae.safetensors"),
    )
    return Flux1Engine(
        name,
        settings,
        description="FLUX.1 [schnell] 12B: fast text-to-image in 4 steps",
        source=source,
        capabilities=SCHNELL_CAPABILITIES,
        preset=SCHNELL_PRESET,
    )


def create_tiny(name: str, settings: Settings) -> Flux1Engine:
    """The tiny random-weight twin, built into the data directory on first use (float32)."""
    source = WeightsSource.built(name, settings, TINY_DIR_NAME, build_tiny_checkpoint)
    return Flux1Engine(
        name,
        settings,
        dtype=torch.float32,
        description="FLUX.1 architecture at tiny size, random weights: offline demo and tests",
        source=source,
        capabilities=SCHNELL_CAPABILITIES,
        preset=TINY_PRESET,
        random_weights=True,
    )


# --- the tiny checkpoint -------------------------------------------------------------------


def build_tiny_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``FluxPipeline`` with random weights and save it to ``directory``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
    components = {
        "text_encoder": _tiny_clip(tokenizer),
        "text_encoder_2": _tiny_t5(tokenizer_2),
        "transformer": _tiny_transformer(),
        "vae": tiny_flux1_vae(),
    }
    for module in components.values():
        module.eval()  # fresh modules are in train mode; T5/CLIP dropout would make seeds unrepeatable
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),  # schnell's config: shift 1, no dynamic shifting
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        **components,
    )
    save_atomically(pipeline, directory)


def _tiny_clip(tokenizer: CLIPTokenizer) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,  # also the pooled prompt embedding the transformer takes
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            bos_token_id=0,  # the tiny vocabulary's <|startoftext|> and <|endoftext|>
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def _tiny_t5(tokenizer: T5Tokenizer) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,  # the transformer's joint attention width
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    )


def _tiny_transformer() -> Any:
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,  # 16 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=False,  # schnell is timestep-distilled, not guidance-distilled
        axes_dims_rope=(4, 4, 8),  # sums to the head size
    )


def tiny_flux1_vae() -> Any:
    """FLUX.1's VAE layout at a few channels wide; Z-Image and LongCat use the same VAE."""
    from diffusers import AutoencoderKL

    # Four blocks give the real 8x VAE; no mid-block attention keeps the 1K decode cheap.
    vae: Any = AutoencoderKL(
        latent_channels=16,
        block_out_channels=(4, 4, 4, 4),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
        shift_factor=0.1159,  # the FLUX.1 VAE's latent statistics
        scaling_factor=0.3611,
    )
    return vae.eval()  # fresh modules are in training mode


FAMILIES = (Family("flux1-schnell", create, HUB_ID, build_tiny_checkpoint, TINY_PRESET.call_kwargs),)
