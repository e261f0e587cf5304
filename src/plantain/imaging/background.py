"""Transparent backgrounds, made honestly from engines that only paint opaque RGB.

A request with ``background="transparent"`` goes through two deterministic steps:

1. **Steer**: the prompt the engine sees ends with :data:`STEER_SUFFIX` ("…, isolated on a plain
   solid white background"), so the subject stands on one plain colour. The prompt stored and
   echoed is the caller's own.
2. **Key out**: the dominant colour of the image's border is taken as the background; pixels
   within :data:`EDGE_TOLERANCE` of it (CIE76 colour distance ΔE in Lab) that are connected to the
   border are background and become transparent. The subject's anti-aliased edge gets partial
   opacity (how much of the subject each edge pixel holds), and the background colour is taken
   out of those pixels, so the edge stays smooth with no white fringe.

It is a heuristic for a subject on a plain background. When the border is not mostly one plain
colour (a busy scene) nothing is keyed out and the image stays opaque RGB, so a caller can tell
from the alpha channel what was made. Parts of the subject that match the background colour and
touch it (a white shirt on white) are keyed out with it; enclosed areas (the hole of a ring)
are kept, since only what is connected to the border is background.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from plantain.types import Background, ImageRequest

STEER_SUFFIX = ", isolated on a plain solid white background"

SOLID_TOLERANCE = 10.0  # ΔE up to which background is fully transparent (2.3 is just noticeable)
EDGE_TOLERANCE = 25.0  # ΔE up to which a pixel connected to the border is background (faint above 10)
MIN_BORDER_SHARE = 0.6  # of the border within SOLID_TOLERANCE of its main colour, or nothing is keyed
MIN_SUBJECT_DISTANCE = 64.0  # sRGB distance a pixel is taken as opaque from, with no subject beside it
EDGE_REACH = 2  # pixels beside the background that may be a mix of it and the subject
BORDER_DEPTH = 2  # pixels of the frame the background colour is read from
GRID = 256  # the flood fill runs on a grid of about this many cells a side, then refines in pixels
MAX_GRID_STEPS = 4 * GRID  # a background that winds further than this stays partly opaque

Mask = npt.NDArray[np.bool_]
Floats = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


def steered(request: ImageRequest) -> ImageRequest:
    """``request`` with the prompt the engine should see: steered when it asks for transparency."""
    if request.background != "transparent" or request.prompt.endswith(STEER_SUFFIX):
        return request
    return request.model_copy(update={"prompt": request.prompt + STEER_SUFFIX})


def apply_background(image: Image.Image, background: Background) -> Image.Image:
    """The engine's ``image`` with the background asked for: keyed out, opaque, or as made."""
    if background == "transparent":
        return remove_background(image)
    if background == "opaque":
        return flatten(image)
    return image


def flatten(image: Image.Image) -> Image.Image:
    """``image`` without transparency: what an engine made transparent on its own (Qwen-Image-2.1
    can) laid onto white, the background every engine is steered to; an opaque one as RGB."""
    if image.mode not in {"RGBA", "LA", "PA"}:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", image.size, "white")
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def remove_background(image: Image.Image) -> Image.Image:
    """RGBA with the plain background connected to the border made transparent; the image as RGB,
    untouched, when its border is not one plain colour."""
    rgb: Pixels = np.asarray(image.convert("RGB"))
    colour = _dominant_colour(_border(rgb))
    difference = _lab(rgb) - _lab(colour.reshape(1, 1, 3))
    distance = np.sqrt(np.einsum("...i,...i->...", difference, difference))
    if np.mean(_border(distance) < SOLID_TOLERANCE) < MIN_BORDER_SHARE:
        return image.convert("RGB")
    region = _flood_from_border(distance < EDGE_TOLERANCE)
    return _rgba(rgb, _alpha(rgb, colour, region & (distance >= SOLID_TOLERANCE), region), colour)


def _alpha(rgb: Pixels, colour: Pixels, faint: Mask, region: Mask) -> Floats:
    """Opacity 0-1: 0 in the background ``region``, 1 in the subject, in between on its edge and
    on ``faint`` background pixels (between SOLID_TOLERANCE and EDGE_TOLERANCE).

    An edge pixel is a mix ``a * subject + (1 - a) * background`` of the sRGB values (as a model or
    a resize blends them), so ``a`` is its distance from the background colour over that of the
    subject beside it: the farthest pixel within EDGE_REACH + 1, or MIN_SUBJECT_DISTANCE."""
    offset = rgb.astype(np.float32) - colour.astype(np.float32)
    away = np.sqrt(np.einsum("...i,...i->...", offset, offset))
    subject = np.maximum(_max_around(away, EDGE_REACH + 1), MIN_SUBJECT_DISTANCE)
    mix = np.clip(away / subject, 0, 1)
    edge = _grow_within(region, np.ones_like(region), EDGE_REACH) & ~region
    return np.where(edge | faint, mix, np.where(region, 0, 1)).astype(np.float32)


