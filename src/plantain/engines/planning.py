"""Turning a request into an :class:`~plantain.engines.jobs.EngineJob` for one engine.

Everything here is checked against the engine's declared :class:`~plantain.engines.jobs.Capabilities`
before any weights load: the task (text-to-image or edit, how many inputs), the output size, the
input images' shapes. The numbers the run needs (size, steps, guidance, seeds) are fixed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from plantain.engines.jobs import EngineJob, inputs_digest
from plantain.engines.licences import check_accepted
from plantain.engines.options import run_options
from plantain.engines.upscaling import plan_tier_size
from plantain.errors import (
    ConfigurationError,
    InvalidImageError,
    PlantainError,
    TooManyImagesError,
    UnsupportedTaskError,
)
from plantain.imaging.sizes import exact_size, nearest_aspect_ratio, resolve_size
from plantain.types import ImageRequest

if TYPE_CHECKING:
    from plantain.engines.base import Engine


def plan_job(
    engine: Engine,
    request: ImageRequest,
    images: Sequence[Image.Image],
    seed: int,
    max_output_pixels: int | None,
    mask: Image.Image | None = None,
) -> EngineJob:
    """``request`` checked against ``engine``'s capabilities, with every number the run needs;
    ``mask`` is ``request.mask`` decoded."""
    check_task(engine, request)
    if (mask is None) != (request.mask is None):
        raise ValueError("plan() takes the request's mask decoded, and only with a mask")
    upscale = None
    if request.width is not None and request.height is not None:
        width, height = _exact_output_size(engine, request.width, request.height, max_output_pixels)
    else:
        aspect_ratio = request.aspect_ratio or _default_aspect_ratio(engine, images)
        width, height, upscale = plan_tier_size(engine, aspect_ratio, request.size, max_output_pixels)
    steps, guidance, loras = run_options(engine, request)
    return EngineJob(
        prompt=request.prompt,
        images=_fit_inputs(engine, request, images),
        width=width,
        height=height,
        steps=steps,
        guidance=guidance,
        seeds=tuple(seed + i for i in range(request.num_images)),
        inputs_digest=inputs_digest(request),
        mask=None if mask is None else _fit_mask(request, images[0], mask),
        loras=loras,
        upscale=upscale,
    )


def check_size(engine: Engine, request: ImageRequest, max_output_pixels: int | None) -> None:
    """Refuse an output size ``engine`` cannot make, where it is known without decoding an input:
    an edit that asks for no aspect ratio takes its input's shape, checked by :func:`plan_job`."""
    if request.width is not None and request.height is not None:
        _exact_output_size(engine, request.width, request.height, max_output_pixels)
        return
    if request.aspect_ratio is None and request.images:
        return
    aspect_ratio = request.aspect_ratio or _default_aspect_ratio(engine, ())
    plan_tier_size(engine, aspect_ratio, request.size, max_output_pixels)


def most_inputs(engine: Engine, request: ImageRequest) -> int:
    """The most input images ``engine`` takes for ``request`` (what :func:`check_task` holds it
    to): none unless it edits; for a masked edit, its inpainting pipeline's limit."""
    caps = engine.capabilities
    if not caps.edit:
        return 0
    return caps.inpaint_max_images if request.mask is not None else caps.max_input_images


def check_task(engine: Engine, request: ImageRequest) -> None:
    """Refuse what ``engine`` cannot do, before any input is decoded or weights loaded."""
    check_accepted(engine.name, engine.licence, engine.settings)
    caps = engine.capabilities
    count = len(request.images)
    if count == 0 and not caps.text_to_image:
        raise UnsupportedTaskError(
            f"engine {engine.name} only edits images; send at least one input image "
            f"(up to {caps.max_input_images})",
            field="images",
        )
    if count > 0 and not caps.edit:
        raise UnsupportedTaskError(
            f"engine {engine.name} makes images from text only and takes no input images; got {count}",
            field="images",
        )
    if count > caps.max_input_images:
        raise TooManyImagesError(
            f"engine {engine.name} takes at most {caps.max_input_images} input images; got {count}",
            field="images",
        )
    if request.mask is not None:
        _check_mask(engine, count)
    run_options(engine, request)  # the preset's name and the LoRAs' names, before anything loads


