"""The task store: every state change of a task is one SQLite transaction together with its event
(and, for tasks with a webhook, its outbox row), so a killed process leaves each task in exactly
one state with the events that led there, and no event is ever written twice.

States move only forward: queued -> running -> succeeded | failed | cancelled, queued ->
cancelled, and running -> queued when a run is interrupted (a restart, a drain). Output bytes are
written to files before the transaction that records them; a crash in between leaves an orphan
file that :meth:`TaskRuns.sweep_orphan_files` removes, never a record without its file.

:class:`TaskStore` is the front door's side (submit, read, cancel); its :attr:`~TaskStore.runs`
(``runs.py``) is the worker's and finishing's (claim, progress, ends, recovery, retention).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantain.errors import IdempotencyConflictError, NotFoundError
from plantain.storage.arena import ArenaStore
from plantain.storage.blobs import Blobs, LocalBlobs
from plantain.storage.db import Connection, open_database
from plantain.storage.engine_stats import EngineStats
from plantain.storage.leases import TaskLeases
from plantain.storage.ledger import UsageLedger
from plantain.storage.marks import ImageMarks
from plantain.storage.outbox import Outbox
from plantain.storage.quotas import QuotaUse, count_images, quota_use
from plantain.storage.runs import TaskRuns
from plantain.storage.task_rows import TaskRows, WebhookBody, event_of, position
from plantain.storage.uploads import Uploads
from plantain.types import ImageRequest, InputImage, Task, TaskEvent
from plantain.usage import ANONYMOUS

# Fields of a stored request that are not the request's own: the labels of its stored inputs.
MASK_LABEL = "mask_label"  # set when the request has a mask, stored after the images
EARLIER_LABELS = "earlier_labels"  # a conversation's earlier images, stored after the mask
STORED_ONLY = frozenset({"input_labels", MASK_LABEL, EARLIER_LABELS})

__all__ = ["Admit", "NewTask", "TaskStore", "WebhookBody"]

Admit = Callable[[QuotaUse], None]
"""Sees a key's quota use as a request is queued; raises to refuse it."""


@dataclass(frozen=True)
class NewTask:
    """What a front door submits."""

    request: ImageRequest
    model: str
    engine: str
    source: str
    idempotency_key: str | None = None
    fingerprint: str | None = None  # of the caller's body, to tell a replay from a conflict
    webhook_url: str | None = None
    webhook_events: tuple[str, ...] | None = None  # None: every event type
    api_key_id: str = ANONYMOUS  # who submitted it (usage.key_id), never the key