def _max_around(values: Floats, reach: int) -> Floats:
    """Each value replaced by the largest within ``reach`` pixels (a square window)."""
    out = values.copy()
    for axis in (0, 1):
        source = out.copy()
        for shift in range(1, reach + 1):
            ahead, behind = [slice(None)] * 2, [slice(None)] * 2
            ahead[axis], behind[axis] = slice(shift, None), slice(None, -shift)
            np.maximum(out[tuple(behind)], source[tuple(ahead)], out=out[tuple(behind)])
            np.maximum(out[tuple(ahead)], source[tuple(behind)], out=out[tuple(ahead)])
    return out


# --- colour -----------------------------------------------------------------------------------

_LINEAR = np.array(
    [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in np.arange(256) / 255],
    dtype=np.float32,
)  # sRGB byte -> linear light
_RGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], dtype=np.float32
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)  # D65
_EPSILON = (6 / 29) ** 3


def _lab(rgb: Pixels) -> Floats:
    """sRGB bytes -> CIE Lab (D65), same shape with L, a, b last."""
    xyz = (_LINEAR[rgb] @ (_RGB_TO_XYZ.T / _WHITE)).astype(np.float32)
    f = np.cbrt(xyz)
    dark = xyz <= _EPSILON  # the linear toe of Lab, for near-black only: patched, not computed twice
    f[dark] = xyz[dark] / (3 * (6 / 29) ** 2) + 4 / 29
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)
    return lab.astype(np.float32)


def _border(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The outer frame of ``values`` (BORDER_DEPTH deep), flattened to one row per pixel."""
    depth = min(BORDER_DEPTH, values.shape[0] // 2, values.shape[1] // 2) or 1
    frame = np.zeros(values.shape[:2], dtype=bool)
    frame[:depth], frame[-depth:], frame[:, :depth], frame[:, -depth:] = True, True, True, True
    return values[frame]


def _dominant_colour(border: npt.NDArray[Any]) -> Pixels:
    """The median of the border pixels in the most common 16-level colour bin: robust to a
    subject that touches part of the border."""
    pixels = np.asarray(border, dtype=np.uint8)
    bins = (pixels.astype(np.int32) >> 4) @ np.array([256, 16, 1])
    common = np.bincount(bins, minlength=4096).argmax()
    colour: Pixels = np.median(pixels[bins == common], axis=0).round().astype(np.uint8)
    return colour


def _rgba(rgb: Pixels, alpha: Floats, background: Pixels) -> Image.Image:
    """RGBA from ``alpha`` (0-1), the ``background`` colour taken out of partly transparent pixels
    (each was a mix ``alpha * subject + (1 - alpha) * background``)."""
    partial = (alpha > 0) & (alpha < 1)
    base = background.astype(np.float32)
    mixed = rgb[partial].astype(np.float32)
    colour = rgb.copy()
    colour[partial] = np.clip(base + (mixed - base) / alpha[partial][:, None], 0, 255).round()
    opacity = (alpha * 255).round().astype(np.uint8)
    return Image.fromarray(np.dstack([colour, opacity]), "RGBA")


# --- flood fill -------------------------------------------------------------------------------


def _flood_from_border(candidate: Mask) -> Mask:
    """The ``candidate`` pixels 4-connected to the image border.

    Numpy has no flood fill, and one that grows a pixel a step would take the image's width in
    steps: it grows on a coarse grid first (a cell counts only when all its pixels are candidates,
    so the coarse fill never crosses a thin line of the subject), then a few steps in pixels reach
    into the cells the subject's edge runs through."""
    height, width = candidate.shape
    cell = max(1, math.ceil(max(height, width) / GRID))
    coarse = _all_in_cells(candidate, cell)
    reached = _grow_within(_frame(coarse.shape) & coarse, coarse, MAX_GRID_STEPS)
    fine = np.repeat(np.repeat(reached, cell, axis=0), cell, axis=1)[:height, :width]
    seeds = (fine | _frame(candidate.shape)) & candidate
    return _grow_within(seeds, candidate, 2 * cell)


def _all_in_cells(mask: Mask, cell: int) -> Mask:
    """One value per ``cell`` x ``cell`` block: True when every pixel of the block is."""
    height, width = mask.shape
    padded = np.pad(mask, ((0, -height % cell), (0, -width % cell)), constant_values=True)
    rows, cols = padded.shape[0] // cell, padded.shape[1] // cell
    return np.asarray(padded.reshape(rows, cell, cols, cell).all(axis=(1, 3)), dtype=bool)


def _frame(shape: tuple[int, ...]) -> Mask:
    frame = np.zeros(shape, dtype=bool)
    frame[0], frame[-1], frame[:, 0], frame[:, -1] = True, True, True, True
    return frame


def _grow_within(seeds: Mask, allowed: Mask, steps: int) -> Mask:
    """``seeds`` grown one 4-neighbour step at a time inside ``allowed``, until stable or ``steps``."""
    region = seeds & allowed
    for _ in range(steps):
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= allowed
        if np.array_equal(grown, region):
            break
        region = grown
    return region
