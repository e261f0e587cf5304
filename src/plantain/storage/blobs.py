"""Where output files live: a directory on this machine (the embedded default) or an S3-compatible
bucket shared by every server of a cluster (``storage_url=s3://BUCKET/PREFIX``, ``s3.py``).

A file is written whole and durably before the transaction that records it (a crash in between
leaves an orphan the store sweeps, never a record without its file), read back by its id, and
deleted with its task. The S3 client is imported only when a bucket is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from plantain.settings import Settings
from plantain.storage.files import write_durably


class Blobs(Protocol):
    def put(self, key: str, data: bytes, media_type: str) -> None:
        """Store ``data`` under ``key``, durably once this returns."""

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; FileNotFoundError when there are none."""

    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens when it is not there)."""

    def keys(self) -> list[str]:
        """Every key stored (for sweeping orphans at start)."""

    def download_url(self, key: str, media_type: str, seconds: int) -> str | None:
        """A URL that serves ``key`` without this server for ``seconds``, or None (local files)."""

    def describe(self) -> str:
        """Where the files are, for logs and errors."""

    def check(self) -> None:
        """ConfigurationError, naming the setting, when files cannot be stored there (at start)."""


class LocalBlobs:
    """Files in one directory, named by their keys."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, key: str, data: bytes, media_type: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_durably(self.directory / key, data)

    def get(self, key: str) -> bytes:
        return (self.directory / key).read_bytes()

    def delete(self, key: str) -> None:
        (self.directory / key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return [path.name for path in self.directory.iterdir() if path.is_file()]

    def download_url(self, key: str, media_type: str, seconds: int) -> str | None:
        return None

    def describe(self) -> str:
        return str(self.directory)

    def check(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)


def open_blobs(settings: Settings) -> Blobs:
    """The file store ``settings`` name: ``<data_dir>/files``, or the ``storage_url`` bucket."""
    if settings.storage_url is None:
        return LocalBlobs(settings.data_dir / "files")
    from plantain.storage.s3 import S3Blobs  # the cluster extra: imported only when configured

    return S3Blobs.from_settings(settings)