class TaskStore:
    """Tasks in the task database (``<data_dir>/plantain.db``, or ``database_url``), output files
    in ``blobs`` (``<data_dir>/files`` by default). Thread-safe."""

    def __init__(
        self,
        data_dir: Path,
        *,
        retention_seconds: float,
        webhook_body: WebhookBody | None = None,
        clock: Callable[[], float] = time.time,
        currency: str = "USD",
        blobs: Blobs | None = None,
        lease_seconds: float = 30.0,
        database_url: str | None = None,
    ) -> None:
        self.blobs: Blobs = blobs or LocalBlobs(data_dir / "files")  # output files, by file id
        self.retention_seconds = retention_seconds
        self._clock = clock
        self.database = open_database(data_dir, database_url)
        self.outbox = Outbox(self.database)
        self.ledger = UsageLedger(self.database)
        self.engine_stats = EngineStats(self.database)
        self.arena = ArenaStore(self.database, clock)  # the arena's prompts, pairs and votes
        self.marks = ImageMarks(self.database, self._clock)
        self._rows = TaskRows(
            self.outbox, retention_seconds=retention_seconds, webhook_body=webhook_body, clock=clock
        )
        # Gemini Files API uploads (uploads.py), kept as long as results; retention expires both.
        self.uploads = Uploads(self.database, self.blobs, retention_seconds=retention_seconds, clock=clock)
        self.runs = TaskRuns(
            self.database, self._rows, self.ledger, self.blobs, currency, lease_seconds, self.uploads
        )
        self.leases = TaskLeases(self.database, self._rows, self.runs)

    def close(self) -> None:
        self.database.close()

    def _transaction(self) -> AbstractContextManager[Connection]:
        return self.database.transaction()

    def create(self, new: NewTask, admit: Admit | None = None) -> tuple[Task, bool]:
        """Queue ``new``; returns (task, created). A reused idempotency key with the same
        fingerprint returns the first task; with another, IdempotencyConflictError. ``admit``
        sees the key's quota use in the same transaction and raises to refuse the request."""
        with self._transaction() as db:
            if new.idempotency_key is not None:
                first = self._replayed(db, new.idempotency_key, new.fingerprint)
                if first is not None:
                    return first, False
            now = self._clock()
            if admit is not None:
                admit(quota_use(db, new.api_key_id, now))
            task_id = f"task_{secrets.token_urlsafe(18)}"
            _insert(db, task_id, new, now)
            count_images(db, new.api_key_id, now, new.request.num_images)
            self._rows.append_event(db, task_id, "queued", {"position": position(db, task_id)})
            return self._rows.task(db, task_id), True

    def replayed(self, idempotency_key: str, fingerprint: str | None) -> Task | None:
        """The task a submission with this key made, if one did (the same check as :meth:`create`,
        made before a replay's inputs would be fetched and decoded again)."""
        with self._transaction() as db:
            return self._replayed(db, idempotency_key, fingerprint)

    def _replayed(self, db: Connection, idempotency_key: str, fingerprint: str | None) -> Task | None:
        existing = db.execute(
            "SELECT id, fingerprint FROM tasks WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        if existing is None:
            return None
        if existing["fingerprint"] != fingerprint:
            raise IdempotencyConflictError(
                f"Idempotency-Key {idempotency_key!r} was already used with a different "
                "request body; send a new key for a new request",
                field="Idempotency-Key",
            )
        return self._rows.task(db, existing["id"])

    def get(self, task_id: str) -> Task:
        """The task, or NotFoundError (also for an expired one)."""
        with self.database.read() as db:
            return self._rows.task(db, task_id)

    def request(self, task_id: str) -> ImageRequest:
        """The stored request with its input images, as it was submitted."""
        with self.database.read() as db:
            task = self._rows.task(db, task_id)
            rows = db.execute(
                "SELECT label, data FROM task_inputs WHERE task_id = ? ORDER BY position", (task_id,)
            ).fetchall()
        inputs = [InputImage(data=bytes(row["data"]), label=row["label"]) for row in rows]
        fields = {name: value for name, value in task.request.items() if name not in STORED_ONLY}
        # Stored in order (see _insert): the images, the mask when its label says there is one,
        # then a conversation's earlier images.
        count = len(task.request.get("input_labels", []))
        images, rest = inputs[:count], inputs[count:]
        mask = rest.pop(0) if task.request.get(MASK_LABEL) is not None else None
        stored = {"images": tuple(images), "mask": mask, "earlier": tuple(rest)}
        return ImageRequest.model_validate({**fields, **stored})

    def page(
        self, *, status: str | None = None, limit: int = 20, before: str | None = None
    ) -> tuple[list[Task], str | None]:
        """Newest first; ``before`` is the cursor (a task id) that the previous page returned."""
        query = "SELECT id FROM tasks WHERE 1 = 1"
        params: list[Any] = []
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        with self.database.read() as db:
            if before is not None:
                anchor = self._rows.task(db, before)
                query += " AND (created_at, id) < (?, ?)"
                params += [anchor.created_at, anchor.id]
            rows = db.execute(
                query + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit + 1)
            ).fetchall()
            tasks = [self._rows.task(db, row["id"]) for row in rows[:limit]]
        return tasks, (tasks[-1].id if len(rows) > limit else None)

    def events_after(self, task_id: str, seq: int = 0) -> list[TaskEvent]:
        with self.database.read() as db:
            rows = db.execute(
                "SELECT * FROM task_events WHERE task_id = ? AND seq > ? ORDER BY seq", (task_id, seq)
            ).fetchall()
        return [event_of(row) for row in rows]

    def last_seq(self, task_id: str) -> int:
        """The number of ``task_id``'s newest event (0: none, or no such task)."""
        with self.database.read() as db:
            row = db.execute("SELECT MAX(seq) FROM task_events WHERE task_id = ?", (task_id,)).fetchone()
        return int(row[0] or 0)

    def events_since(self, last: Mapping[str, int]) -> list[TaskEvent]:
        """Events of several tasks newer than ``last`` (task id -> seq), in one query: what a
        front door polls for the tasks its callers watch."""
        if not last:
            return []
        where = " OR ".join("(task_id = ? AND seq > ?)" for _ in last)
        with self.database.read() as db:
            rows = db.execute(
                f"SELECT * FROM task_events WHERE {where} ORDER BY task_id, seq",
                [value for pair in last.items() for value in pair],
            ).fetchall()
        return [event_of(row) for row in rows]

    def quota_use(self, key_id: str) -> QuotaUse:
        """What ``key_id`` has used of its quotas now."""
        with self.database.read() as db:
            return quota_use(db, key_id, self._clock())

    def queue_position(self, task_id: str) -> int | None:
        """1 for the next task to run; None once it is no longer queued."""
        with self.database.read() as db:
            return position(db, task_id)

    def count(self, status: str) -> int:
        with self.database.read() as db:
            return int(db.execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,)).fetchone()[0])

    def file(self, file_id: str) -> str:
        """The media type of a stored output file (its bytes: ``blobs.get(file_id)``), or
        NotFoundError."""
        with self.database.read() as db:
            row = db.execute("SELECT media_type FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"file {file_id!r} does not exist or has expired; results are kept "
                f"{self.retention_seconds:g} seconds after their task ends",
                field="file_id",
            )
        return str(row["media_type"])

    def cancel(self, task_id: str) -> TaskEvent | None:
        """A queued task is cancelled at once (its event returned); a running one is flagged, and
        its worker ends it at the next step; an ended one is left as it is."""
        with self._transaction() as db:
            task = self._rows.task(db, task_id)
            if task.status == "running":
                db.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))
                return None
            if task.status != "queued":
                return None
            self.runs.finish(db, task_id, "cancelled", None, allow_queued=True)
            return self._rows.append_event(db, task_id, "cancelled", {"while": "queued"})


