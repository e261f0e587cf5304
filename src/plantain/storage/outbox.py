"""The webhook outbox: messages written in the same transaction as the task events they announce
(see :meth:`TaskStore._queue_webhook`), then sent and marked here by the webhook deliverer.

Any process may send the outbox's messages (every front door of a cluster does): handing a message
out claims it until ``claimed_until``, so two senders never send it at the same time; a sender that
dies leaves its claim to run out, and the message goes out again from another.

A message is ``pending`` until it is ``delivered`` (a 2xx), ``gone`` (the receiver answered 410,
which disables the URL for the rest of that task) or ``failed`` (its attempts ran out). Messages of
one task are handed out in order, one at a time, so a receiver never sees ``completed`` before the
``started`` that a retry is still holding back.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantain.storage.db import Database, Row


@dataclass(frozen=True)
class OutboxMessage:
    id: str  # the stable webhook-id: the same on every attempt
    task_id: str
    url: str
    event_type: str
    body: str
    attempts: int  # deliveries tried so far
    status: str
    last_error: str | None
    created_at: float


class Outbox:
    """Reads and marks outbox rows; shares the task store's connection and lock."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def due(self, now: float, limit: int, claim_seconds: float = 60.0) -> list[OutboxMessage]:
        """Pending messages whose time has come, at most one per task (its oldest), claimed for
        ``claim_seconds`` (longer than a delivery attempt can take) by the caller."""
        with self._database.transaction() as db:
            rows = db.execute(
                "SELECT * FROM webhook_outbox AS o WHERE status = 'pending' AND next_attempt_at <= ? "
                "AND (claimed_until IS NULL OR claimed_until <= ?) "
                "AND NOT EXISTS (SELECT 1 FROM webhook_outbox AS e WHERE e.task_id = o.task_id "
                "AND e.status = 'pending' AND e.rowid < o.rowid) "
                "ORDER BY next_attempt_at, rowid LIMIT ?",
                (now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE webhook_outbox SET claimed_until = ? WHERE id = ?",
                [(now + claim_seconds, row["id"]) for row in rows],
            )
        return [_message(row) for row in rows]

    def delivered(self, message_id: str) -> None:
        self._mark(message_id, "delivered", None)

    def retry_at(self, message_id: str, when: float, error: str) -> None:
        """Count a failed attempt and schedule the next one."""
        with self._database.read() as db:
            db.execute(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                "claimed_until = NULL "
                "WHERE id = ? AND status = 'pending'",
                (when, error, message_id),
            )

    def give_up(self, message_id: str, error: str) -> None:
        self._mark(message_id, "failed", error)

    def gone(self, message: OutboxMessage, error: str) -> None:
        """The receiver said 410 Gone: this and every later message of the task to that URL stop."""
        with self._database.read() as db:
            db.execute(
                "UPDATE webhook_outbox SET status = 'gone', last_error = ?, "
                "attempts = attempts + CASE WHEN id = ? THEN 1 ELSE 0 END "
                "WHERE task_id = ? AND url = ? AND status = 'pending'",
                (error, message.id, message.task_id, message.url),
            )

    def is_gone(self, task_id: str, url: str) -> bool:
        """Whether the receiver of this task's webhooks answered 410 (nothing more is queued)."""
        with self._database.read() as db:
            row = db.execute(
                "SELECT 1 FROM webhook_outbox WHERE task_id = ? AND url = ? AND status = 'gone' LIMIT 1",
                (task_id, url),
            ).fetchone()
        return row is not None

    def messages(self, task_id: str) -> list[OutboxMessage]:
        """Every message of a task, oldest first (for inspection and tests)."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT * FROM webhook_outbox WHERE task_id = ? ORDER BY rowid", (task_id,)
            ).fetchall()
        return [_message(row) for row in rows]

    def pending_count(self) -> int:
        with self._database.read() as db:
            row = db.execute("SELECT COUNT(*) FROM webhook_outbox WHERE status = 'pending'").fetchone()
        return int(row[0])

    def expire(self) -> int:
        """Forget settled messages of tasks that retention has deleted (pending ones are kept until
        they are delivered or given up)."""
        with self._database.read() as db:
            return int(
                db.execute(
                    "DELETE FROM webhook_outbox WHERE status != 'pending' "
                    "AND task_id NOT IN (SELECT id FROM tasks)"
                ).rowcount
            )

    def _mark(self, message_id: str, status: str, error: str | None) -> None:
        with self._database.read() as db:
            db.execute(
                "UPDATE webhook_outbox SET status = ?, attempts = attempts + 1, last_error = ? "
                "WHERE id = ? AND status = 'pending'",
                (status, error, message_id),
            )


def _message(row: Row) -> OutboxMessage:
    return OutboxMessage(
        id=row["id"],
        task_id=row["task_id"],
        url=row["url"],
        event_type=row["event_type"],
        body=row["body"],
        attempts=row["attempts"],
        status=row["status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
    )
