"""Qwen-Image-2.1 at tiny size with random weights: the family record's ``build_tiny``.

Built with the real classes (``QwenImage21Transformer2DModel``, ``AutoencoderKLQwenImage21``,
``Qwen3VLForConditionalGeneration``, ``Qwen3VLProcessor`` without its video half) and saved with
``save_pretrained``, so the real loader and pipeline run on it. The shapes that must hold at any
size, as diffusers' own tests keep them:

- the VAE compresses 16x (five stages, four downsamples): the pipeline assumes it;
- one merged vision token covers 32 px (patch 16, merge 2), i.e. the 2x2 latents the transformer
  expands each vision slot into; fewer pixels per token would hand it more slots than latents;
- ``z_dim`` is not 4: the pipeline would take an RGBA reference for latents already encoded;
- the processor's chat template renders a system message exactly as the pipeline's hand-written
  template does, because the pipeline counts the system tokens to drop with it.

The checkpoint declares a 64² conditioning area (``plantain_conditioning.json``): ten references
cost a few hundred tokens instead of ten thousand on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from plantain.engines.checkpoints import save_atomically
from plantain.engines.qwen_conditioning import ConditioningAreas, write_conditioning
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

TINY_CONDITION_RESOLUTION = 64  # each reference at 64² pixels of area: 4x4 latents, 2x2 vision tokens

# No call arguments are needed: what the tiny checkpoint needs (its conditioning area) it declares.
TINY_CALL_KWARGS: dict[str, Any] = {}

# Qwen3-VL's template for a message whose content is a list of parts, as the pipeline counts it.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for part in m['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% else %}<|vision_start|><|image_pad|><|vision_end|>{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN3_VL_TOKENS = ("endoftext", "im_end", "image_pad", "video_pad", "vision_start", "vision_end")
"""Special tokens whose ids the Qwen3-VL config names: the tiny tokenizer's, not the real ones."""


_LATENT_CHANNELS = 8  # not 4 (see above)
_TEXT_WIDTH = 16


def build_tiny_qwen_image21(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``QwenImage21Pipeline`` with random weights and save it to ``directory``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImage21Pipeline

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    pipeline = QwenImage21Pipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(),
        text_encoder=_tiny_text_encoder(tokenizer),
        processor=_tiny_processor(tokenizer),
        transformer=_tiny_transformer(),
    )
    area = TINY_CONDITION_RESOLUTION * TINY_CONDITION_RESOLUTION
    save_atomically(_WithConditioning(pipeline, ConditioningAreas(area, area)), directory)


class _WithConditioning:
    """Saves a pipeline and its conditioning sidecar together, so ``save_atomically`` covers both."""

    def __init__(self, pipeline: Any, areas: ConditioningAreas) -> None:
        self.pipeline = pipeline
        self.areas = areas

    def save_pretrained(self, directory: Path) -> None:
        self.pipeline.save_pretrained(directory)
        write_conditioning(Path(directory), self.areas)


def _tiny_processor(tokenizer: Qwen2Tokenizer) -> Any:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from plantain.engines.qwen_image21 import qwen3_vl_processor_class  # it imports this module

    # The pipeline hands the processor references already at their final size (sides multiples of
    # 32): the bounds only have to let every such size through unchanged.
    images = Qwen2VLImageProcessorPil(
        patch_size=16, merge_size=2, temporal_patch_size=2, min_pixels=32 * 32, max_pixels=1024 * 1024
    )
    return qwen3_vl_processor_class()(
        image_processor=images, tokenizer=tokenizer, chat_template=TINY_CHAT_TEMPLATE
    )


def _tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Any:
    """Qwen3-VL at hidden size 16; its special token ids must be the tiny tokenizer's."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {name: token_id(tokenizer, f"<|{name}|>") for name in QWEN3_VL_TOKENS}
    text_config = {
        "hidden_size": _TEXT_WIDTH,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "vocab_size": len(tokenizer),
        "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [1, 1, 2]},
        "bos_token_id": ids["endoftext"],  # the real ids are outside this vocabulary
        "eos_token_id": ids["im_end"],
        "pad_token_id": ids["endoftext"],
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_heads": 2,
        "out_hidden_size": _TEXT_WIDTH,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [0],  # the default (8, 16, 24) is beyond a 2-layer tower
    }
    config = Qwen3VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["image_pad"],
        video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )
    return Qwen3VLForConditionalGeneration(config).eval()


def _tiny_transformer() -> Any:
    from diffusers import QwenImage21Transformer2DModel

    transformer: Any = QwenImage21Transformer2DModel(
        patch_size=1,  # 2.1 reads latents unpatched
        in_channels=_LATENT_CHANNELS,
        out_channels=_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,  # flex attention needs 16 or more
        num_attention_heads=2,
        context_in_dim=_TEXT_WIDTH,
        mlp_ratio=2,
        axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )
    return transformer.eval()  # fresh modules are in training mode


def _tiny_vae() -> Any:
    """The real 16x RGBA layout (five stages, four downsamples) at a width of one channel: its
    causal 3D convolutions take PyTorch's slow CPU path, and at four channels a 512² decode alone
    takes about a second on two cores (0.15 s at one)."""
    from diffusers import AutoencoderKLQwenImage21

    vae: Any = AutoencoderKLQwenImage21(
        base_dim=1,
        decoder_base_dim=1,
        z_dim=_LATENT_CHANNELS,
        dim_mult=[1, 1, 1, 1, 1],
        num_res_blocks=1,
        attn_scales=[],
        temperal_downsample=[False, True, True, True],
        latents_mean=[0.0] * _LATENT_CHANNELS,
        latents_std=[1.0] * _LATENT_CHANNELS,
    )
    return vae.eval()
