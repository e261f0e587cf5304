"""A fast PNG writer for the 8-bit images the engines make (RGB, RGBA, L, LA).

Pillow's PNG encoder tries five filters on every row and then deflates with zlib's lazy matcher:
about 160 ms for a 1K photo at ``compress_level=4`` on one core, and no lower level gets under
~80 ms because the filter search alone costs ~40 ms (``bench/postprocess.py``). This writer
applies one filter to the whole image with numpy (Average: the mean of the left and upper
neighbours, ~9 ms) and deflates at level 1 with Intel's ISA-L (python-isal): ~9 ms, where
zlib-ng's run-length strategy took ~22 ms and the standard library's zlib (the fallback, with
``Z_RLE``) ~35 ms; the file is about 9 % larger than Pillow's level 4. Noise, which no deflate
can shrink, is written in about the same time.

The output is a plain PNG (IHDR, one IDAT, IEND; no metadata), the same bytes for the same pixels
with the same deflate library (:data:`DEFLATE` names the one in use).
"""

from __future__ import annotations

import struct
import zlib as _stdlib_zlib

import numpy as np
from numpy.typing import NDArray
from PIL import Image

try:  # ISA-L's deflate (python-isal, a dependency): level 1 in ~9 ms for a 1K photo on one core
    from isal import isal_zlib as _isal
except ImportError:  # a platform without its wheel: the stdlib's zlib, run-length strategy
    _isal = None  # type: ignore[assignment]

DEFLATE = (
    "ISA-L (python-isal), level 1"
    if _isal is not None
    else f"zlib {_stdlib_zlib.ZLIB_RUNTIME_VERSION}, level 1, Z_RLE"
)

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type per Pillow mode (greyscale, truecolour, greyscale+alpha, truecolour+alpha).
COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}
_AVERAGE = 3  # the PNG filter type written in front of every row


def can_encode(image: Image.Image) -> bool:
    """Whether :func:`encode_png` writes ``image`` (8-bit greyscale or colour, with or without
    alpha); other modes (palette, 1-bit, 16-bit) go to Pillow."""
    return image.mode in COLOUR_TYPES


def encode_png(image: Image.Image) -> bytes:
    """``image`` (a mode in :data:`COLOUR_TYPES`) as PNG bytes."""
    pixels = np.asarray(image)
    rows = pixels.reshape(image.height, -1)  # one row of interleaved samples per scanline
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, COLOUR_TYPES[image.mode], 0, 0, 0)
    data = _deflate(_average_filtered(rows, len(image.mode)))
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _average_filtered(rows: NDArray[np.uint8], channels: int) -> NDArray[np.uint8]:
    """Each scanline led by its filter byte, each sample less the mean of its left and upper
    neighbours (PNG filter 3; neighbours outside the image count as 0)."""
    height, width = rows.shape
    neighbours = np.zeros((height, width), np.uint16)
    neighbours[:, channels:] += rows[:, :-channels]
    neighbours[1:] += rows[:-1]
    filtered = np.empty((height, width + 1), np.uint8)
    filtered[:, 0] = _AVERAGE
    np.subtract(rows, (neighbours >> 1).astype(np.uint8), out=filtered[:, 1:])  # wraps mod 256
    return filtered


def _deflate(data: NDArray[np.uint8]) -> bytes:
    if _isal is not None:
        return bytes(_isal.compress(data, 1))
    compressor = _stdlib_zlib.compressobj(1, _stdlib_zlib.DEFLATED, 15, 8, _stdlib_zlib.Z_RLE)
    return compressor.compress(data) + compressor.flush()


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = _stdlib_zlib.crc32(data, _stdlib_zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
