"""Refining an upscaled image: the engine repaints it tile by tile, and the tiles are blended back.

An upscaler sharpens what the small image had; it cannot add detail the engine never drew. A
light img2img pass of the engine over the enlarged image can, but no engine runs at 4K in one
piece, so the image is cut into overlapping tiles the engine can make (``tile`` pixels a side),
each repainted on its own, and blended with feathered overlaps: where two tiles overlap, the
weight of each falls linearly towards its inner edge, so a detail one tile drew differently from
its neighbour fades across the overlap instead of ending at a seam.

This module is the tiling only; the repaint itself (the engine's img2img call at the refine
strength) is the caller's ``repaint`` function.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from plantain.errors import EngineRunError
from plantain.upscale.tiles import Box, feather_weights, tile_boxes

__all__ = ["Box", "Repaint", "refine_tiles", "tile_boxes"]

Repaint = Callable[[Image.Image], Image.Image]
"""Repaints one RGB tile; returns an image of the same size."""


def refine_tiles(
    image: Image.Image, strength: float, tile: int, overlap: int, repaint: Repaint
) -> Image.Image:
    """``image`` (RGB) repainted tile by tile by ``repaint``, the tiles blended back seamlessly.

    ``strength`` is the repaint strength the caller's ``repaint`` applies (it is not passed on):
    0 returns ``image`` as it is without a call; it must lie in [0, 1]. Every tile is
    ``min(tile, width)`` x ``min(tile, height)``, so an engine sees one size throughout."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"refine strength {strength} is not between 0 and 1")
    rgb = image.convert("RGB")
    if strength == 0.0:
        return rgb
    width, height = rgb.size
    total = np.zeros((height, width, 1), dtype=np.float32)
    blended = np.zeros((height, width, 3), dtype=np.float32)
    for box in tile_boxes(width, height, tile, overlap):
        painted = _repainted(rgb, box, repaint)
        weights = feather_weights(box, width, height, overlap)[..., None]
        left, top, right, bottom = box
        blended[top:bottom, left:right] += np.asarray(painted, dtype=np.float32) * weights
        total[top:bottom, left:right] += weights
    pixels = np.clip(np.rint(blended / total), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _repainted(image: Image.Image, box: Box, repaint: Repaint) -> Image.Image:
    piece = image.crop(box)
    painted = repaint(piece)
    if painted.size != piece.size:
        raise EngineRunError(
            f"refine: the repaint of the tile at {box[:2]} is {painted.size[0]}x{painted.size[1]}, "
            f"not the tile's {piece.size[0]}x{piece.size[1]}"
        )
    return painted.convert("RGB")
