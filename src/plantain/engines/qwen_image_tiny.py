"""Qwen-Image and Qwen-Image-Edit at tiny size with random weights: the family records' ``build_tiny``.

They stay in the package, not in the tests: ``bench/engine_latency.py`` builds every family's tiny
checkpoint through the records in ``engines/registry.py``, and ``bench/fullsize_models.py`` builds
its dry-run Qwen text encoder with the same special tokens (:data:`QWEN_TOKENS`). Built with the
real diffusers and transformers classes, so the real loader and pipelines run on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from plantain.engines.checkpoints import save_atomically
from plantain.engines.qwen_conditioning import ConditioningAreas, no_video_processor_class, write_conditioning
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

# At diffusers' areas, three tiny inputs cost ~12k tokens and a minute per call on a CPU.
TINY_CONDITIONING = ConditioningAreas(vae_image_area=64 * 64, condition_image_area=56 * 56)

QWEN_TOKENS = ("endoftext", "im_end", "image_pad", "video_pad", "vision_start", "vision_end")
"""Special tokens whose ids the Qwen2.5-VL config names: the tiny tokenizer's, not the real ones."""

# Two channels at full resolution: the VAE's causal 3D convolutions take PyTorch's slow CPU conv3d
# path, and at 8 channels a 512² decode alone takes several seconds on two cores (0.6 s at 2).
_TINY_VAE_BASE_DIM = 2
_TINY_LATENT_CHANNELS = 4


def build_tiny_qwen_image(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``QwenImagePipeline`` with random weights and save it to ``directory``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImagePipeline

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    pipeline = QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(),
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        transformer=_tiny_transformer(),
    )
    save_atomically(pipeline, directory)


def build_tiny_qwen_image_edit(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``QwenImageEditPlusPipeline`` with random weights and save it to ``directory``.

    The checkpoint declares :data:`TINY_CONDITIONING`, so its inputs are resized to tiny areas.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImageEditPlusPipeline
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    processor = no_video_processor_class()(image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer)
    pipeline = QwenImageEditPlusPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(),
        text_encoder=tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        processor=processor,
        transformer=_tiny_transformer(),
    )
    save_atomically(_WithConditioning(pipeline, TINY_CONDITIONING), directory)


class _WithConditioning:
    """Saves a pipeline and its conditioning sidecar together, so ``save_atomically`` covers both."""

    def __init__(self, pipeline: Any, areas: ConditioningAreas) -> None:
        self.pipeline = pipeline
        self.areas = areas

    def save_pretrained(self, directory: Path) -> None:
        self.pipeline.save_pretrained(directory)
        write_conditioning(Path(directory), self.areas)


def tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Any:
    """Qwen2.5-VL at hidden size 16; its token ids must be the tiny tokenizer's."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: token_id(tokenizer, f"<|{name}|>") for name in QWEN_TOKENS}
    text_config = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": len(tokenizer),
        "rope_parameters": {"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1e6},
        "bos_token_id": ids["endoftext"],  # the real ids (151643/151645) are outside this vocabulary
        "eos_token_id": ids["im_end"],
    }
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        image_token_id=ids["image_pad"],
        video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _tiny_transformer() -> Any:
    from diffusers import QwenImageTransformer2DModel

    transformer: Any = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=_TINY_LATENT_CHANNELS * 4,  # 2x2 packed latents
        out_channels=_TINY_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,  # the text encoder's hidden size
        axes_dims_rope=(8, 4, 4),  # sums to attention_head_dim
    )
    return transformer.eval()  # fresh modules are in training mode


def _tiny_vae() -> Any:
    """The real 8x Qwen VAE layout (four stages, three downsamples) at a width of a few channels."""
    from diffusers import AutoencoderKLQwenImage

    vae: Any = AutoencoderKLQwenImage(
        base_dim=_TINY_VAE_BASE_DIM,
        z_dim=_TINY_LATENT_CHANNELS,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * _TINY_LATENT_CHANNELS,
        latents_std=[1.0] * _TINY_LATENT_CHANNELS,
    )
    return vae.eval()
