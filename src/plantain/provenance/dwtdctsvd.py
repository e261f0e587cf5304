"""invisible-watermark's ``dwtDctSvd`` method, vectorised with numpy.

The method (imwatermark/dwtDctSvd.py): take the U plane of OpenCV's BGR->YUV (BT.601), its
one-level Haar DWT approximation band (LL), cut LL into 4x4 blocks (8x8 pixels), and in each
block quantise the largest singular value ``s0`` of the block's 4x4 DCT: ``s0 mod scale`` in the
lower half reads as 0, in the upper half as 1.

Two facts make it cheap. The 4x4 DCT is orthonormal, so the DCT'd block has the block's own
singular values and ``idct(dct(B) + d u0 v0^T) = B + d u0' v0'^T`` with the block's own singular
vectors: the DCT cancels and is not computed. And only ``s0`` changes, so each block moves by a
rank-one ``d u0 v0^T``; ``u0, v0, s0`` come from batched power iteration on ``B^T B`` (LL values
are positive, so the top singular value is well separated), far faster than a batched SVD.

Where the library is wrong, this is not: it moves each ``s0`` up to 3/4 of a step (always within
its cell; here to the nearest point of the bit's lattice, at most 1/2 step, a smaller change for
the same strength), writes floats into a uint8 array (truncation and wrap-around; here round and
clip once at the end), and swaps the H and V detail bands on the way back (here LL alone
changes, so only the mark's own change reaches the pixels).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]

BLOCK = 8  # pixels per block side: 4 LL coefficients, each from 2x2 pixels
# OpenCV's COLOR_BGR2YUV: U = 0.492111 (B - Y) + 128, Y = 0.299 R + 0.587 G + 0.114 B.
_U_FROM_RGB = np.array([-0.492111 * 0.299, -0.492111 * 0.587, 0.492111 * 0.886], dtype=np.float32)
# OpenCV's COLOR_YUV2BGR for a change in U alone: Y and V stay as they were.
_B_PER_U, _G_PER_U = 2.032, -0.395
_SQUARINGS = 4  # power iteration: M^16 · 1; the error in s0 goes as (s1/s0)^32


def u_plane(rgb: Pixels) -> Floats:
    """The U plane (OpenCV's YUV, offset 128) of an (H, W, 3) uint8 RGB array, in float."""
    return np.asarray(rgb.astype(np.float32) @ _U_FROM_RGB + np.float32(128.0), dtype=np.float32)


def haar_ll(u: Floats) -> Floats:
    """The one-level Haar approximation band of ``u`` (pywt's ``dwt2(u, "haar")[0]``: each
    coefficient is the sum of a 2x2 pixel square over 2); an odd last row or column is dropped."""
    height, width = u.shape[0] // 2 * 2, u.shape[1] // 2 * 2
    pairs = u[0:height:2, :width] + u[1:height:2, :width]
    return np.asarray((pairs[:, 0::2] + pairs[:, 1::2]) * np.float32(0.5), dtype=np.float32)


def blocks_of_ll(ll: Floats, rows: int, cols: int) -> Floats:
    """The 4x4 blocks of ``ll[:4 rows, :4 cols]`` as a (4, 4, rows * cols) array, blocks in
    raster order; the block index is last so that every step below is a handful of whole-array
    operations."""
    region = ll[: rows * 4, : cols * 4]
    return np.ascontiguousarray(region.reshape(rows, 4, cols, 4).transpose(1, 3, 0, 2)).reshape(4, 4, -1)


def blocks_of(u: Floats, rows: int, cols: int) -> Floats:
    """The LL blocks of the pixels ``u[:8 rows, :8 cols]`` (see :func:`blocks_of_ll`)."""
    return blocks_of_ll(haar_ll(u[: rows * BLOCK, : cols * BLOCK]), rows, cols)


def _product(left: Floats, right: Floats) -> Floats:
    """Blockwise ``left @ right`` of two (4, 4, N) arrays."""
    return np.asarray((left[:, :, None, :] * right[None, :, :, :]).sum(axis=1), dtype=np.float32)


def _dominant(gram: Floats) -> Floats:
    """The unit top eigenvector (4, N) of each symmetric positive 4x4 matrix in (4, 4, N)."""
    power = gram
    for _ in range(_SQUARINGS):
        trace = power[0, 0] + power[1, 1] + power[2, 2] + power[3, 3]
        power = power / np.maximum(trace, np.float32(1e-30))
        power = _product(power, power)
    vector = power.sum(axis=1)
    norm = np.sqrt((vector * vector).sum(axis=0))
    return np.asarray(vector / np.maximum(norm, np.float32(1e-30)), dtype=np.float32)


def top_singular(blocks: Floats) -> tuple[Floats, Floats, Floats]:
    """(s0 (N,), u0 (4, N), v0 (4, N)) of each block in (4, 4, N): its largest singular value
    and vectors."""
    gram = (blocks[:, :, None, :] * blocks[:, None, :, :]).sum(axis=0)  # B^T B
    v = _dominant(gram)
    bv = (blocks * v[None, :, :]).sum(axis=1)
    s = np.sqrt((bv * bv).sum(axis=0))
    u = bv / np.maximum(s, np.float32(1e-30))
    return s.astype(np.float32), u.astype(np.float32), v


def top_singular_value(blocks: Floats) -> Floats:
    """s0 of each block in (4, 4, N)."""
    gram = (blocks[:, :, None, :] * blocks[:, None, :, :]).sum(axis=0)
    v = _dominant(gram)
    rayleigh = (v[:, None, :] * gram * v[None, :, :]).sum(axis=(0, 1))
    return np.asarray(np.sqrt(np.maximum(rayleigh, 0)), dtype=np.float32)


def soft_scores(s0: Floats, scale: float) -> Floats:
    """A score in [-1, 1] per block: +1 at the centre of a 1 cell (3/4 of a step), -1 at the
    centre of a 0 cell (1/4), 0 on the boundaries; its sign is the library's hard decision."""
    phase = np.mod(s0, np.float32(scale)) / np.float32(scale)
    return np.asarray(-np.sin(np.float32(2 * np.pi) * phase), dtype=np.float32)


def quantised(s0: Floats, bits: npt.NDArray[np.bool_], scale: float) -> Floats:
    """The nearest value to each ``s0`` that reads as its bit: ``(k + 1/4 + bit/2) * scale``."""
    offset = np.float32(0.25) + np.float32(0.5) * bits.astype(np.float32)
    k = np.maximum(np.rint(s0 / np.float32(scale) - offset), 0)
    return np.asarray((k + offset) * np.float32(scale), dtype=np.float32)


def embed_bits(rgb: Pixels, bits: npt.NDArray[np.bool_], scale: float) -> Pixels:
    """``rgb`` with ``bits[i, j]`` written into the block at row i, column j (bits' shape sets
    how many blocks are used, from the top-left corner)."""
    rows, cols = bits.shape
    u = u_plane(rgb)
    s0, u0, v0 = top_singular(blocks_of(u, rows, cols))
    change = quantised(s0, bits.reshape(-1), scale) - s0
    delta = (change * np.float32(0.5)) * u0[:, None, :] * v0[None, :, :]
    # Haar synthesis of an LL change alone: each of its 2x2 pixels moves by half of it.
    delta_ll = delta.reshape(4, 4, rows, cols).transpose(2, 0, 3, 1).reshape(rows * 4, cols * 4)
    out = rgb.copy()  # red never changes: only blue and green are converted, moved and rounded
    for channel, gain in ((2, _B_PER_U), (1, _G_PER_U)):
        plane = out[: rows * BLOCK, : cols * BLOCK, channel].astype(np.float32)
        # Each LL coefficient's 2x2 pixels move together (a broadcast, not a repeated copy).
        plane.reshape(rows * 4, 2, cols * 4, 2)[...] += np.float32(gain) * delta_ll[:, None, :, None]
        np.clip(np.rint(plane, out=plane), 0, 255, out=plane)
        out[: rows * BLOCK, : cols * BLOCK, channel] = plane  # exact: already whole and in range
    return out


def block_scores(rgb: Pixels, scale: float, offset: tuple[int, int] = (0, 0)) -> Floats:
    """The soft score of every whole block of ``rgb`` whose grid starts ``offset`` = (x, y)
    pixels in, as a (rows, cols) array."""
    return scores_of_plane(u_plane(rgb), scale, offset)


def scores_of_plane(u: Floats, scale: float, offset: tuple[int, int] = (0, 0)) -> Floats:
    """:func:`block_scores` from a U plane."""
    return scores_of_ll(haar_ll(u[offset[1] :, offset[0] :]), scale)


def scores_of_ll(ll: Floats, scale: float, offset: tuple[int, int] = (0, 0)) -> Floats:
    """:func:`block_scores` from an LL band, the block grid starting ``offset`` coefficients in."""
    band = ll[offset[1] :, offset[0] :]
    rows, cols = band.shape[0] // 4, band.shape[1] // 4
    if rows == 0 or cols == 0:
        return np.zeros((rows, cols), dtype=np.float32)
    return soft_scores(top_singular_value(blocks_of_ll(band, rows, cols)), scale).reshape(rows, cols)


def library_layout(rows: int, cols: int, bits: list[int]) -> npt.NDArray[np.bool_]:
    """The library's bit per block: ``bits`` cycled over the blocks in raster order."""
    index = np.arange(rows * cols) % len(bits)
    return np.asarray(bits, dtype=bool)[index].reshape(rows, cols)


def embed_library(rgb: Pixels, bits: list[int], scale: float = 36.0) -> Pixels:
    """``bits`` embedded in ``rgb`` in the library's own layout (what its decoder reads)."""
    rows, cols = rgb.shape[0] // BLOCK, rgb.shape[1] // BLOCK
    return embed_bits(rgb, library_layout(rows, cols, bits), scale)


def decode_library(rgb: Pixels, length: int, scale: float = 36.0) -> list[int]:
    """``length`` bits read from the library's layout, by averaging soft scores."""
    scores = block_scores(rgb, scale).reshape(-1)
    index = np.arange(scores.size) % length
    sums = np.bincount(index, weights=scores, minlength=length)
    return [int(total > 0) for total in sums]
