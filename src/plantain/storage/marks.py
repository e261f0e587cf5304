"""Watermark serials: the random 32-bit number each output image's watermark carries, and the task
and position it belongs to. Serials are reserved before a run (the watermark is embedded before the
task ends) and kept after the task expires, so a verified image still names its task."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plantain.storage.db import Database, open_database

SERIAL_BITS = 32


@dataclass(frozen=True)
class MarkRecord:
    """Where a serial was issued: the task and the image's place among its outputs (0-based)."""

    serial: int
    task_id: str
    position: int
    created_at: float


class ImageMarks:
    """Reads and writes ``image_marks`` on the task store's connection, under its lock."""

    def __init__(self, database: Database, clock: Callable[[], float]) -> None:
        self._database = database
        self._clock = clock

    def reserve(self, task_id: str, count: int) -> tuple[int, ...]:
        """Serials for the ``count`` images of ``task_id``: those reserved by an earlier attempt
        of the same task (a retried run marks its images as the first one did), then new ones."""
        with self._database.transaction() as db:
            rows = db.execute(
                "SELECT serial FROM image_marks WHERE task_id = ? ORDER BY position", (task_id,)
            ).fetchall()
            serials = [int(row["serial"]) for row in rows][:count]
            while len(serials) < count:
                serial = secrets.randbits(SERIAL_BITS)
                inserted = db.execute(
                    "INSERT INTO image_marks (serial, task_id, position, created_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (serial, task_id, len(serials), self._clock()),
                ).rowcount
                if inserted:  # a serial already issued (one in 2**32 per stored image) is drawn again
                    serials.append(serial)
        return tuple(serials)

    def find(self, serial: int) -> MarkRecord | None:
        """The task a serial was issued to, if this server issued it."""
        with self._database.read() as db:
            row = db.execute(
                "SELECT serial, task_id, position, created_at FROM image_marks WHERE serial = ?", (serial,)
            ).fetchone()
        if row is None:
            return None
        return MarkRecord(
            serial=int(row["serial"]),
            task_id=row["task_id"],
            position=int(row["position"]),
            created_at=float(row["created_at"]),
        )


def read_only_lookup(data_dir: Path, database_url: str | None) -> Callable[[int], MarkRecord | None]:
    """Serial lookups in the task database without writing to it (``plantain verify`` beside a
    running server); no embedded database yet means no serial was issued."""
    if database_url:
        return ImageMarks(open_database(data_dir, database_url), clock=lambda: 0.0).find
    path = data_dir / "plantain.db"
    if not path.is_file():
        return lambda serial: None
    from plantain.storage.sqlite import SqliteDatabase

    return ImageMarks(SqliteDatabase(path, read_only=True), clock=lambda: 0.0).find
