"""Images stored for URLs: fetched back while fresh, 404 once expired, unknown or malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from plantain.errors import NotFoundError
from plantain.files import FileStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_served_until_it_expires_then_swept(tmp_path: Path) -> None:
    clock = Clock()
    store = FileStore(tmp_path, ttl_seconds=60, clock=clock)
    file_id = store.put(b"bytes", "image/png")
    assert len(file_id) >= 32
    assert store.get(file_id) == (b"bytes", "image/png")
    clock.now += 60
    with pytest.raises(NotFoundError, match="expired"):
        store.get(file_id)
    store.put(b"other", "image/webp")  # storing sweeps what has expired
    assert not (tmp_path / f"{file_id}.bin").exists()


@pytest.mark.parametrize("file_id", ["unknown-but-well-formed-id", "../../etc/passwd", "a.json"])
def test_unknown_and_malformed_ids_are_not_found(tmp_path: Path, file_id: str) -> None:
    with pytest.raises(NotFoundError):
        FileStore(tmp_path, ttl_seconds=60).get(file_id)
