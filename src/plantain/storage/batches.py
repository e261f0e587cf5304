"""The batch store: a batch is a named, ordered group of tasks (Gemini's ``batchGenerateContent``).

A batch holds no state of its own beyond a cancel mark: whether it is pending, running or done
is read from its tasks each time, so it can never disagree with them. It lives in the tasks'
database (``plantain.db``, migration 2) on its own connection, so the task store stays unaware of
it; the migration's triggers tie the two together (a batch's results expire together, and the
batch is deleted when they do).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from plantain.errors import InvalidRequestError, NotFoundError
from plantain.storage.db import Connection, Database


@dataclass(frozen=True)
class Member:
    """One request of a batch: its place, its task, and the caller's metadata echoed back."""

    position: int
    task_id: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Batch:
    id: str
    source: str  # the front door that made it ("gemini")
    model: str
    display_name: str
    created_at: float
    cancelled_at: float | None
    members: tuple[Member, ...]


class BatchStore:
    """Batches in the task database, beside the tasks (whose store opens and closes it)."""

    def __init__(self, database: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._database = database

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self._database.transaction()

    def create(
        self,
        *,
        source: str,
        model: str,
        display_name: str,
        members: Sequence[tuple[str, dict[str, Any] | None]],
    ) -> Batch:
        """A batch of the already queued tasks ``members`` (task id, metadata), in that order."""
        batch_id = secrets.token_hex(12)  # a path segment: no '/', no ':'
        with self._transaction() as db:
            db.execute(
                "INSERT INTO batches (id, source, model, display_name, request_count, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (batch_id, source, model, display_name, len(members), self._clock()),
            )
            db.executemany(
                "INSERT INTO batch_tasks (batch_id, position, task_id, metadata) VALUES (?, ?, ?, ?)",
                [
                    (batch_id, position, task_id, json.dumps(metadata) if metadata is not None else None)
                    for position, (task_id, metadata) in enumerate(members)
                ],
            )
            return self._batch(db, batch_id)

    def get(self, batch_id: str) -> Batch:
        """The batch, or NotFoundError (also once it was deleted or its results expired)."""
        with self._database.read() as db:
            return self._batch(db, batch_id)

    def page(self, *, limit: int, after: str | None = None) -> tuple[list[Batch], str | None]:
        """Newest first; ``after`` is the cursor (a batch id) the previous page returned."""
        where = ""  # no cursor: from the newest
        params: list[Any] = []
        with self._database.read() as db:
            if after is not None:
                where = " WHERE (created_at, id) < (?, ?)"
                params = [self._created_at(db, after), after]
            rows = db.execute(
                f"SELECT id FROM batches{where} ORDER BY created_at DESC, id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
            batches = [self._batch(db, row["id"]) for row in rows[:limit]]
        return batches, (batches[-1].id if len(rows) > limit else None)

    def _created_at(self, db: Connection, cursor: str) -> float:
        row = db.execute("SELECT created_at FROM batches WHERE id = ?", (cursor,)).fetchone()
        if row is None:
            raise InvalidRequestError(
                f"pageToken: {cursor!r} is not a page of this list (or its batch is gone); send the "
                "nextPageToken of the previous page, or none for the first page",
                field="pageToken",
            )
        return float(row["created_at"])

    def mark_cancelled(self, batch_id: str) -> Batch:
        """Record the cancel (the first one counts); the caller cancels the tasks."""
        with self._transaction() as db:
            self._batch(db, batch_id)  # NotFoundError for an unknown batch
            db.execute(
                "UPDATE batches SET cancelled_at = COALESCE(cancelled_at, ?) WHERE id = ?",
                (self._clock(), batch_id),
            )
            return self._batch(db, batch_id)

    def delete(self, batch_id: str) -> None:
        """Forget the batch; its ended tasks expire now (a still running one keeps its own expiry,
        which the caller has cancelled)."""
        with self._transaction() as db:
            batch = self._batch(db, batch_id)
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))  # memberships cascade
            ids = [member.task_id for member in batch.members]
            db.execute(
                f"UPDATE tasks SET expires_at = ? WHERE id IN ({', '.join('?' for _ in ids)}) "
                "AND status NOT IN ('queued', 'running')",
                (self._clock(), *ids),
            )

    def _batch(self, db: Connection, batch_id: str) -> Batch:
        row = db.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"batch {batch_id!r} does not exist: it was deleted, or its results expired "
                "(they are kept retention_seconds after its last request ends)",
                field="name",
            )
        members = db.execute(
            "SELECT position, task_id, metadata FROM batch_tasks WHERE batch_id = ? ORDER BY position",
            (batch_id,),
        ).fetchall()
        return Batch(
            id=row["id"],
            source=row["source"],
            model=row["model"],
            display_name=row["display_name"],
            created_at=row["created_at"],
            cancelled_at=row["cancelled_at"],
            members=tuple(
                Member(m["position"], m["task_id"], json.loads(m["metadata"]) if m["metadata"] else None)
                for m in members
            ),
        )