def _check_mask(engine: Engine, count: int) -> None:
    limit = engine.capabilities.inpaint_max_images
    if limit == 0:
        raise UnsupportedTaskError(
            f"mask is not supported by engine {engine.name}: it has no inpainting pipeline; send the "
            "edit without a mask and describe the change in the prompt, or use an engine that inpaints",
            field="mask",
        )
    if count > limit:
        raise TooManyImagesError(
            f"mask: engine {engine.name} inpaints the first image with at most {limit - 1} more as "
            f"reference ({limit} input images in all); got {count}",
            field="mask",
        )


def _fit_mask(request: ImageRequest, first: Image.Image, mask: Image.Image) -> Image.Image:
    """The mask as one channel, refused unless it is the size of the (decoded, upright) first
    image it marks."""
    if mask.size != first.size:
        label = request.images[0].label
        raise InvalidImageError(
            f"mask is {mask.width}x{mask.height} but {label} is {first.width}x{first.height}; the mask "
            "must be the same size as the (first) image it marks",
            field="mask",
        )
    return mask.convert("L")


def output_size(
    engine: Engine, aspect_ratio: str, tier: str, max_output_pixels: int | None
) -> tuple[int, int]:
    sizes = engine.capabilities.sizes.capped(max_output_pixels)
    return resolve_size(aspect_ratio, tier, sizes, engine.name)


def _exact_output_size(
    engine: Engine, width: int, height: int, max_output_pixels: int | None
) -> tuple[int, int]:
    return exact_size(width, height, engine.capabilities.sizes.capped(max_output_pixels), engine.name)


def warmup_job(engine: Engine, entry: str) -> EngineJob:
    """The job that warms up one ``warmup_sizes`` entry (``"TIER:RATIO"``) at two steps."""
    tier, _, ratio = entry.partition(":")
    try:
        width, height = output_size(engine, ratio, tier, engine.settings.max_output_pixels)
    except PlantainError as exc:
        raise ConfigurationError(
            f"setting warmup_sizes (PLANTAIN_WARMUP_SIZES): {entry}: {exc.message}", field="warmup_sizes"
        ) from exc
    # An edit-only engine warms up on one grey input of the output's shape.
    text_only = engine.capabilities.text_to_image
    images = () if text_only else (Image.new("RGB", (width, height), "gray"),)
    return EngineJob(
        prompt="warm-up",
        images=images,
        width=width,
        height=height,
        steps=min(2, engine.preset.steps),  # enough to compile and capture; shapes do not depend on it
        guidance=engine.preset.guidance,
        seeds=(0,),
        inputs_digest="warm-up",
    )


def _fit_inputs(
    engine: Engine, request: ImageRequest, images: Sequence[Image.Image]
) -> tuple[Image.Image, ...]:
    """Inputs the pipeline will take: small ones enlarged, too elongated ones refused (a
    pipeline's own refusal would surface as a 500 after the queue wait)."""
    limits = engine.capabilities.inputs
    fitted = []
    for source, image in zip(request.images, images, strict=True):
        width, height = image.size
        if max(width / height, height / width) > limits.max_aspect:
            raise InvalidImageError(
                f"{source.label} is {width}x{height}, longer than {limits.max_aspect:g}:1; engine "
                f"{engine.name} takes input images up to {limits.max_aspect:g}:1, so crop it first",
                field="images",
            )
        fitted.append(_enlarge_to(image, limits.min_side))
    return tuple(fitted)


def _default_aspect_ratio(engine: Engine, images: Sequence[Image.Image]) -> str:
    """An edit keeps its (first) input's shape; a generation is square."""
    if not images:
        return "1:1"
    width, height = images[0].size
    return nearest_aspect_ratio(width, height, engine.capabilities.sizes)


def _enlarge_to(image: Image.Image, min_side: int) -> Image.Image:
    """``image`` with its shorter side at least ``min_side`` (aspect kept; Nano Banana takes
    small inputs as they are)."""
    short = min(image.size)
    if short >= min_side:
        return image
    scale = min_side / short
    size = (max(min_side, round(image.width * scale)), max(min_side, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)
