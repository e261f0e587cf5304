"""``planner_model=tiny-vl``: a Qwen3-VL vision-language model at tiny size with random weights.

The vision twin of :mod:`plantain.planner.tiny`, built offline with the real transformers classes
(``Qwen3VLForConditionalGeneration``, a ``Qwen3VLProcessor`` around the byte-level Qwen2 tokenizer
the tiny engines use and a Qwen2-VL image processor) and saved with ``save_pretrained``, so it
loads through :class:`~plantain.planner.model.PlannerModel` as a downloaded Qwen3-VL does:
``AutoProcessor``-style processor, ``AutoModelForImageTextToText`` and the processor's
``apply_chat_template`` with image entries. Its words are random bytes, but image preprocessing,
the vision tower, image-token expansion, greedy decoding and token counting all run for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plantain.engines.checkpoints import SavedTogether, save_atomically
from plantain.engines.loading import quiet_libraries
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id
from plantain.planner.tiny import silence_blank_tokens

CHECKPOINT_DIR_NAME = "tiny-planner-qwen3-vl"

# Qwen3-VL's own geometry: 16 px patches, 2x2 of them merged into one language token, so one token
# covers 32x32 px and the planner's 768 px bound gives real-model token counts (576 for a square).
PATCH_SIZE = 16
MERGE_SIZE = 2

# ChatML like ``QWEN_CHAT_TEMPLATE``, but a message's content may also be a list of entries, as
# processors pass it: an image entry becomes the vision placeholder the processor expands into one
# ``<|image_pad|>`` per image token (Qwen3-VL's template does the same), a text entry its text.
VL_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build the tiny vision planner into ``directory`` (text hidden size 32 with two layers, a
    two-block vision tower)."""
    from transformers import Qwen3VLForConditionalGeneration

    from plantain.planner.model import images_only_processor_class  # model imports this module

    quiet_libraries()
    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    tokenizer.chat_template = VL_CHAT_TEMPLATE
    model = Qwen3VLForConditionalGeneration(_config(tokenizer))
    silence_blank_tokens(model, tokenizer)
    processor = images_only_processor_class(type(model.config))(
        image_processor=_image_processor(), tokenizer=tokenizer, chat_template=VL_CHAT_TEMPLATE
    )
    save_atomically(SavedTogether(model, processor), directory)


def _image_processor() -> Any:
    """Qwen2-VL's resizing (what Qwen3-VL ships) at Qwen3-VL's patch geometry. Like the real
    checkpoint, it does not shrink large images itself (the pixel ceiling is 4096 squared): the
    planner bounds them first. The floor lets a tiny test image through as one token."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    factor = PATCH_SIZE * MERGE_SIZE
    return Qwen2VLImageProcessorPil(
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=2,
        size={"shortest_edge": factor * factor, "longest_edge": 4096 * 4096},
    )


def _config(tokenizer: Any) -> Any:
    """A tiny ``Qwen3VLConfig`` on the tokenizer's vocabulary and its vision token ids (Qwen's
    default ids lie outside a tiny vocabulary)."""
    from transformers import Qwen3VLConfig

    pad_id = token_id(tokenizer, "<|endoftext|>")
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "max_position_embeddings": 4096,
        # Multimodal RoPE splits head_dim / 2 = 8 frequencies into time, height and width sections
        # (Qwen3-VL-4B: 24, 20, 20 of 64); the default sections would overrun a tiny head.
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": [4, 2, 2],
            "mrope_interleaved": True,
        },
        "bos_token_id": pad_id,
        "eos_token_id": token_id(tokenizer, "<|im_end|>"),
        "pad_token_id": pad_id,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
        "out_hidden_size": 32,  # the language model's hidden size
        "num_position_embeddings": 256,  # a 16x16 learned grid, interpolated to each image
        # Deepstack feeds these blocks' features into the first language layers; the real model
        # taps blocks 8, 16 and 24 of 27, and block 0 is the one intermediate block here.
        "deepstack_visual_indexes": [0],
    }
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_id(tokenizer, "<|image_pad|>"),
        video_token_id=token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=token_id(tokenizer, "<|vision_end|>"),
        tie_word_embeddings=True,  # as Qwen3-VL-4B does; the blank rows then stay silent in the head
    )
