"""Overlapping tiles and the feathered weights that blend them back without seams.

Both the upscaler (a network run tile by tile so its memory does not grow with the image) and the
refiner (an engine repainting tile by tile) cut an image into tiles of one size that overlap their
neighbours, process each, and blend the results: in an overlap each tile's weight falls linearly
towards its own inner edge, so the two weights add up to one and no edge shows. The image's own
borders are not feathered (no neighbour takes over there).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]
"""(left, top, right, bottom), as PIL's ``crop`` takes it."""


def _starts(length: int, tile: int, overlap: int, align: int) -> list[int]:
    """Tile offsets along one side: evenly spread, each overlap at least ``overlap``, offsets
    multiples of ``align`` but for the last, which ends the tile at the side's end."""
    if length <= tile:
        return [0]
    span = length - tile
    if tile - overlap < align:  # no aligned offsets can keep the overlap: keep the overlap
        align = 1
    # Rounding an offset to ``align`` moves it by less than ``align``: step short by that much.
    step = max(1, tile - overlap - align + 1)
    count = -(-span // step) + 1  # ceil
    starts = {min(span, index * span // (count - 1) // align * align) for index in range(count)}
    return sorted(starts | {span})


def tile_boxes(width: int, height: int, tile: int, overlap: int, align: int = 1) -> list[Box]:
    """Boxes covering a ``width`` x ``height`` image, all ``min(tile, width)`` x
    ``min(tile, height)``, neighbours overlapping by at least ``overlap`` pixels, row by row.

    ``align``: tile offsets are multiples of it (a model that unshuffles pixels in blocks sees
    every tile on the same grid), except the last one, which ends at the image's edge."""
    if width < 1 or height < 1:
        raise ValueError(f"image size {width}x{height} is empty")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be at least 0 and less than the tile size {tile}")
    tile_w, tile_h = min(tile, width), min(tile, height)
    return [
        (left, top, left + tile_w, top + tile_h)
        for top in _starts(height, tile, overlap, align)
        for left in _starts(width, tile, overlap, align)
    ]


def _ramp(
    length: int, fade_start: bool, fade_end: bool, overlap: int, margin: int
) -> npt.NDArray[np.float32]:
    """One side's weights: 1 inside, rising from 0 over ``overlap`` at an edge that fades; the first
    ``margin`` pixels of a faded edge weigh 0 (a network's output is unreliable right at a tile's
    edge, where it saw padding instead of the neighbouring pixels)."""
    ramp = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return ramp
    distance = np.arange(length, dtype=np.float32)
    # Symmetric about the overlap's middle, so two facing ramps add up to exactly 1.
    rising = np.clip((distance - margin + 0.5) / (overlap - 2 * margin), 0.0, 1.0).astype(np.float32)
    if fade_start:
        ramp = np.minimum(ramp, rising)
    if fade_end:
        ramp = np.minimum(ramp, rising[::-1])
    return ramp


def feather_weights(
    box: Box, width: int, height: int, overlap: int, margin: int = 0
) -> npt.NDArray[np.float32]:
    """A (rows, columns) array weighting ``box``'s pixels for blending into a ``width`` x
    ``height`` image: edges inside the image fade over ``overlap`` pixels after ``margin``."""
    if not 0 <= 2 * margin < overlap or overlap == 0:
        margin = 0
    left, top, right, bottom = box
    across = _ramp(right - left, left > 0, right < width, overlap, margin)
    down = _ramp(bottom - top, top > 0, bottom < height, overlap, margin)
    return np.outer(down, across).astype(np.float32)
