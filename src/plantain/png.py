"""A fast PNG writer for the 8-bit images the engines make (RGB, RGBA, L, LA).

Pillow's PNG encoder tries five filters on every row and then deflates with zlib's lazy matcher:
about 160 ms for a 1K photo at ``compress_level=4`` on one core, and no lower level gets under
~80 ms because the filter search alone costs ~40 ms (``bench/postprocess.py``). This writer
applies one filter to the whole image with numpy (Average: the mean of the left and upper
neighbours, ~3 ms) and deflates with the run-length strategy (``Z_RLE``, level 1), which finds
the runs of near-zero bytes the filter leaves at a fraction of the cost of a full match search:
~25 ms with zlib-ng, ~40 ms with the standard library's zlib, for a file about 6 % larger than
Pillow's level 4. Noise, which no deflate can shrink, is written in about the same time.

The output is a plain PNG (IHDR, one IDAT, IEND; no metadata), the same bytes for the same pixels
with the same deflate library (:data:`DEFLATE` names the one in use).
"""

from __future__ import annotations

import struct
import zlib as _stdlib_zlib
from types import ModuleType

import numpy as np
from numpy.typing import NDArray
from PIL import Image


def _deflate_module() -> ModuleType:
    """zlib-ng's module when installed (a dependency; ~1.6x faster here), else the stdlib's zlib:
    both speak zlib's stream format, so either writes a valid PNG."""
    try:
        from zlib_ng import zlib_ng
    except ImportError:  # a platform without a zlib-ng wheel: slower, same format
        return _stdlib_zlib
    return zlib_ng


_zlib = _deflate_module()
DEFLATE = (
    f"zlib {_zlib.ZLIB_RUNTIME_VERSION}"
    if _zlib is _stdlib_zlib
    else f"zlib-ng {_zlib.ZLIBNG_RUNTIME_VERSION}"
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
    compressor = _zlib.compressobj(1, _zlib.DEFLATED, 15, 8, _zlib.Z_RLE)
    compressed: bytes = compressor.compress(data) + compressor.flush()
    return compressed


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = _zlib.crc32(data, _zlib.crc32(kind)) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
