"""Output sizes: (aspect ratio, size tier, engine limits) -> exact pixels.

The 1K tier is Gemini 2.5 Flash Image's own table, so a client that asks for ``16:9`` gets the
1344x768 it would get from Google. Other tiers scale that table and round each side to the
engine's multiple. A size the engine cannot make natively is refused, never resized behind the
caller's back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from plantain.errors import InvalidRequestError, UnsupportedSizeError

# Gemini 2.5 Flash Image, 1K tier (width, height).
GEMINI_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}

# Extreme ratios (Gemini 3.1 Flash Image adds them) at about one megapixel, multiples of 32.
EXTENDED_1K: dict[str, tuple[int, int]] = {
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (384, 3072),
    "8:1": (3072, 384),
}

TABLE_1K: dict[str, tuple[int, int]] = {**GEMINI_1K, **EXTENDED_1K}
ASPECT_RATIOS: tuple[str, ...] = tuple(TABLE_1K)

# Scale of each tier relative to the 1K table.
TIER_SCALE: dict[str, float] = {"512": 0.5, "1K": 1.0, "2K": 2.0, "4K": 4.0}
TIERS: tuple[str, ...] = tuple(TIER_SCALE)


@dataclass(frozen=True)
class SizeLimits:
    """What an engine can make natively."""

    multiple: int = 16  # each side must be a multiple of this (VAE factor x patch size)
    min_side: int = 64
    max_pixels: int = 2048 * 2048
    max_aspect: float = 4.0  # longest side / shortest side
    capped_by: str | None = None  # the setting that lowered max_pixels below the engine's own

    def capped(self, max_pixels: int | None) -> SizeLimits:
        """These limits with at most ``max_pixels`` per image (setting ``max_output_pixels``)."""
        if max_pixels is None or max_pixels >= self.max_pixels:
            return self
        return replace(self, max_pixels=max_pixels, capped_by="max_output_pixels")


def ratio_value(aspect_ratio: str) -> float:
    """``"16:9"`` -> 1.777…, the width over the height."""
    width, height = aspect_ratio.split(":")
    return int(width) / int(height)


def nearest_aspect_ratio(width: int, height: int, limits: SizeLimits | None = None) -> str:
    """The table ratio closest to ``width:height`` (in log space) that the limits allow."""
    candidates = [r for r in ASPECT_RATIOS if limits is None or _aspect(r) <= limits.max_aspect]
    target = math.log(width / height)
    return min(candidates, key=lambda r: abs(math.log(ratio_value(r)) - target))


def resolve_size(aspect_ratio: str, tier: str, limits: SizeLimits, engine: str) -> tuple[int, int]:
    """Exact (width, height) for ``aspect_ratio`` at ``tier`` on an engine with ``limits``."""
    if aspect_ratio not in TABLE_1K:
        raise InvalidRequestError(
            f"aspect_ratio {aspect_ratio!r} is not supported; use one of {', '.join(ASPECT_RATIOS)}",
            field="aspect_ratio",
        )
    if tier not in TIER_SCALE:
        raise InvalidRequestError(
            f"size {tier!r} is not supported; use one of {', '.join(TIERS)}", field="size"
        )
    if _aspect(aspect_ratio) > limits.max_aspect:
        raise UnsupportedSizeError(
            f"engine {engine} makes aspect ratios up to {_format_aspect(limits.max_aspect)}; "
            f"aspect_ratio {aspect_ratio} is beyond that",
            field="aspect_ratio",
        )
    base_width, base_height = TABLE_1K[aspect_ratio]
    scale = TIER_SCALE[tier]
    width = _round_to(base_width * scale, limits.multiple)
    height = _round_to(base_height * scale, limits.multiple)
    _check_limits(width, height, limits, engine, f"{tier} {aspect_ratio}")
    return width, height


def exact_size(width: int, height: int, limits: SizeLimits, engine: str) -> tuple[int, int]:
    """``width`` x ``height`` as asked (OpenAI's ``size="1536x1024"``), refused unless the engine
    makes exactly that: each side a multiple of its step, within its aspect ratio, pixel count
    and minimum side."""
    label = f"{width}x{height}"
    step = limits.multiple
    if width % step or height % step:
        near = f"{_round_to(width, step)}x{_round_to(height, step)}"
        raise UnsupportedSizeError(
            f"engine {engine} makes sides in multiples of {step} pixels; size {label} is not "
            f"(the nearest it makes is {near})",
            field="size",
        )
    if max(width / height, height / width) > limits.max_aspect:
        raise UnsupportedSizeError(
            f"engine {engine} makes aspect ratios up to {_format_aspect(limits.max_aspect)}; "
            f"size {label} is {max(width, height) / min(width, height):.3g}:1",
            field="size",
        )
    _check_limits(width, height, limits, engine, label)
    return width, height


def table_sizes(multiple: int = 16) -> list[tuple[int, int]]:
    """Every (width, height) of the table at every tier, sides rounded to ``multiple`` as
    :func:`resolve_size` rounds them (engine limits not applied)."""
    sizes = {
        (_round_to(width * scale, multiple), _round_to(height * scale, multiple))
        for width, height in TABLE_1K.values()
        for scale in TIER_SCALE.values()
    }
    return sorted(sizes)


def _check_limits(width: int, height: int, limits: SizeLimits, engine: str, label: str) -> None:
    if width * height > limits.max_pixels:
        maker = f"this server ({limits.capped_by})" if limits.capped_by else f"engine {engine}"
        raise UnsupportedSizeError(
            f"{maker} makes at most {limits.max_pixels / 1e6:.1f} megapixels "
            f"({limits.max_pixels} pixels); size {_shown(label, width, height)} "
            f"= {width * height / 1e6:.1f} megapixels. Choose a smaller size or another engine.",
            field="size",
        )
    if min(width, height) < limits.min_side:
        raise UnsupportedSizeError(
            f"engine {engine} needs at least {limits.min_side} pixels per side; "
            f"size {_shown(label, width, height)}",
            field="size",
        )


def _shown(label: str, width: int, height: int) -> str:
    """``"1K 16:9 is 1344x768"``, or just ``"1344x768"`` where that is how it was asked."""
    pixels = f"{width}x{height}"
    return pixels if label == pixels else f"{label} is {pixels}"


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _aspect(aspect_ratio: str) -> float:
    value = ratio_value(aspect_ratio)
    return max(value, 1 / value)


def _format_aspect(value: float) -> str:
    return f"{value:g}:1"
