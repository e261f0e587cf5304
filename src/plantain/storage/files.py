"""Writing files Plantain keeps in its data directory: results that must survive a crash, and
generated keys, secrets and tags that must never be seen half-written."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_durably(path: Path, data: bytes) -> None:
    """Write, then fsync: a file the store records must survive a crash right after the commit."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all (a temporary file renamed over it), created with ``mode``
    so a key is never readable by others, not even for a moment."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
