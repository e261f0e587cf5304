"""Claims are leases: a worker holds each task it runs for ``lease_seconds`` and renews the lease
while it works on it (the engine run, then finishing). A task whose lease runs out (its worker was
killed, hung, or lost its connection to the store) is queued again at the head of the queue, and
the next claim runs it as a new attempt; after ``max_attempts`` it fails instead.

Every end a worker records names the attempt it claimed (``TaskRuns``' ``attempt``), so a worker
that lost its lease cannot record anything for the task once another run has it.
"""

from __future__ import annotations

from collections.abc import Mapping

from plantain.storage.db import Database
from plantain.storage.runs import TaskRuns, exhausted
from plantain.storage.task_rows import TaskRows
from plantain.types import TaskEvent

LOST_LEASE = "its worker stopped renewing its lease (killed, hung or cut off)"


class TaskLeases:
    def __init__(self, database: Database, rows: TaskRows, runs: TaskRuns) -> None:
        self._database = database
        self._rows = rows
        self._runs = runs

    def renew(self, held: Mapping[str, int]) -> list[str]:
        """Extend the leases of ``held`` (task id -> the attempt its worker claimed); returns the
        ids whose lease is no longer this attempt's (ended, or taken by another run)."""
        lost = []
        until = self._rows.clock() + self._runs.lease_seconds
        with self._database.read() as db:
            for task_id, attempt in held.items():
                changed = db.execute(
                    "UPDATE tasks SET lease_until = ? WHERE id = ? AND status = 'running' AND attempts = ?",
                    (until, task_id, attempt),
                ).rowcount
                if not changed:
                    lost.append(task_id)
        return lost

    def cancel_requested(self, task_ids: list[str]) -> list[str]:
        """Which of the running ``task_ids`` a caller asked to cancel (their worker stops them)."""
        if not task_ids:
            return []
        marks = ", ".join("?" for _ in task_ids)
        with self._database.read() as db:
            rows = db.execute(
                f"SELECT id FROM tasks WHERE id IN ({marks}) AND cancel_requested = 1", task_ids
            ).fetchall()
        return [row["id"] for row in rows]

    def reclaim_expired(self, max_attempts: int) -> tuple[list[TaskEvent], list[TaskEvent]]:
        """Queue again the running tasks whose lease ran out, or fail those that have used
        ``max_attempts``. Returns the events of both: (queued again, failed)."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT id, attempts FROM tasks WHERE status = 'running' AND lease_until < ? "
                "ORDER BY queue_order",
                (self._rows.clock(),),
            ).fetchall()
        requeued, failed = [], []
        for row in rows:
            if row["attempts"] < max_attempts:
                event = self._runs.requeue(row["id"], LOST_LEASE, attempt=row["attempts"])
                requeued += [event] if event is not None else []
            else:
                event = self._runs.fail(row["id"], exhausted(row["attempts"]), attempt=row["attempts"])
                failed += [event] if event is not None else []
        return requeued, failed
