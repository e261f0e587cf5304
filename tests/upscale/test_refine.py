"""Refining tile by tile: the tiles cover the image at one size, a repaint that changes nothing
gives the image back, and tiles painted differently blend across their overlaps without a seam."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from plantain.errors import EngineRunError
from plantain.upscale.refine import refine_tiles, tile_boxes


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    pixels = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    return Image.fromarray(pixels.astype(np.uint8))


@pytest.mark.parametrize(
    ("width", "height", "tile", "overlap"),
    [(1000, 600, 256, 32), (257, 256, 256, 64), (100, 50, 256, 32), (513, 129, 128, 16)],
)
def test_tiles_cover_the_image_at_one_size_overlapping(
    width: int, height: int, tile: int, overlap: int
) -> None:
    boxes = tile_boxes(width, height, tile, overlap)
    covered = np.zeros((height, width), dtype=bool)
    sizes = {(right - left, bottom - top) for left, top, right, bottom in boxes}
    assert sizes == {(min(tile, width), min(tile, height))}
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        covered[top:bottom, left:right] = True
    assert covered.all()
    for axis, side in ((0, min(tile, width)), (1, min(tile, height))):
        starts = sorted({box[axis] for box in boxes})
        assert all(side - (after - before) >= overlap for before, after in itertools.pairwise(starts))


def test_an_overlap_as_large_as_the_tile_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap 64"):
        tile_boxes(500, 500, 64, 64)


def test_a_repaint_that_changes_nothing_gives_the_image_back() -> None:
    image = gradient(300, 200)
    seen: list[tuple[int, int]] = []

    def same(tile: Image.Image) -> Image.Image:
        seen.append(tile.size)
        return tile.copy()

    refined = refine_tiles(image, 0.3, tile=128, overlap=32, repaint=same)
    assert np.array_equal(np.asarray(refined), np.asarray(image))
    assert len(seen) == len(tile_boxes(300, 200, 128, 32)) > 1 and set(seen) == {(128, 128)}


def test_strength_zero_repaints_nothing() -> None:
    image = gradient(300, 200)

    def never(tile: Image.Image) -> Image.Image:
        raise AssertionError("repaint called at strength 0")

    assert np.array_equal(np.asarray(refine_tiles(image, 0.0, 128, 32, never)), np.asarray(image))
    with pytest.raises(ValueError, match=r"strength 1\.5"):
        refine_tiles(image, 1.5, 128, 32, never)


def test_tiles_painted_differently_blend_without_a_seam() -> None:
    """Each tile repainted a flat grey of its own: a hard seam would jump by the whole difference
    between neighbours; blended, the change is spread over the overlap."""
    width, height, tile, overlap = 400, 128, 128, 48
    shades = iter(range(0, 256, 40))

    def flat(piece: Image.Image) -> Image.Image:
        return Image.new("RGB", piece.size, (next(shades),) * 3)

    refined = np.asarray(refine_tiles(gradient(width, height), 0.4, tile, overlap, flat), dtype=np.int16)
    row = refined[64, :, 0]
    count = len(tile_boxes(width, height, tile, overlap))
    assert count > 2 and row[0] == 0 and row[-1] == 40 * (count - 1)  # each end: its tile's own shade
    steps = np.abs(np.diff(row))
    assert steps.max() <= 40 / overlap * 2 + 1, f"a jump of {steps.max()} (a seam)"
    assert (np.diff(row) >= 0).all()  # shades rise tile by tile, and so does the blend


def test_a_repaint_of_another_size_is_an_error() -> None:
    with pytest.raises(EngineRunError, match="not the tile's 128x128"):
        refine_tiles(gradient(300, 200), 0.3, 128, 32, lambda piece: piece.resize((64, 64)))
