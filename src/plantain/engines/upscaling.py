"""Sizes an engine does not make natively, made by an upscaler (docs/upscaling.md).

Planning: a tier whose exact table size is beyond the engine's native pixels (4K everywhere but on
``tiny``, 2K on Qwen-Image) is made at the largest lower tier the engine makes for that aspect
ratio, and the job carries an :class:`~plantain.engines.jobs.UpscalePlan` to the tier's exact
size — only when the operator set an upscaler (setting ``upscaler``); without one the size is
refused as before. The answer says how the image was made (``Upscaled``); nothing is resized
silently.

Running: after the engine's pipeline call, under the engine's run lock (one model on the device
at a time), the upscaler enlarges each image, and an engine that can repaint (an img2img
pipeline: ``Engine.refine_tile``) refines it tile by tile at the setting's strength.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from plantain.engines.jobs import EngineJob, UpscalePlan
from plantain.errors import UnsupportedSizeError
from plantain.imaging.sizes import TIER_SCALE, TIERS, resolve_size

if TYPE_CHECKING:
    from plantain.engines.base import Engine

REFINE_OVERLAP = 64  # pixels two refined tiles share (at most a quarter tile), blended so no seam shows


def plan_tier_size(
    engine: Engine, aspect_ratio: str, tier: str, max_output_pixels: int | None
) -> tuple[int, int, UpscalePlan | None]:
    """The size ``engine`` makes for ``aspect_ratio`` at ``tier``, and the upscale plan when it
    makes a smaller one natively and the server has an upscaler to enlarge it."""
    sizes = engine.capabilities.sizes
    try:
        width, height = resolve_size(aspect_ratio, tier, sizes.capped(max_output_pixels), engine.name)
        return width, height, None
    except UnsupportedSizeError as refused:
        target = _upscale_target(engine, aspect_ratio, tier, max_output_pixels, refused)
        native = _largest_native(engine, aspect_ratio, tier, max_output_pixels, refused)
    upscaler = engine.settings.upscaler
    assert upscaler is not None  # _upscale_target refused without one
    from plantain.upscale.model import inspect_upscaler

    plan = UpscalePlan(
        width=target[0],
        height=target[1],
        upscaler=inspect_upscaler(upscaler).label,
        refine_strength=engine.settings.upscale_refine_strength if engine.can_refine else 0.0,
    )
    return native[0], native[1], plan


def _upscale_target(
    engine: Engine, aspect_ratio: str, tier: str, max_output_pixels: int | None, refused: UnsupportedSizeError
) -> tuple[int, int]:
    """The tier's exact size (the table's, at the engine's multiple) when an upscaler can make it:
    only the engine's own pixel limit stood in the way. Otherwise the refusal that applies: the
    ratio's or the server's cap (no upscaler lifts those), or ``refused`` saying that an upscaler
    would make it and the server has none."""
    if refused.field != "size" or not engine.upscales:
        raise refused  # the aspect ratio, or an engine whose run is not Engine.run's
    sizes = engine.capabilities.sizes
    unlimited = replace(sizes, max_pixels=2**40, capped_by=None)
    width, height = resolve_size(aspect_ratio, tier, unlimited.capped(max_output_pixels), engine.name)
    if width * height <= sizes.max_pixels:
        raise refused  # within the engine's pixels: refused for another reason
    if engine.settings.upscaler is None:
        raise UnsupportedSizeError(
            f"{refused.message} An upscaler would make it from a smaller size, and this server has "
            "none (setting upscaler, docs/upscaling.md).",
            field=refused.field,
        )
    return width, height


def _largest_native(
    engine: Engine, aspect_ratio: str, tier: str, max_output_pixels: int | None, refused: UnsupportedSizeError
) -> tuple[int, int]:
    """The largest lower tier's size the engine makes natively for ``aspect_ratio``."""
    sizes = engine.capabilities.sizes.capped(max_output_pixels)
    lower = [name for name in TIERS if TIER_SCALE[name] < TIER_SCALE[tier]]
    for name in sorted(lower, key=TIER_SCALE.__getitem__, reverse=True):
        try:
            return resolve_size(aspect_ratio, name, sizes, engine.name)
        except UnsupportedSizeError:
            continue
    raise refused


def upscale_images(
    engine: Engine, pipeline: Any, job: EngineJob, images: Sequence[Image.Image]
) -> list[Image.Image]:
    """``job``'s images enlarged to its plan's exact size (and refined); called under the run lock."""
    plan = job.upscale
    if plan is None:
        return list(images)
    from plantain.upscale.model import shared_upscaler

    settings = engine.settings
    assert settings.upscaler is not None  # planned only with one
    upscaler = shared_upscaler(settings, engine.device)
    made = []
    for image, seed in zip(images, job.seeds, strict=True):
        large = upscaler.upscale(image.convert("RGB"), plan.width, plan.height, settings.upscale_tile)
        if plan.refine_strength > 0:
            large = _refine(engine, pipeline, job, large, seed, plan.refine_strength)
        made.append(large)
    return made


def _refine(
    engine: Engine, pipeline: Any, job: EngineJob, image: Image.Image, seed: int, strength: float
) -> Image.Image:
    from plantain.upscale.refine import refine_tiles

    def repaint(tile: Image.Image) -> Image.Image:
        return engine.refine_tile(pipeline, tile, job, seed, strength)

    tile = engine.settings.upscale_tile
    return refine_tiles(image, strength, tile, min(REFINE_OVERLAP, tile // 4), repaint)
