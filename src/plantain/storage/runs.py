"""The worker's side of the task store: claiming queued tasks, recording their steps and ends,
recovery after a crash, and retention. Every state change is one transaction with its event."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from typing import Any

from plantain.storage.blobs import Blobs
from plantain.storage.db import Connection, Database
from plantain.storage.ledger import UsageLedger
from plantain.storage.task_rows import TaskRows, position
from plantain.storage.uploads import Uploads
from plantain.types import Task, TaskError, TaskEvent, TaskResult, Usage
from plantain.usage import no_usage


class TaskRuns:
    def __init__(
        self,
        database: Database,
        rows: TaskRows,
        ledger: UsageLedger,
        blobs: Blobs,
        currency: str,
        lease_seconds: float = 30.0,
        uploads: Uploads | None = None,
    ) -> None:
        self._database = database
        self._uploads = uploads  # expired with the results, spared by the orphan sweep
        self._rows = rows
        self._ledger = ledger
        self._blobs = blobs
        self._currency = currency  # of the zero cost of a task that never ran
        self.lease_seconds = lease_seconds  # a claim holds its task this long unless renewed

    def claim_next(self, engines: Collection[str] | None = None) -> tuple[Task, TaskEvent] | None:
        """The oldest queued task (of one of ``engines``, when given: a worker's pool), now
        running with its attempt counted and its lease taken, with its 'started' event. One
        statement claims it; on PostgreSQL its row is locked and skipped by other claims."""
        if engines is not None and not engines:
            return None
        where = "" if engines is None else f" AND engine IN ({', '.join('?' for _ in engines)})"
        with self._database.transaction() as db:
            now = self._rows.clock()
            row = db.execute(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ?, "
                "lease_until = ? WHERE id = (SELECT id FROM tasks WHERE status = 'queued'"
                f"{where} ORDER BY queue_order LIMIT 1{self._database.skip_locked}) RETURNING id",
                (now, now + self.lease_seconds, *(engines or ())),
            ).fetchone()
            return None if row is None else self._started(db, row["id"])

    def claim(self, task_id: str) -> tuple[Task, TaskEvent] | None:
        """``task_id`` as :meth:`claim_next` claims it, if it is still queued (else None)."""
        claimed = self.claim_all([task_id])
        return claimed[0] if claimed else None

    def claim_all(self, task_ids: list[str]) -> list[tuple[Task, TaskEvent]]:
        """Those of ``task_ids`` still queued, claimed together in one statement (tasks joining a
        batch that an older task leads), in queue order, each with its 'started' event."""
        if not task_ids:
            return []
        marks = ", ".join("?" for _ in task_ids)
        with self._database.transaction() as db:
            now = self._rows.clock()
            rows = db.execute(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ?, "
                f"lease_until = ? WHERE id IN (SELECT id FROM tasks WHERE id IN ({marks}) "
                f"AND status = 'queued'{self._database.skip_locked}) RETURNING id, queue_order",
                (now, now + self.lease_seconds, *task_ids),
            ).fetchall()
            return [self._started(db, row["id"]) for row in sorted(rows, key=lambda row: row["queue_order"])]

    def queued_ids(self, engine: str, limit: int) -> list[str]:
        """Up to ``limit`` queued tasks for ``engine``, oldest first (candidates to join a batch)."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT id FROM tasks WHERE status = 'queued' AND engine = ? ORDER BY queue_order LIMIT ?",
                (engine, limit),
            ).fetchall()
        return [row["id"] for row in rows]

    def add_event(
        self, task_id: str, type_: str, data: dict[str, Any], attempt: int | None = None
    ) -> TaskEvent | None:
        """An event of a running task; None (nothing written) once ``attempt`` is no longer its run."""
        with self._database.transaction() as db:
            if attempt is not None and not _runs(db, task_id, attempt):
                return None
            return self._rows.append_event(db, task_id, type_, data)

    def new_file_id(self) -> str:
        return secrets.token_urlsafe(24)

    def succeed(
        self,
        task_id: str,
        result: TaskResult,
        event_data: dict[str, Any],
        usage: Usage,
        attempt: int | None = None,
    ) -> TaskEvent | None:
        """running -> succeeded with its files and usage recorded; None (and nothing written) if the
        task is no longer running, or no longer in ``attempt`` (its lease ran out and another run
        took it), so a result can never be recorded twice."""
        with self._database.transaction() as db:
            outcome = result.model_dump_json()
            if not self.finish(db, task_id, "succeeded", usage, attempt=attempt, result=outcome):
                return None
            now = self._rows.clock()
            db.executemany(
                "INSERT INTO files (id, task_id, media_type, created_at) VALUES (?, ?, ?, ?)",
                [(out.file_id, task_id, out.media_type, now) for out in result.outputs],
            )
            return self._rows.append_event(db, task_id, "completed", event_data)

    def fail(
        self, task_id: str, error: TaskError, usage: Usage | None = None, attempt: int | None = None
    ) -> TaskEvent | None:
        """queued/running -> failed, with the device time its run used; None if it had already
        ended (or ``attempt`` is no longer its run)."""
        with self._database.transaction() as db:
            reason = error.model_dump_json()
            if not self.finish(
                db, task_id, "failed", usage, allow_queued=True, attempt=attempt, error=reason
            ):
                return None
            return self._rows.append_event(db, task_id, "failed", error.model_dump())

    def mark_cancelled(
        self, task_id: str, step: int | None, usage: Usage | None = None, attempt: int | None = None
    ) -> TaskEvent | None:
        """running -> cancelled, by the worker that stopped it (with the device time it used)."""
        with self._database.transaction() as db:
            if not self.finish(db, task_id, "cancelled", usage, attempt=attempt):
                return None
            return self._rows.append_event(db, task_id, "cancelled", {"while": "running", "step": step})

    def requeue(self, task_id: str, reason: str, attempt: int | None = None) -> TaskEvent | None:
        """running -> queued, keeping its place at the head of the queue (a drain, a restart, a
        lost lease); None if it is no longer running (in ``attempt``)."""
        with self._database.transaction() as db:
            changed = db.execute(
                "UPDATE tasks SET status = 'queued', started_at = NULL, lease_until = NULL "
                "WHERE id = ? AND status = 'running' AND attempts = COALESCE(?, attempts)",
                (task_id, attempt),
            ).rowcount
            if not changed:
                return None
            data = {"position": position(db, task_id), "requeued": reason}
            return self._rows.append_event(db, task_id, "queued", data)

    def recover(self, max_attempts: int) -> tuple[list[str], list[str]]:
        """At start: tasks left running by a process that died run again, or fail once they have
        used ``max_attempts``. Returns (requeued ids, failed ids)."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT id, attempts FROM tasks WHERE status = 'running' ORDER BY queue_order"
            ).fetchall()
        requeued, failed = [], []
        for row in rows:
            if row["attempts"] < max_attempts:
                self.requeue(row["id"], "the server stopped during the run")
                requeued.append(row["id"])
            else:
                self.fail(row["id"], exhausted(row["attempts"]))
                failed.append(row["id"])
        return requeued, failed

    def expire(self) -> int:
        """Delete tasks whose results have expired, with their events, inputs and files."""
        with self._database.transaction() as db:
            now = self._rows.clock()
            rows = db.execute(
                "SELECT id FROM files WHERE task_id IN (SELECT id FROM tasks WHERE expires_at <= ?)", (now,)
            ).fetchall()
            count = db.execute("DELETE FROM tasks WHERE expires_at <= ?", (now,)).rowcount
        for row in rows:
            self._blobs.delete(row["id"])
        self._rows.outbox.expire()
        if self._uploads is not None:  # Gemini Files API uploads live as long as results do
            self._uploads.expire()
        return int(count)

    def sweep_orphan_files(self) -> int:
        """Delete output files no task records (written by a run that died before committing).
        Only for a store no other process writes to: in a cluster, another worker's file may be
        written but not yet recorded."""
        stored = self._blobs.keys()
        with self._database.read() as db:
            known = {row["id"] for row in db.execute("SELECT id FROM files")}
        known |= self._uploads.keys() if self._uploads is not None else set()  # uploads are not orphans
        orphans = [key for key in stored if key not in known]
        for key in orphans:
            self._blobs.delete(key)
        return len(orphans)

    def finish(
        self,
        db: Connection,
        task_id: str,
        status: str,
        usage: Usage | None,
        *,
        allow_queued: bool = False,
        attempt: int | None = None,
        **columns: str,
    ) -> bool:
        """End the task in ``db``'s transaction (and record its usage in the ledger; none given:
        it never ran). False when it was not in a state it may end from, or when ``attempt`` is
        given and is no longer its run."""
        allowed = ("running", "queued") if allow_queued else ("running",)
        now = self._rows.clock()
        assignments = "".join(f", {name} = ?" for name in columns)
        expires = now + self._rows.retention_seconds
        changed = db.execute(
            f"UPDATE tasks SET status = ?, completed_at = ?, expires_at = ?{assignments} "
            f"WHERE id = ? AND status IN ({', '.join('?' for _ in allowed)}) "
            "AND attempts = COALESCE(?, attempts)",
            (status, now, expires, *columns.values(), task_id, *allowed, attempt),
        ).rowcount
        if changed:  # inputs are not needed once a task has ended
            db.execute("DELETE FROM task_inputs WHERE task_id = ?", (task_id,))
            self._ledger.record(db, task_id, usage or no_usage(self._currency), now)
        return bool(changed)

    def _started(self, db: Connection, task_id: str) -> tuple[Task, TaskEvent]:
        """A task just claimed in ``db``'s transaction, with its 'started' event."""
        task = self._rows.task(db, task_id)
        return task, self._rows.append_event(db, task.id, "started", {"attempt": task.attempts})


def _runs(db: Connection, task_id: str, attempt: int) -> bool:
    """Whether ``task_id`` is running in ``attempt`` (its claim has not passed to another run)."""
    row = db.execute("SELECT status, attempts FROM tasks WHERE id = ?", (task_id,)).fetchone()
    return row is not None and row["status"] == "running" and row["attempts"] == attempt


def exhausted(attempts: int) -> TaskError:
    return TaskError(
        code="attempts_exhausted",
        message=f"the task was interrupted {attempts} times (its server stopped or its worker lost "
        "its lease while it ran); it is not retried again",
        status=500,
    )
