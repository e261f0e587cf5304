"""A tiny random-weight image-safety classifier: a ViT with labels ``normal`` and ``nsfw``.

Built with the real transformers classes and saved with ``save_pretrained`` (model and
``ViTImageProcessor`` side by side), it loads through
:class:`plantain.safety.classifier.TransformersImageClassifier`
exactly as a downloaded checkpoint such as ``Falconsai/nsfw_image_detection`` does. Its scores
mean nothing, unless ``nsfw_logit`` pins them: the head then ignores the image and gives every
image the same ``nsfw`` score (``sigmoid(nsfw_logit)``), which is how tests and the offline demo
choose whether outputs are blocked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from plantain.engines.checkpoints import SavedTogether, save_atomically
from plantain.engines.loading import quiet_libraries
from plantain.settings import Settings

LABELS = {0: "normal", 1: "nsfw"}
CHECKPOINT_DIR_NAME = "tiny-safety-vit"


def build_classifier(directory: Path, seed: int = 0, nsfw_logit: float | None = None) -> None:
    """Build the tiny classifier into ``directory`` (32x32 inputs, one layer, random weights)."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    quiet_libraries()
    torch.manual_seed(seed)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=LABELS,
        label2id={label: index for index, label in LABELS.items()},
    )
    model = ViTForImageClassification(config)
    if nsfw_logit is not None:
        head: Any = model.classifier
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(torch.tensor([0.0, nsfw_logit]))
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    save_atomically(SavedTogether(model, processor), directory)


def checkpoint_dir(settings: Settings) -> Path:
    """Where the demo's tiny classifier lives: point ``safety_classifier`` at it."""
    return settings.models_dir / CHECKPOINT_DIR_NAME
