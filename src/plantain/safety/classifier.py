"""The output image classifier: what the safety policy asks of one (:class:`ImageClassifier`), and
the one it builds from the ``safety_classifier`` setting, any transformers image-classification
checkpoint (:class:`TransformersImageClassifier`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from plantain.errors import MissingWeightsError

logger = logging.getLogger(__name__)


class ImageClassifier(Protocol):
    """What screens output images: a score in [0, 1] per label for each image."""

    def load(self) -> None:
        """Get ready (load weights); called at server start, so a bad checkpoint shows at once."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def scores(self, images: Sequence[Image.Image]) -> list[dict[str, float]]: ...


class TransformersImageClassifier:
    """Any transformers image-classification checkpoint (``AutoModelForImageClassification`` and
    its ``AutoImageProcessor``), from a directory or a hub id in the hub cache; it never downloads.
    Loaded once, on first use or :meth:`load`, whichever thread comes first."""

    def __init__(self, source: str, *, device: str = "cpu", cache_dir: Path | None = None) -> None:
        self.source = source
        self.device = device
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None  # (processor, model)

    def load(self) -> None:
        self._model()

    @property
    def labels(self) -> tuple[str, ...]:
        _, model = self._model()
        id2label = model.config.id2label
        return tuple(str(id2label[index]) for index in sorted(id2label))

    def scores(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        import torch

        processor, model = self._model()
        inputs = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs.to(model.device)).logits.float()
        multi_label = model.config.problem_type == "multi_label_classification"
        probabilities = logits.sigmoid() if multi_label else logits.softmax(dim=-1)
        labels = self.labels
        return [dict(zip(labels, row.tolist(), strict=True)) for row in probabilities.cpu()]

    def _model(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        from plantain.engines.loading import pick_device, quiet_libraries

        quiet_libraries()
        where: dict[str, Any] = {"local_files_only": True, "cache_dir": self.cache_dir}
        try:
            processor = AutoImageProcessor.from_pretrained(self.source, **where)
            model = AutoModelForImageClassification.from_pretrained(self.source, **where)
        except OSError as exc:
            raise MissingWeightsError(
                f"setting safety_classifier: no image-classification checkpoint at {self.source!r} "
                f"({type(exc).__name__}); download it into the hub cache (hf download "
                f"{self.source}) or point the setting at a directory holding config.json, the "
                "weights and preprocessor_config.json"
            ) from exc
        model = model.to(pick_device(self.device)).eval()
        logger.info("safety classifier %s loaded (labels: %s)", self.source, model.config.id2label)
        return processor, model


__all__ = ["ImageClassifier", "TransformersImageClassifier"]
