"""``tiny``: the FLUX.2-klein architecture at tiny size with random weights.

It is built offline with the real diffusers/transformers classes (tokenizer made in code), saved
once with ``save_pretrained`` into the data directory and from then on loaded by the same
:class:`~plantain.engines.flux2.Flux2KleinEngine` loader a downloaded checkpoint uses. It makes
noise, not pictures — but every code path (sizes, seeds, edits, progress, cancel) runs for real,
a 1K image takes about a second on two CPU cores, and a seed always gives the same pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch

from plantain.engines.checkpoints import save_atomically
from plantain.engines.family import Family
from plantain.engines.flux2 import FLUX2_INPAINT_MAX_IMAGES, FLUX2_INPUTS, TINY_CALL_KWARGS, Flux2KleinEngine
from plantain.engines.jobs import Capabilities, Preset
from plantain.engines.loading import WeightsSource
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, tiny_qwen3_config
from plantain.imaging.sizes import TABLE_1K, TIER_SCALE, SizeLimits
from plantain.settings import Settings

TINY_PRESET = Preset(steps=4, guidance=1.0, call_kwargs=TINY_CALL_KWARGS)

_LARGEST_TABLE_PIXELS = max(width * height for width, height in TABLE_1K.values())

TINY_CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=True,
    max_input_images=14,  # the most any dialect sends (Gemini 3 Pro Image)
    sizes=SizeLimits(
        multiple=16,  # the real klein arithmetic: 8x VAE, 2x2 packing
        min_side=64,
        max_pixels=int(_LARGEST_TABLE_PIXELS * max(TIER_SCALE.values()) ** 2),  # every tier
        max_aspect=8.0,
    ),
    inputs=FLUX2_INPUTS,  # the same pipeline as klein
    inpaint_max_images=FLUX2_INPAINT_MAX_IMAGES,
)


def build_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build the tiny FLUX.2-klein pipeline with random weights and save it to ``directory``."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    text_encoder = Qwen3ForCausalLM(tiny_qwen3_config(tokenizer))
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=32,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # 2 text-encoder layers x hidden size 16
        timestep_guidance_channels=256,
        axes_dims_rope=[4, 4, 4, 4],
        guidance_embeds=False,
    )
    # Four blocks give the real 8x VAE; no mid-block attention keeps the 1K decode well under a second.
    vae = AutoencoderKLFlux2(
        latent_channels=8,
        block_out_channels=(4, 4, 4, 4),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
    )
    pipeline = Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    )
    save_atomically(pipeline, directory)


CHECKPOINT_DIR_NAME = "tiny-flux2-klein"


def checkpoint_dir(settings: Settings) -> Path:
    return settings.models_dir / CHECKPOINT_DIR_NAME


def create(name: str, settings: Settings) -> Flux2KleinEngine:
    source = WeightsSource.built(name, settings, CHECKPOINT_DIR_NAME, build_checkpoint)
    return Flux2KleinEngine(
        name,
        settings,
        dtype=torch.float32,
        description="FLUX.2-klein architecture at tiny size, random weights: offline demo and tests",
        source=source,
        capabilities=TINY_CAPABILITIES,
        preset=TINY_PRESET,
        random_weights=True,
    )


FAMILIES = (Family("tiny", create, None, build_checkpoint),)
