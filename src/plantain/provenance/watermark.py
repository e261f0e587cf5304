"""The invisible watermark: a 64-bit payload (16-bit server tag, 32-bit image serial, CRC-16) in
every output's pixels, read back after re-saving, resizing and cropping (docs/watermark.md).

Embedding is invisible-watermark's ``dwtDctSvd`` (:mod:`.dwtdctsvd`) with its own layout: the
payload is tiled in 32x32-block tiles (256 px), each 8x8-block sub-tile holding every payload bit
once in a key-dependent order, and each block's bit XORed with a key-dependent chip (the payload's
coding and that layout are in :mod:`.payload`). Reading:

- every block gets a soft score (how far its singular value sits into a 0 or a 1 cell);
- the scores are folded onto one tile (averaged over the tiles), and each payload bit is the
  chip-signed mean of its 16 cells;
- presence is a chi-square test that needs no payload: ``T = sum_p 16 m_p^2 / var(cells)`` is
  chi-square with 64 degrees of freedom whatever the picture when the key's pattern is not in it
  (the chips make flat areas, gradients and periodic textures average out), and reaches 1024 on
  a pristine mark. Its p-value, corrected for every hypothesis tried (Bonferroni), decides
  ``present``; the payload counts only when its CRC matches as well.

:func:`detect` tries the image as it is, then rescaled to each generation size of its aspect
ratio (nearest first), then searches the 8x8-pixel grid offset and the 32x32 tile phase (a crop).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from plantain.imaging.sizes import table_sizes
from plantain.provenance.dwtdctsvd import (
    BLOCK,
    Floats,
    embed_bits,
    haar_ll,
    scores_of_ll,
    scores_of_plane,
    u_plane,
)
from plantain.provenance.payload import PAYLOAD_BITS as PAYLOAD_BITS
from plantain.provenance.payload import TILE, bit_templates, layout
from plantain.provenance.payload import Mark as Mark
from plantain.provenance.payload import codeword as codeword
from plantain.provenance.payload import read_codeword as read_codeword

SCALE = 60.0  # quantisation step of s0 (the library: 36); see docs/watermark.md
MIN_SIDE = 64  # one sub-tile: below it some payload bits have no block at all
MIN_PIXELS = 128 * 128  # 4 blocks per bit: with 1 the presence test has nothing to go on
ALPHA = 1e-6  # chance that an unmarked image is reported present (per detect call)
MARK_ALPHA = 1e-2  # a payload with a matching CRC also needs this much presence evidence
CHASE_BITS, CHASE_FLIPS = 6, 2  # a present mark's payload may have 2 of its 6 least sure bits wrong
ASPECT_TOLERANCE = 0.03  # rescale only to generation sizes within 3 % of the image's aspect
MAX_RESCALE = 4.0  # nor by more than this factor either way
SEARCH_WINDOW = 512  # the crop search finds the grid offset in a central window this size
_FAMILIES = 2  # straight reads (as given, rescaled) and the crop search share ALPHA


@dataclass(frozen=True)
class Detection:
    """What :func:`detect` found.

    ``confidence`` is the presence evidence on a 0..1 scale: ``L / (L + 6)`` where ``L`` is minus
    log10 of the chance that an unmarked image shows this much, all hypotheses tried counted; so
    0 is what unmarked images show, 0.5 the threshold (``present``: one unmarked image in
    a million reaches it) and an intact mark gives about 0.97."""

    present: bool
    confidence: float
    mark: Mark | None  # the payload, when its CRC matched (and presence evidence backs it)
    bit_accuracy: float | None = None  # for benchmarks that know the payload; detect leaves None
    size_tried: tuple[int, int] | None = None  # the size it was read at (None: as given)
    crop_offset: tuple[int, int] | None = None  # (x, y) of the original's origin, mod 256 px
    bits: tuple[int, ...] = ()  # the best hypothesis's codeword bits (for benchmarks)


def can_carry(width: int, height: int) -> bool:
    """Whether an image this size gets a mark (smaller ones pass :func:`embed` unchanged)."""
    return min(width, height) >= MIN_SIDE and width * height >= MIN_PIXELS


def generation_sizes() -> list[tuple[int, int]]:
    """Every (width, height) the server can make: the 1K table at every tier, sides rounded to
    multiples of 16 (:func:`plantain.imaging.sizes.table_sizes`)."""
    return table_sizes(16)


def embed(image: Image.Image, mark: Mark) -> Image.Image:
    """``image`` (RGB or RGBA; alpha is kept as it is) with ``mark`` in its pixels; an image too
    small to carry one (see :func:`can_carry`) comes back unchanged."""
    if image.mode not in ("RGB", "RGBA"):
        raise ValueError(f"embed takes RGB or RGBA images, not mode {image.mode}")
    if not can_carry(*image.size):
        return image
    rgb = np.asarray(image.convert("RGB") if image.mode == "RGBA" else image)
    rows, cols = rgb.shape[0] // BLOCK, rgb.shape[1] // BLOCK
    index, chips = (_tiled(array, rows, cols) for array in layout())
    marked = Image.fromarray(embed_bits(rgb, codeword(mark)[index] ^ chips, SCALE), "RGB")
    if image.mode == "RGBA":
        marked.putalpha(image.getchannel("A"))
    return marked


def detect(image: Image.Image, sizes: Iterable[tuple[int, int]] | None = None) -> Detection:
    """Whether ``image`` carries a mark, and its payload when it can be read.

    Tries the image as given, then rescaled to each of ``sizes`` (default
    :func:`generation_sizes`) whose aspect ratio matches (nearest size first), then a crop
    search; stops at the first payload that reads."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    candidates = _candidates(rgb.size, generation_sizes() if sizes is None else sizes)
    straight = 1 + len(candidates)
    u = u_plane(np.asarray(rgb))
    readings = [_read(haar_ll(u), straight)]
    for size in candidates:
        if readings[-1].mark is not None:
            break
        readings.append(_read(_resized_ll(u, size), straight, size=size))
    if readings[-1].mark is None:
        readings.append(_search_crop(u))
    found = next((r for r in readings if r.mark is not None), None)
    return (found or max(readings, key=lambda r: r.evidence)).detection()


