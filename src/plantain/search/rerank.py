"""The grounding reranker: a CLIP image-text similarity model that ranks image search results
against the prompt, found the way the planner finds its checkpoint and never downloaded.

``grounding_reranker`` names it: a hub id read from the hub cache (the ``hub_cache`` setting, or
the hub library's), a local directory, or ``tiny``, a random-weight CLIP built into
``<data_dir>/models/`` on first use (:mod:`plantain.search.tiny`). A score is the cosine
similarity of the prompt's and an image's normalised embeddings, so it is deterministic and lies
in [-1, 1].
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import constants as hub_constants

from plantain.engines.checkpoints import BuiltIn, NamedCheckpoint
from plantain.engines.loading import pick_device, quiet_libraries
from plantain.errors import ConfigurationError
from plantain.search import tiny

if TYPE_CHECKING:
    from PIL import Image

    from plantain.settings import Settings

logger = logging.getLogger(__name__)

TINY = "tiny"
MAX_TEXT_TOKENS = 77  # CLIP's text tower has 77 positions; a longer prompt is cut


@dataclass(frozen=True)
class _Loaded:
    processor: Any
    model: Any


class Reranker:
    """The ``grounding_reranker`` checkpoint, loaded once (on :meth:`load` or the first score)
    and used by one scoring at a time (one lock: the model is small and shared by workers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.grounding_reranker
        self.checkpoint = NamedCheckpoint(
            setting="grounding_reranker",
            name=self.name,
            models_dir=settings.models_dir,
            hub_cache=settings.hub_cache or Path(hub_constants.HF_HUB_CACHE),
            built_in={TINY: BuiltIn(tiny.CHECKPOINT_DIR_NAME, tiny.build_checkpoint)},
            holds="a transformers CLIP model with its processor",
            otherwise="set grounding_references=0 (or search_provider=none)",
        )
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    # --- loading and scoring -----------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load the processor and the model; a second call does nothing."""
        with self._lock:
            self._ensure_loaded()

    def score(self, text: str, images: Sequence[Image.Image]) -> list[float]:
        """The similarity of each image to ``text`` (cut to the model's 77 tokens), in order."""
        if not images:
            return []
        with self._lock:
            loaded = self._ensure_loaded()
            inputs = loaded.processor(
                text=[text],
                images=list(images),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=MAX_TEXT_TOKENS,
            ).to(loaded.model.device)
            with torch.inference_mode():
                output = loaded.model(**inputs)
                # CLIPModel returns the projected embeddings L2-normalised: a dot product is a cosine
                similarity = output.image_embeds.float() @ output.text_embeds.float().T
        return [float(value) for value in similarity[:, 0].cpu()]

    def describe(self) -> dict[str, Any]:
        """What listings show: the checkpoint, where it runs, whether it is here and loaded."""
        return {
            "model": self.name,
            "device": self.settings.grounding_device,
            "present": self.checkpoint.present(),
            "loaded": self.loaded,
        }

    def _ensure_loaded(self) -> _Loaded:
        """The loaded checkpoint; the caller holds the lock."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> _Loaded:
        from transformers import CLIPModel, CLIPProcessor

        quiet_libraries()
        location = self.checkpoint.resolve()
        device = pick_device(self.settings.grounding_device)
        where: dict[str, Any] = {"local_files_only": True, "cache_dir": self.checkpoint.hub_cache}
        try:
            processor = CLIPProcessor.from_pretrained(location, **where)
            model: Any = CLIPModel.from_pretrained(location, **where)
        except OSError as exc:
            raise self.checkpoint.unreadable(exc) from exc
        except (ValueError, TypeError) as exc:  # e.g. a checkpoint that is not a CLIP model
            raise ConfigurationError(
                f"setting grounding_reranker: {self.name} is not a CLIP model transformers can "
                f"load ({exc}); name one such as openai/clip-vit-base-patch32"
            ) from exc
        model = model.to(device).eval()  # float32 everywhere: the model is small, scores stable
        logger.info("grounding reranker %s ready on %s", self.name, device)
        return _Loaded(processor, model)
