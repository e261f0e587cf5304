"""Images handed out as URLs (OpenAI ``response_format=url``): stored for a while, then gone.

Each file sits in one directory under an unguessable id (``secrets.token_urlsafe``), beside a small
JSON record of its media type and expiry. The id is the only capability: whoever holds the URL can
fetch it until it expires. Expired files are swept whenever a new one is stored.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from plantain.errors import NotFoundError

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")  # token_urlsafe's alphabet: no path tricks


class FileStore:
    """Stores bytes for ``ttl_seconds``; ``get`` after that (or for an unknown id) is a 404."""

    def __init__(self, directory: Path, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def put(self, data: bytes, media_type: str) -> str:
        """Store ``data`` and return its new id."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sweep()
        file_id = secrets.token_urlsafe(24)
        self._data_path(file_id).write_bytes(data)
        record = {"media_type": media_type, "expires_at": self._clock() + self.ttl_seconds}
        self._record_path(file_id).write_text(json.dumps(record))  # written last: marks it complete
        return file_id

    def get(self, file_id: str) -> tuple[bytes, str]:
        """(bytes, media type) of a stored file that has not expired."""
        record = self._record(file_id)
        if record is None or record[1] <= self._clock():
            raise NotFoundError(
                f"file {file_id!r} does not exist or has expired; image URLs last {self.ttl_seconds} seconds",
                field="file_id",
            )
        return self._data_path(file_id).read_bytes(), record[0]

    def sweep(self) -> None:
        """Delete every expired file."""
        now = self._clock()
        for path in self.directory.glob("*.json"):
            record = self._record(path.stem)
            if record is None or record[1] <= now:
                path.unlink(missing_ok=True)
                self._data_path(path.stem).unlink(missing_ok=True)

    def _record(self, file_id: str) -> tuple[str, float] | None:
        """(media type, expiry) of ``file_id``, or None for an id that is malformed or unknown."""
        if not _ID_PATTERN.match(file_id):
            return None
        try:
            record = json.loads(self._record_path(file_id).read_text())
            return str(record["media_type"]), float(record["expires_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _data_path(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.bin"

    def _record_path(self, file_id: str) -> Path:
        return self.directory / f"{file_id}.json"
