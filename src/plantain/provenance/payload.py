"""The watermark's payload and key: a :class:`Mark` (server tag and image serial) as its 64-bit
codeword (CRC-16 added, whitened) and back, and the key-dependent layout of a tile (which payload
bit each block carries, and its chip). Embedding and reading are in
:mod:`plantain.provenance.watermark`, which re-exports :class:`Mark` and the codeword functions.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from plantain.provenance.dwtdctsvd import Floats

__all__ = [
    "PAYLOAD_BITS",
    "SUBTILE",
    "TILE",
    "Mark",
    "bit_templates",
    "codeword",
    "layout",
    "read_codeword",
]

PAYLOAD_BITS = 64  # 16 server + 32 serial + 16 CRC
TILE = 32  # tile side in blocks: the phase a crop search has to find
SUBTILE = 8  # 8x8 blocks (64x64 px) hold every payload bit once
_KEY = b"plantain watermark v1"


@dataclass(frozen=True)
class Mark:
    """A watermark payload: which server made the image, and which image (the server keeps
    serial -> task)."""

    server: int  # 0..65535
    serial: int  # 0..2**32-1

    def __post_init__(self) -> None:
        if not 0 <= self.server < 1 << 16:
            raise ValueError(f"Mark.server must be from 0 to 65535, not {self.server}")
        if not 0 <= self.serial < 1 << 32:
            raise ValueError(f"Mark.serial must be from 0 to {(1 << 32) - 1}, not {self.serial}")


def codeword(mark: Mark) -> npt.NDArray[np.bool_]:
    """The 64 embedded bits of ``mark``: server and serial (big-endian), their CRC-16/CCITT,
    XORed with a fixed key sequence so that no constant bit pattern is a valid codeword."""
    data = mark.server.to_bytes(2, "big") + mark.serial.to_bytes(4, "big")
    check = binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")
    bits = np.unpackbits(np.frombuffer(data + check, dtype=np.uint8)).astype(bool)
    return np.asarray(bits ^ _whitening(), dtype=bool)


def read_codeword(bits: npt.NDArray[np.bool_]) -> Mark | None:
    """The mark whose :func:`codeword` is ``bits``, or None when the CRC does not match."""
    data = np.packbits((bits ^ _whitening()).astype(np.uint8)).tobytes()
    if binascii.crc_hqx(data[:6], 0xFFFF).to_bytes(2, "big") != data[6:]:
        return None
    return Mark(server=int.from_bytes(data[:2], "big"), serial=int.from_bytes(data[2:6], "big"))


# --- the key: whitening and layout, from SHA-256 in counter mode (stable across versions) ---


def _key_bytes(label: bytes, count: int) -> bytes:
    blocks = (count + 31) // 32
    stream = b"".join(hashlib.sha256(_KEY + label + i.to_bytes(4, "big")).digest() for i in range(blocks))
    return stream[:count]


@functools.cache
def _whitening() -> npt.NDArray[np.bool_]:
    raw = np.frombuffer(_key_bytes(b"whitening", PAYLOAD_BITS // 8), dtype=np.uint8)
    return np.asarray(np.unpackbits(raw).astype(bool), dtype=bool)


@functools.cache
def layout() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """(payload bit index, chip) of each of a tile's 32x32 blocks: each 8x8 sub-tile is its own
    key-dependent permutation of the 64 bits; chips are key bits."""
    count = (TILE // SUBTILE) ** 2
    draws = np.frombuffer(_key_bytes(b"layout", 4 * count * PAYLOAD_BITS), dtype=">u4")
    index = np.empty((TILE, TILE), dtype=np.intp)
    for sub in range(count):
        order = _permutation(draws[sub * PAYLOAD_BITS : (sub + 1) * PAYLOAD_BITS])
        row, col = divmod(sub, TILE // SUBTILE)
        index[row * SUBTILE : (row + 1) * SUBTILE, col * SUBTILE : (col + 1) * SUBTILE] = order.reshape(
            SUBTILE, SUBTILE
        )
    chips = np.unpackbits(np.frombuffer(_key_bytes(b"chips", TILE * TILE // 8), dtype=np.uint8))
    return index, chips.astype(bool).reshape(TILE, TILE)


def _permutation(draws: npt.NDArray[np.uint32]) -> npt.NDArray[np.intp]:
    """Fisher-Yates over range(len(draws)) driven by ``draws``."""
    order = np.arange(len(draws), dtype=np.intp)
    for i in range(len(draws) - 1, 0, -1):
        j = int(draws[i]) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


@functools.cache
def bit_templates() -> Floats:
    """(64, 32, 32): for payload bit p, +1 / -1 (the chip's sign) on its cells, 0 elsewhere."""
    index, chips = layout()
    signs = np.where(chips, -1.0, 1.0).astype(np.float32)
    return np.stack([np.where(index == p, signs, 0).astype(np.float32) for p in range(PAYLOAD_BITS)])
