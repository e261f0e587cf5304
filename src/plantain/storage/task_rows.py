"""Rows of the task tables read and written inside a transaction: tasks and their numbered
events, and the webhook outbox row an event queues in the same transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from plantain.errors import NotFoundError
from plantain.storage.db import Connection, Row
from plantain.storage.outbox import Outbox
from plantain.types import Cost, Task, TaskError, TaskEvent, TaskResult, TokenUsage, Usage

WebhookBody = Callable[[Task, TaskEvent], str]
"""Renders the JSON body of a webhook for an event (the task API's shape; the store stays neutral)."""

PROGRESS_WEBHOOK_INTERVAL = 0.5  # seconds between progress webhooks of one task (as Replicate)

# A task with its ledger row (the usage it reported when it ended), if it has one.
TASK_QUERY = (
    "SELECT t.*, u.images AS usage_images, u.input_text_tokens AS usage_input_text, "
    "u.input_image_tokens AS usage_input_image, u.output_tokens AS usage_output, "
    "u.device_seconds AS usage_device_seconds, u.cost AS usage_cost, u.currency AS usage_currency, "
    "u.provenance_seconds AS usage_provenance_seconds, u.served_by AS usage_served_by, "
    "u.planner_seconds AS usage_planner_seconds, u.planner_input_tokens AS usage_planner_input_tokens, "
    "u.planner_output_tokens AS usage_planner_output_tokens, u.search_seconds AS usage_search_seconds, "
    "u.searches AS usage_searches "
    "FROM tasks AS t LEFT JOIN usage_ledger AS u ON u.task_id = t.id WHERE t.id = ?"
)


class TaskRows:
    """Reads a task and appends its events (with their webhooks) on a connection in a transaction."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        retention_seconds: float,
        webhook_body: WebhookBody | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.retention_seconds = retention_seconds
        self.clock = clock
        self._webhook_body = webhook_body

    def task(self, db: Connection, task_id: str) -> Task:
        """The task, or NotFoundError (also for an expired one)."""
        row = db.execute(TASK_QUERY, (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(
                f"task {task_id!r} does not exist or has expired; finished tasks are kept "
                f"{self.retention_seconds:g} seconds",
                field="task_id",
            )
        return _task(row)

    def append_event(self, db: Connection, task_id: str, type_: str, data: dict[str, Any]) -> TaskEvent:
        seq = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM task_events WHERE task_id = ?", (task_id,)
        ).fetchone()[0]
        event = TaskEvent.model_validate(
            {"task_id": task_id, "seq": seq, "type": type_, "data": data, "created_at": self.clock()}
        )
        db.execute(
            "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (?, ?, ?, ?, ?)",
            (task_id, seq, type_, json.dumps(data), event.created_at),
        )
        self._queue_webhook(db, event)
        return event

    def _queue_webhook(self, db: Connection, event: TaskEvent) -> None:
        """An outbox row in the event's own transaction: a webhook is sent if and only if the
        event happened (at least once, with the same ``webhook-id`` on every attempt)."""
        if self._webhook_body is None or not self._wants_webhook(db, event):
            return
        task = self.task(db, event.task_id)  # read whole only for a webhook that will be sent
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

    def _wants_webhook(self, db: Connection, event: TaskEvent) -> bool:
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

    def _progress_sent_recently(self, db: Connection, task_id: str) -> bool:
        row = db.execute(
            "SELECT MAX(created_at) FROM webhook_outbox WHERE task_id = ? AND event_type = 'progress'",
            (task_id,),
        ).fetchone()
        return row[0] is not None and self.clock() - row[0] < PROGRESS_WEBHOOK_INTERVAL


def position(db: Connection, task_id: str) -> int | None:
    """1 for the next task to run; None once it is no longer queued."""
    row = db.execute(
        "SELECT COUNT(*) FROM tasks WHERE status = 'queued' AND queue_order <= "
        "(SELECT queue_order FROM tasks WHERE id = ? AND status = 'queued')",
        (task_id,),
    ).fetchone()
    return int(row[0]) or None


def _task(row: Row) -> Task:
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


def _usage(row: Row) -> Usage | None:
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
        served_by=row["usage_served_by"],
        planner_seconds=row["usage_planner_seconds"],
        planner_input_tokens=row["usage_planner_input_tokens"],
        planner_output_tokens=row["usage_planner_output_tokens"],
        search_seconds=row["usage_search_seconds"],
        searches=row["usage_searches"],
    )


def event_of(row: Row) -> TaskEvent:
    return TaskEvent.model_validate(
        {
            "task_id": row["task_id"],
            "seq": row["seq"],
            "type": row["type"],
            "data": json.loads(row["data"]),
            "created_at": row["created_at"],
        }
    )