def _insert(db: Connection, task_id: str, new: NewTask, now: float) -> None:
    order = db.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM tasks").fetchone()[0]
    fields = new.request.model_dump(mode="json", exclude={"images", "mask", "earlier"})
    fields["input_labels"] = [image.label for image in new.request.images]  # the bytes go away later
    inputs = list(new.request.images)
    if new.request.mask is not None:  # stored after the images, marked by its label in the request
        fields[MASK_LABEL] = new.request.mask.label
        inputs.append(new.request.mask)
    if new.request.earlier:
        fields[EARLIER_LABELS] = [image.label for image in new.request.earlier]
        inputs.extend(new.request.earlier)
    db.execute(
        "INSERT INTO tasks (id, queue_order, status, model, engine, source, request, "
        "idempotency_key, fingerprint, webhook_url, webhook_events, created_at, api_key_id, images) "
        "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task_id,
            order,
            new.model,
            new.engine,
            new.source,
            json.dumps(fields),
            new.idempotency_key,
            new.fingerprint,
            new.webhook_url,
            json.dumps(new.webhook_events) if new.webhook_events is not None else None,
            now,
            new.api_key_id,
            new.request.num_images,
        ),
    )
    db.executemany(
        "INSERT INTO task_inputs (task_id, position, label, data) VALUES (?, ?, ?, ?)",
        [(task_id, index, image.label, image.data) for index, image in enumerate(inputs)],
    )
