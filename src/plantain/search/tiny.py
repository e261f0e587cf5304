"""``grounding_reranker=tiny``: a CLIP model at tiny size with random weights.

Built offline with the real transformers classes (``CLIPModel``, the byte-level CLIP tokenizer the
tiny engines use, a CLIP image processor sized to match) and saved with ``save_pretrained``, it
loads through :class:`~plantain.search.rerank.Reranker` exactly as a downloaded CLIP checkpoint
does. Its scores mean nothing, but they are deterministic and differ between images, which is all
the grounder's tests need, and it builds and runs in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plantain.engines.checkpoints import SavedTogether, save_atomically
from plantain.engines.loading import quiet_libraries
from plantain.engines.tiny_tokenizers import tiny_clip_tokenizer

CHECKPOINT_DIR_NAME = "tiny-reranker-clip"
IMAGE_SIZE = 32


def build_checkpoint(directory: Path, seed: int = 0) -> None:
    """Build the tiny reranker into ``directory`` (hidden size 32, two layers per tower)."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    quiet_libraries()
    torch.manual_seed(seed)
    tokenizer = tiny_clip_tokenizer()
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {
        **tower,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {**tower, "image_size": IMAGE_SIZE, "patch_size": 8}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    model = CLIPModel(config)
    # The PIL image processor: the default one wants torchvision, and says so when it is missing.
    images = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    processor: Any = CLIPProcessor  # untyped in transformers
    checkpoint = SavedTogether(model, processor(image_processor=images, tokenizer=tokenizer))
    save_atomically(checkpoint, directory)