def _tiled(array: npt.NDArray[np.generic], rows: int, cols: int) -> npt.NDArray[np.generic]:
    reps = (-(-rows // TILE), -(-cols // TILE))
    return np.tile(array, reps)[:rows, :cols]


# --- reading ---


@dataclass(frozen=True)
class _Reading:
    """One hypothesis: log10 of its family-corrected p-value, and each payload bit's z-score
    (sign: the bit; size: how sure)."""

    log10_p: float  # <= 0
    z: Floats  # (64,)
    size: tuple[int, int] | None = None
    crop_offset: tuple[int, int] | None = None

    @property
    def evidence(self) -> float:
        return -self.log10_p

    @functools.cached_property
    def mark(self) -> Mark | None:
        """The payload when its CRC matches with enough presence evidence; when the mark is
        present, also after flipping up to CHASE_FLIPS of the CHASE_BITS least sure bits."""
        if self.evidence < -math.log10(MARK_ALPHA):
            return None
        bits = self.z > 0
        mark = read_codeword(bits)
        if mark is not None or self.evidence < -math.log10(ALPHA):
            return mark
        return next(filter(None, (read_codeword(bits ^ flips) for flips in _chase_flips(self.z))), None)

    def detection(self) -> Detection:
        threshold = -math.log10(ALPHA)
        evidence = max(0.0, self.evidence)
        return Detection(
            present=evidence >= threshold or self.mark is not None,
            confidence=evidence / (evidence + threshold),
            mark=self.mark,
            size_tried=self.size,
            crop_offset=self.crop_offset,
            bits=tuple(int(bit) for bit in self.z > 0),
        )


def _chase_flips(z: Floats) -> list[npt.NDArray[np.bool_]]:
    """Masks flipping 1..CHASE_FLIPS of the CHASE_BITS least sure bits, likeliest first (Chase
    decoding: each try is one more chance of a false CRC match, 2**-16 each)."""
    weakest = [int(i) for i in np.argsort(np.abs(z))[:CHASE_BITS]]
    combos = [c for r in range(1, CHASE_FLIPS + 1) for c in itertools.combinations(weakest, r)]
    combos.sort(key=lambda combo: float(sum(abs(z[i]) for i in combo)))
    masks = []
    for combo in combos:
        mask = np.zeros(PAYLOAD_BITS, dtype=bool)
        mask[list(combo)] = True
        masks.append(mask)
    return masks


@dataclass(frozen=True)
class _Folded:
    """Block scores folded onto one tile: per-cell means, centred, and which cells have data."""

    cells: Floats  # (32, 32)
    covered: Floats  # (32, 32), 1.0 where some block landed
    variance: float


def _fold(scores: Floats) -> _Folded:
    rows, cols = scores.shape
    if rows == 0 or cols == 0:
        empty = np.zeros((TILE, TILE), dtype=np.float32)
        return _Folded(empty, empty, 0.0)
    pad = ((0, -rows % TILE), (0, -cols % TILE))
    shape = (-1, TILE, (cols + pad[1][1]) // TILE, TILE)
    sums = np.pad(scores, pad).reshape(shape).sum(axis=(0, 2))
    counts = np.pad(np.ones_like(scores), pad).reshape(shape).sum(axis=(0, 2))
    covered = (counts > 0).astype(np.float32)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    if covered.sum() > 0:
        means = (means - means.sum() / covered.sum()) * covered
    variance = float((means * means).sum() / max(covered.sum(), 1.0))
    return _Folded(means.astype(np.float32), covered, variance)


def _resized_ll(u: Floats, size: tuple[int, int]) -> Floats:
    """The LL band the image would have at ``size``. U is linear in RGB, so resizing U is
    resizing the image; and resizing straight to LL's resolution (times 2: LL sums 2x2 pixels
    over 2) reads as well as resizing to ``size`` first, for a quarter of the work."""
    half = (max(1, size[0] // 2), max(1, size[1] // 2))
    plane = Image.fromarray(u, "F").resize(half, Image.Resampling.BICUBIC)
    return np.asarray(plane, dtype=np.float32) * np.float32(2.0)


def _read(ll: Floats, straight: int, size: tuple[int, int] | None = None) -> _Reading:
    """The hypothesis that the mark's grid and tile start at the image's top-left corner."""
    folded = _fold(scores_of_ll(ll, SCALE))
    templates = bit_templates().reshape(PAYLOAD_BITS, -1)
    sums = templates @ folded.cells.reshape(-1) / math.sqrt(max(folded.variance, 1e-12))
    counts = np.abs(templates) @ folded.covered.reshape(-1)
    return _Reading(_log10_p(sums, counts, straight), _z(sums, counts), size)


def _z(sums: Floats, counts: Floats) -> Floats:
    """Per-bit z-scores from variance-normalised cell sums (0 for a bit with no cells)."""
    return np.asarray(sums / np.sqrt(np.maximum(counts, 1.0)), dtype=np.float32)


def _log10_p(sums: Floats, counts: Floats, hypotheses: int) -> float:
    """log10 of the family-corrected p-value, under "no mark", of per-bit sums of cells
    normalised to unit variance: their statistic is chi-square with a degree per bit."""
    used = counts > 0
    if not used.any() or not np.any(sums[used]):
        return 0.0
    statistic = float((sums[used] ** 2 / counts[used]).sum())
    corrected = _log10_chi2_sf(statistic, int(used.sum())) + math.log10(hypotheses * _FAMILIES)
    return min(0.0, corrected)


def _log10_chi2_sf(x: float, df: int) -> float:
    """log10 P(chi2(df) >= x), exact for even df (odd df rounds up: a little conservative)."""
    k = (df + 1) // 2
    half = x / 2
    if half <= 0:
        return 0.0
    terms = [i * math.log(half) - math.lgamma(i + 1) for i in range(k)]
    top = max(terms)
    log_sum = top + math.log(sum(math.exp(t - top) for t in terms))
    return min(0.0, (log_sum - half) / math.log(10))


def _search_crop(u: Floats) -> _Reading:
    """The best grid offset (searched in a central window) and tile phase, read on the whole
    image; corrected for all 64 x 1024 hypotheses."""
    hypotheses = BLOCK * BLOCK * TILE * TILE
    window = _central(u, SEARCH_WINDOW + BLOCK)
    strengths: dict[tuple[int, int], float] = {}
    for parity_y, parity_x in itertools.product(range(2), repeat=2):
        ll = haar_ll(window[parity_y:, parity_x:])
        for ll_y, ll_x in itertools.product(range(BLOCK // 2), repeat=2):
            folded = _fold(scores_of_ll(ll, SCALE, (ll_x, ll_y)))
            strengths[(2 * ll_x + parity_x, 2 * ll_y + parity_y)] = float(_phase_statistics(folded)[0].max())
    offset = max(strengths, key=lambda o: strengths[o])
    statistics, sums, counts = _phase_statistics(_fold(scores_of_plane(u, SCALE, offset)))
    a_y, a_x = (int(i) for i in np.unravel_index(int(np.argmax(statistics)), statistics.shape))
    pick = (slice(None), a_y, a_x)
    log10_p = _log10_p(sums[pick], counts[pick], hypotheses)
    crop = ((BLOCK * a_x - offset[0]) % (TILE * BLOCK), (BLOCK * a_y - offset[1]) % (TILE * BLOCK))
    return _Reading(log10_p, _z(sums[pick], counts[pick]), None, crop)


def _phase_statistics(folded: _Folded) -> tuple[Floats, Floats, Floats]:
    """For every tile phase (a_y, a_x): the chi-square statistic (32, 32), and per bit the
    variance-normalised cell sums and cell counts (64, 32, 32)."""
    signed, unsigned = _template_spectra()
    cells = np.conj(np.fft.rfft2(folded.cells))
    covered = np.conj(np.fft.rfft2(folded.covered))
    sums = np.fft.irfft2(signed * cells, s=(TILE, TILE)) / math.sqrt(max(folded.variance, 1e-12))
    counts = np.rint(np.fft.irfft2(unsigned * covered, s=(TILE, TILE)))
    statistic = (sums * sums / np.maximum(counts, 1.0)).sum(axis=0)
    return statistic.astype(np.float32), sums.astype(np.float32), counts.astype(np.float32)


@functools.cache
def _template_spectra() -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128]]:
    """The 2-D spectra of the signed templates and of their supports (for cross-correlation)."""
    return np.fft.rfft2(bit_templates()), np.fft.rfft2(np.abs(bit_templates()))


def _central(u: Floats, side: int) -> Floats:
    """A central ``side`` x ``side`` window, its corner on the image's 8-pixel grid (so that
    offsets found in it are offsets in the image)."""
    height, width = u.shape
    top = max(0, (height - side) // 2) // BLOCK * BLOCK
    left = max(0, (width - side) // 2) // BLOCK * BLOCK
    return u[top : top + side, left : left + side]


def _candidates(size: tuple[int, int], sizes: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Generation sizes to rescale to: same aspect ratio (within ASPECT_TOLERANCE), not the
    image's own size, at most MAX_RESCALE away; nearest first."""
    width, height = size
    aspect = math.log(width / height)
    matching = {
        s
        for s in sizes
        if s != size
        and abs(math.log(s[0] / s[1]) - aspect) <= math.log1p(ASPECT_TOLERANCE)
        and abs(math.log(s[0] / width)) <= math.log(MAX_RESCALE) + 1e-9
    }
    return sorted(matching, key=lambda s: (abs(math.log(s[0] / width)), s))
