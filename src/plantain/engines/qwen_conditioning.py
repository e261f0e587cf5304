"""What ``QwenImageEditPlusPipeline`` does to its input images, and how Plantain adjusts it.

The edit pipeline (diffusers 0.42.1) resizes every input to fixed areas (1024² for the VAE, 384²
for the vision encoder) held in module constants; an engine may set its own
(:class:`ConditioningAreas`, declared by a checkpoint in ``plantain_conditioning.json``), applied
for one call at a time. Its processor carries a video processor, which transformers can only build
with torchvision; without torchvision it is loaded without it (:func:`no_video_processor_class`).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from plantain.errors import EngineLoadError

CONDITIONING_FILE = "plantain_conditioning.json"


@dataclass(frozen=True)
class ConditioningAreas:
    """Pixel areas ``QwenImageEditPlusPipeline`` resizes each input image to."""

    vae_image_area: int  # VAE latents the transformer attends to (diffusers: 1024²)
    condition_image_area: int  # what the vision encoder sees (diffusers: 384²)


# The areas are globals of one diffusers module, shared by every edit engine in the process.
_CONDITIONING_LOCK = threading.Lock()


@contextmanager
def conditioning_areas(areas: ConditioningAreas | None) -> Iterator[None]:
    """Set the edit pipeline's conditioning areas for one call, then restore diffusers' values."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    with _CONDITIONING_LOCK:  # held even when not patching, so no call sees another's areas
        saved = (edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE)
        if areas is not None:
            edit_plus.VAE_IMAGE_SIZE = areas.vae_image_area
            edit_plus.CONDITION_IMAGE_SIZE = areas.condition_image_area
        try:
            yield
        finally:
            edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = saved


def read_conditioning(directory: Path) -> ConditioningAreas | None:
    """The areas a checkpoint declares in ``plantain_conditioning.json``; None when it declares none."""
    path = directory / CONDITIONING_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        areas = ConditioningAreas(int(data["vae_image_area"]), int(data["condition_image_area"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineLoadError(
            f"{path} must hold positive integers vae_image_area and condition_image_area: {exc}"
        ) from exc
    if min(areas.vae_image_area, areas.condition_image_area) <= 0:
        raise EngineLoadError(f"{path}: conditioning areas must be positive, got {data}")
    return areas


def write_conditioning(directory: Path, areas: ConditioningAreas) -> None:
    """Declare ``areas`` in a checkpoint directory, as :func:`read_conditioning` reads them."""
    payload = {"vae_image_area": areas.vae_image_area, "condition_image_area": areas.condition_image_area}
    (Path(directory) / CONDITIONING_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def condition_images(pipeline: Any, images: Sequence[Image.Image]) -> list[Image.Image]:
    """The inputs as ``QwenImageEditPlusPipeline.__call__`` hands them to the vision encoder."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    resized = []
    for image in images:
        width, height = edit_plus.calculate_dimensions(
            edit_plus.CONDITION_IMAGE_SIZE, image.width / image.height
        )
        resized.append(pipeline.image_processor.resize(image, height, width))
    return resized


@functools.cache
def no_video_processor_class() -> Any:
    """``Qwen2VLProcessor`` without its video processor, which needs torchvision to load."""
    from transformers import Qwen2VLProcessor

    class Qwen2VLProcessorNoVideo(Qwen2VLProcessor):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return ["image_processor", "tokenizer"]

    # Saved checkpoints must name the stock class in model_index.json, for loaders with torchvision.
    Qwen2VLProcessorNoVideo.__name__ = Qwen2VLProcessorNoVideo.__qualname__ = "Qwen2VLProcessor"
    Qwen2VLProcessorNoVideo.__module__ = Qwen2VLProcessor.__module__
    return Qwen2VLProcessorNoVideo


def processor_override(engine: str, directory: Path, processor_class: Any) -> dict[str, Any]:
    """``from_pretrained``'s ``processor=`` for a Qwen-VL pipeline on a machine without
    torchvision: ``processor_class`` (the processor without its video half, which transformers
    can only build with torchvision) loaded from ``directory/processor``; nothing with torchvision."""
    from transformers import is_torchvision_available

    if is_torchvision_available():
        return {}
    try:
        return {"processor": processor_class.from_pretrained(directory / "processor")}
    except Exception as exc:  # a broken or missing subfolder: one sentence, like load_pipeline
        raise EngineLoadError(
            f"engine {engine} could not load the processor in {directory / 'processor'}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
