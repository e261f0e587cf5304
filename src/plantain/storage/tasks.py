"""The task store: every state change of a task is one SQLite transaction together with its event
(and, for tasks with a webhook, its outbox row), so a killed process leaves each task in exactly
one state with the events that led there, and no event is ever written twice.

States move only forward: queued -> running -> succeeded | failed | cancelled, queued ->
cancelled, and running -> queued when a run is interrupted (a restart, a drain). Output bytes are
written to files before the transaction that records them; a crash in between leaves an orphan
file that :meth:`TaskStore.sweep_orphan_files` removes, never a record without its file.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plantain.errors import IdempotencyConflictError, NotFoundError
from plantain.storage.db import connect, transaction
from plantain.storage.ledger import UsageLedger
from plantain.storage.marks import ImageMarks
from plantain.storage.outbox import Outbox
from plantain.types import (
    Cost,
    ImageRequest,
    InputImage,
    Task,
    TaskError,
    TaskEvent,
    TaskResult,
    TokenUsage,
    Usage,
)
from plantain.usage import ANONYMOUS, no_usage

WebhookBody = Callable[[Task, TaskEvent], str]
"""Renders the JSON body of a webhook for an event (the task API's shape; the store stays neutral)."""

PROGRESS_WEBHOOK_INTERVAL = 0.5  # seconds between progress webhooks of one task (as Replicate)

# A task with its ledger row (the usage it reported when it ended), if it has one.
TASK_QUERY = (
    "SELECT t.*, u.images AS usage_images, u.input_text_tokens AS usage_input_text, "
    "u.input_image_tokens AS usage_input_image, u.output_tokens AS usage_output, "
    "u.device_seconds AS usage_device_seconds, u.cost AS usage_cost, u.currency AS usage_currency, "
    "u.provenance_seconds AS usage_provenance_seconds "
    "FROM tasks AS t LEFT JOIN usage_ledger AS u ON u.task_id = t.id WHERE t.id = ?"
)


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
    """Tasks in ``<data_dir>/plantain.db``, output files in ``<data_dir>/files``. Thread-safe."""

    def __init__(
        self,
        data_dir: Path,
        *,
        retention_seconds: float,
        webhook_body: WebhookBody | None = None,
        clock: Callable[[], float] = time.time,
        currency: str = "USD",
    ) -> None:
        self.path = data_dir / "plantain.db"
        self.files_dir = data_dir / "files"
        self.retention_seconds = retention_seconds
        self._webhook_body = webhook_body
        self._clock = clock
        self._currency = currency  # of the zero cost of a task that never ran
        self._lock = threading.RLock()
        self._db = connect(self.path)
        self.outbox = Outbox(self._db, self._lock)
        self.ledger = UsageLedger(self._db, self._lock)
        self.marks = ImageMarks(self._db, self._lock, self._clock)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    # --- submitting ----------------------------------------------------------------------------

    def create(self, new: NewTask) -> tuple[Task, bool]:
        """Queue ``new``; returns (task, created). A reused idempotency key with the same
        fingerprint returns the first task; with another, IdempotencyConflictError."""
        with self._transaction() as db:
            if new.idempotency_key is not None:
                first = self._replayed(db, new.idempotency_key, new.fingerprint)
                if first is not None:
                    return first, False
            task_id = f"task_{secrets.token_urlsafe(18)}"
            self._insert(db, task_id, new)
            self._append_event(db, task_id, "queued", {"position": self._position(db, task_id)})
            return self._task(db, task_id), True

    def replayed(self, idempotency_key: str, fingerprint: str | None) -> Task | None:
        """The task a submission with this key made, if one did (the same check as :meth:`create`,
        made before a replay's inputs would be fetched and decoded again)."""
        with self._transaction() as db:
            return self._replayed(db, idempotency_key, fingerprint)

    def _replayed(self, db: sqlite3.Connection, idempotency_key: str, fingerprint: str | None) -> Task | None:
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
        return self._task(db, existing["id"])

    def _insert(self, db: sqlite3.Connection, task_id: str, new: NewTask) -> None:
        order = db.execute("SELECT COALESCE(MAX(queue_order), 0) + 1 FROM tasks").fetchone()[0]
        fields = new.request.model_dump(mode="json", exclude={"images"})
        fields["input_labels"] = [image.label for image in new.request.images]  # the bytes go away later
        db.execute(
            "INSERT INTO tasks (id, queue_order, status, model, engine, source, request, "
            "idempotency_key, fingerprint, webhook_url, webhook_events, created_at, api_key_id) "
            "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                self._clock(),
                new.api_key_id,
            ),
        )
        db.executemany(
            "INSERT INTO task_inputs (task_id, position, label, data) VALUES (?, ?, ?, ?)",
            [(task_id, index, image.label, image.data) for index, image in enumerate(new.request.images)],
        )

    # --- reading -------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        """The task, or NotFoundError (also for an expired one)."""
        with self._lock:
            return self._task(self._db, task_id)

    def request(self, task_id: str) -> ImageRequest:
        """The stored request with its input images, as it was submitted."""
        with self._lock:
            task = self._task(self._db, task_id)
            rows = self._db.execute(
                "SELECT label, data FROM task_inputs WHERE task_id = ? ORDER BY position", (task_id,)
            ).fetchall()
        images = tuple(InputImage(data=bytes(row["data"]), label=row["label"]) for row in rows)
        fields = {name: value for name, value in task.request.items() if name != "input_labels"}
        return ImageRequest.model_validate({**fields, "images": images})

    def page(
        self, *, status: str | None = None, limit: int = 20, before: str | None = None
    ) -> tuple[list[Task], str | None]:
        """Newest first; ``before`` is the cursor (a task id) that the previous page returned."""
        query = "SELECT id FROM tasks WHERE 1 = 1"
        params: list[Any] = []
        if status is not None:
            query += " AND status = ?"
            params.append(status)
        with self._lock:
            if before is not None:
                anchor = self._task(self._db, before)
                query += " AND (created_at, id) < (?, ?)"
                params += [anchor.created_at, anchor.id]
            rows = self._db.execute(
                query + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit + 1)
            ).fetchall()
            tasks = [self._task(self._db, row["id"]) for row in rows[:limit]]
        return tasks, (tasks[-1].id if len(rows) > limit else None)

    def events_after(self, task_id: str, seq: int = 0) -> list[TaskEvent]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM task_events WHERE task_id = ? AND seq > ? ORDER BY seq", (task_id, seq)
            ).fetchall()
        return [_event(row) for row in rows]

    def queue_position(self, task_id: str) -> int | None:
        """1 for the next task to run; None once it is no longer queued."""
        with self._lock:
            return self._position(self._db, task_id)

    def queued_count(self) -> int:
        return self.count("queued")

    def count(self, status: str) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM tasks WHERE status = ?", (status,)).fetchone()[0]
            )

    def file(self, file_id: str) -> tuple[Path, str]:
        """(path, media type) of a stored output file, or NotFoundError."""
        with self._lock:
            row = self._db.execute("SELECT media_type FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"file {file_id!r} does not exist or has expired; results are kept "
                f"{self.retention_seconds:g} seconds after their task ends",
                field="file_id",
            )
        return self.files_dir / file_id, str(row["media_type"])

    # --- running -------------------------------------------------------------------------------

    def claim_next(self) -> tuple[Task, TaskEvent] | None:
        """The oldest queued task, now running (its attempt counted), with its 'started' event."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM tasks WHERE status = 'queued' ORDER BY queue_order LIMIT 1"
            ).fetchone()
            return None if row is None else self._claim(db, row["id"])

    def claim(self, task_id: str) -> tuple[Task, TaskEvent] | None:
        """``task_id`` as :meth:`claim_next` claims it, if it is still queued (else None): a
        task joining a batch that an older task leads."""
        with self._transaction() as db:
            return self._claim(db, task_id)

    def queued_ids(self, engine: str, limit: int) -> list[str]:
        """Up to ``limit`` queued tasks for ``engine``, oldest first (candidates to join a batch)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM tasks WHERE status = 'queued' AND engine = ? ORDER BY queue_order LIMIT ?",
                (engine, limit),
            ).fetchall()
        return [row["id"] for row in rows]

    def add_event(self, task_id: str, type_: str, data: dict[str, Any]) -> TaskEvent:
        with self._transaction() as db:
            return self._append_event(db, task_id, type_, data)

    def new_file_id(self) -> str:
        return secrets.token_urlsafe(24)

    def succeed(
        self, task_id: str, result: TaskResult, event_data: dict[str, Any], usage: Usage
    ) -> TaskEvent | None:
        """running -> succeeded with its files and usage recorded; None (and nothing written) if the
        task is no longer running, so a result can never be recorded twice."""
        with self._transaction() as db:
            if not self._finish(db, task_id, "succeeded", usage, result=result.model_dump_json()):
                return None
            db.executemany(
                "INSERT INTO files (id, task_id, media_type, created_at) VALUES (?, ?, ?, ?)",
                [(out.file_id, task_id, out.media_type, self._clock()) for out in result.outputs],
            )
            return self._append_event(db, task_id, "completed", event_data)

    def fail(self, task_id: str, error: TaskError, usage: Usage | None = None) -> TaskEvent | None:
        """queued/running -> failed, with the device time its run used; None if it had already ended."""
        with self._transaction() as db:
            if not self._finish(
                db, task_id, "failed", usage, error=error.model_dump_json(), allow_queued=True
            ):
                return None
            return self._append_event(db, task_id, "failed", error.model_dump())

    def cancel(self, task_id: str) -> TaskEvent | None:
        """A queued task is cancelled at once (its event returned); a running one is flagged, and
        its worker ends it at the next step; an ended one is left as it is."""
        with self._transaction() as db:
            task = self._task(db, task_id)
            if task.status == "running":
                db.execute("UPDATE tasks SET cancel_requested = 1 WHERE id = ?", (task_id,))
                return None
            if task.status != "queued":
                return None
            self._finish(db, task_id, "cancelled", None, allow_queued=True)
            return self._append_event(db, task_id, "cancelled", {"while": "queued"})

    def mark_cancelled(self, task_id: str, step: int | None, usage: Usage | None = None) -> TaskEvent | None:
        """running -> cancelled, by the worker that stopped it (with the device time it used)."""
        with self._transaction() as db:
            if not self._finish(db, task_id, "cancelled", usage):
                return None
            return self._append_event(db, task_id, "cancelled", {"while": "running", "step": step})

    def requeue(self, task_id: str, reason: str) -> TaskEvent | None:
        """running -> queued, keeping its place at the head of the queue (a drain or a restart)."""
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE tasks SET status = 'queued', started_at = NULL WHERE id = ? AND status = 'running'",
                (task_id,),
            ).rowcount
            if not changed:
                return None
            return self._append_event(
                db, task_id, "queued", {"position": self._position(db, task_id), "requeued": reason}
            )

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """At start: tasks left running by a process that died run again, or fail once they have
        used ``max_attempts``. Returns (requeued ids, failed ids)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM tasks WHERE status = 'running' ORDER BY queue_order"
            ).fetchall()
        requeued, failed = [], []
        for row in rows:
            if row["attempts"] < max_attempts:
                self.requeue(row["id"], "the server stopped during the run")
                requeued.append(row["id"])
            else:
                self.fail(row["id"], _exhausted(row["attempts"]))
                failed.append(row["id"])
        return requeued, failed

    # --- retention -----------------------------------------------------------------------------

    def expire(self) -> int:
        """Delete tasks whose results have expired, with their events, inputs and files."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id FROM files WHERE task_id IN (SELECT id FROM tasks WHERE expires_at <= ?)",
                (self._clock(),),
            ).fetchall()
            count = db.execute("DELETE FROM tasks WHERE expires_at <= ?", (self._clock(),)).rowcount
        for row in rows:
            (self.files_dir / row["id"]).unlink(missing_ok=True)
        self.outbox.expire()
        return int(count)

    def sweep_orphan_files(self) -> int:
        """Delete output files no task records (written by a run that died before committing)."""
        if not self.files_dir.is_dir():
            return 0
        with self._lock:
            known = {row["id"] for row in self._db.execute("SELECT id FROM files")}
        orphans = [path for path in self.files_dir.iterdir() if path.name not in known]
        for path in orphans:
            path.unlink(missing_ok=True)
        return len(orphans)

    # --- internals -----------------------------------------------------------------------------

    def _claim(self, db: sqlite3.Connection, task_id: str) -> tuple[Task, TaskEvent] | None:
        changed = db.execute(
            "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ? "
            "WHERE id = ? AND status = 'queued'",
            (self._clock(), task_id),
        ).rowcount
        if not changed:
            return None
        task = self._task(db, task_id)
        return task, self._append_event(db, task.id, "started", {"attempt": task.attempts})

    def _finish(
        self,
        db: sqlite3.Connection,
        task_id: str,
        status: str,
        usage: Usage | None,
        *,
        allow_queued: bool = False,
        **columns: str,
    ) -> bool:
        """End the task (and record its usage in the ledger; none given: it never ran)."""
        allowed = ("running", "queued") if allow_queued else ("running",)
        now = self._clock()
        assignments = "".join(f", {name} = ?" for name in columns)
        changed = db.execute(
            f"UPDATE tasks SET status = ?, completed_at = ?, expires_at = ?{assignments} "
            f"WHERE id = ? AND status IN ({', '.join('?' for _ in allowed)})",
            (status, now, now + self.retention_seconds, *columns.values(), task_id, *allowed),
        ).rowcount
        if changed:  # inputs are not needed once a task has ended
            db.execute("DELETE FROM task_inputs WHERE task_id = ?", (task_id,))
            self.ledger.record(db, task_id, usage or no_usage(self._currency), now)
        return bool(changed)

    def _append_event(
        self, db: sqlite3.Connection, task_id: str, type_: str, data: dict[str, Any]
    ) -> TaskEvent:
        seq = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM task_events WHERE task_id = ?", (task_id,)
        ).fetchone()[0]
        event = TaskEvent.model_validate(
            {"task_id": task_id, "seq": seq, "type": type_, "data": data, "created_at": self._clock()}
        )
        db.execute(
            "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, seq, type_, json.dumps(data), event.created_at),
        )
        self._queue_webhook(db, event)
        return event

    def _queue_webhook(self, db: sqlite3.Connection, event: TaskEvent) -> None:
        """An outbox row in the event's own transaction: a webhook is sent if and only if the
        event happened (at least once, with the same ``webhook-id`` on every attempt)."""
        if self._webhook_body is None or not self._wants_webhook(db, event):
            return
        task = self._task(db, event.task_id)  # read whole only for a webhook that will be sent
        if task.webhook_url is None or self.outbox.is_gone(task.id, task.webhook_url):
            return
        db.execute(
            "INSERT INTO webhook_outbox (id, task_id, url, event_type, body, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                f"msg_{task.id}_{event.seq}",
                task.id,
                task.webhook_url,
                event.type,
                self._webhook_body(task, event),
                event.created_at,
                event.created_at,
            ),
        )

    def _wants_webhook(self, db: sqlite3.Connection, event: TaskEvent) -> bool:
        """Whether the task has a webhook for this event type (two columns: this runs on every
        progress step of every task)."""
        row = db.execute(
            "SELECT webhook_url, webhook_events FROM tasks WHERE id = ?", (event.task_id,)
        ).fetchone()
        if row is None or row["webhook_url"] is None:
            return False
        if row["webhook_events"] and event.type not in json.loads(row["webhook_events"]):
            return False
        return not (event.type == "progress" and self._progress_sent_recently(db, event.task_id))

    def _progress_sent_recently(self, db: sqlite3.Connection, task_id: str) -> bool:
        row = db.execute(
            "SELECT MAX(created_at) FROM webhook_outbox WHERE task_id = ? AND event_type = 'progress'",
            (task_id,),
        ).fetchone()
        return row[0] is not None and self._clock() - row[0] < PROGRESS_WEBHOOK_INTERVAL

    def _position(self, db: sqlite3.Connection, task_id: str) -> int | None:
        row = db.execute(
            "SELECT COUNT(*) FROM tasks WHERE status = 'queued' AND queue_order <= "
            "(SELECT queue_order FROM tasks WHERE id = ? AND status = 'queued')",
            (task_id,),
        ).fetchone()
        return int(row[0]) or None

    def _task(self, db: sqlite3.Connection, task_id: str) -> Task:
        row = db.execute(TASK_QUERY, (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"task {task_id!r} does not exist or has expired; finished tasks are kept "
                f"{self.retention_seconds:g} seconds",
                field="task_id",
            )
        return _task(row)


def _task(row: sqlite3.Row) -> Task:
    request = json.loads(row["request"])
    inputs = len(request.get("input_labels", []))
    return Task(
        id=row["id"],
        status=row["status"],
        model=row["model"],
        engine=row["engine"],
        source=row["source"],
        request=request,
        input_count=inputs,
        attempts=row["attempts"],
        cancel_requested=bool(row["cancel_requested"]),
        webhook_url=row["webhook_url"],
        webhook_events=tuple(json.loads(row["webhook_events"])) if row["webhook_events"] else None,
        result=TaskResult.model_validate_json(row["result"]) if row["result"] else None,
        error=TaskError.model_validate_json(row["error"]) if row["error"] else None,
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        expires_at=row["expires_at"],
        api_key_id=row["api_key_id"],
        usage=_usage(row),
    )


def _usage(row: sqlite3.Row) -> Usage | None:
    if row["usage_images"] is None:  # not ended yet (or ended before the ledger existed)
        return None
    tokens = TokenUsage(
        input_text=row["usage_input_text"], input_image=row["usage_input_image"], output=row["usage_output"]
    )
    return Usage(
        tokens=tokens,
        images=row["usage_images"],
        device_seconds=row["usage_device_seconds"],
        cost=Cost(amount=row["usage_cost"], currency=row["usage_currency"]),
        provenance_seconds=row["usage_provenance_seconds"],
    )


def _event(row: sqlite3.Row) -> TaskEvent:
    return TaskEvent.model_validate(
        {
            "task_id": row["task_id"],
            "seq": row["seq"],
            "type": row["type"],
            "data": json.loads(row["data"]),
            "created_at": row["created_at"],
        }
    )


def _exhausted(attempts: int) -> TaskError:
    return TaskError(
        code="attempts_exhausted",
        message=f"the task was interrupted {attempts} times (the server stopped while it ran); "
        "it is not retried again",
        status=500,
    )
