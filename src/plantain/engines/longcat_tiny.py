"""LongCat-Image and LongCat-Image-Edit at tiny size with random weights: the family records' ``build_tiny``.

Built with the real diffusers and transformers classes (``LongCatImageTransformer2DModel``, a
16-channel ``AutoencoderKL``, a Qwen2.5-VL text encoder and its processor), so the real loader and
pipelines run on them; ``bench/engine_latency.py`` builds them through the registry's records too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plantain.engines.checkpoints import save_atomically
from plantain.engines.flux1 import tiny_flux1_vae
from plantain.engines.qwen_conditioning import no_video_processor_class
from plantain.engines.qwen_image_tiny import tiny_text_encoder
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer

# Both pipelines hard-code 16 latent channels (``num_channels_latents = 16``), packed 2x2 into 64.
_LATENT_CHANNELS = 16

# LongCatImagePipeline.rewire_prompt sends the processor a chat turn whose content is a list of
# {"type": "text", "text": ...} parts: the tokenizer's template prints one string per turn.
PROCESSOR_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for part in m['content'] %}{{ part['text'] }}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_longcat_image(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``LongCatImagePipeline`` (text-to-image) with random weights into ``directory``."""
    from diffusers import LongCatImagePipeline

    save_atomically(LongCatImagePipeline(**_components(seed)), directory)


def build_tiny_longcat_image_edit(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``LongCatImageEditPipeline`` with random weights into ``directory``."""
    from diffusers import LongCatImageEditPipeline

    save_atomically(LongCatImageEditPipeline(**_components(seed)), directory)


def _components(seed: int) -> dict[str, Any]:
    """The two pipelines take the same components (the edit checkpoint is the text-to-image one
    trained further): the same builder serves both."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    text_encoder = tiny_text_encoder(tokenizer)  # Qwen2.5-VL at hidden size 16, the tokenizer's ids
    processor = no_video_processor_class()(
        image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer, chat_template=PROCESSOR_CHAT_TEMPLATE
    )
    return {
        # FLUX.1's dynamic shift: the pipelines pass ``mu`` computed from the image's token count.
        "scheduler": FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True),
        "vae": tiny_flux1_vae(),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_processor": processor,
        "transformer": _tiny_transformer(text_encoder.config.text_config.hidden_size),
    }


def _tiny_transformer(text_width: int) -> Any:
    from diffusers import LongCatImageTransformer2DModel

    transformer: Any = LongCatImageTransformer2DModel(
        patch_size=1,
        in_channels=_LATENT_CHANNELS * 4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_width,
        pooled_projection_dim=text_width,
        axes_dims_rope=[4, 6, 6],  # (modality, row, column); sums to attention_head_dim
    )
    return transformer.eval()  # fresh modules are in training mode
