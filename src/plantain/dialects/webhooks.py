"""Webhook bodies in the shape of the dialect each task came in by (``Task.source``).

The store asks one renderer for every message it queues (``storage/task_rows.WebhookBody``); this
one picks the dialect's own: inference.sh's terminal body for a task submitted through its app
API, the task API's Standard Webhooks body ``{type, timestamp, data}`` for every other. A dialect
with a webhook shape of its own adds one entry to :func:`webhook_renderer`'s table. Every body is
signed the same way, by the deliverer.
"""

from __future__ import annotations

from plantain.dialects.inference_sh import convert as inference_sh_convert
from plantain.dialects.inference_sh import render as inference_sh_render
from plantain.dialects.native import convert as tasks_convert
from plantain.storage.task_rows import WebhookBody
from plantain.types import Task, TaskEvent


def webhook_renderer(base: str) -> WebhookBody:
    """Bodies for a server reached at ``base`` (their file links start with it)."""

    def file_url(file_id: str) -> str:
        return f"{base}/v1/files/{file_id}"

    def inference_sh(task: Task, event: TaskEvent) -> str:
        return inference_sh_render.webhook_body(task, file_url)

    by_source: dict[str, WebhookBody] = {inference_sh_convert.SOURCE: inference_sh}
    native = tasks_convert.webhook_renderer(base)

    def render(task: Task, event: TaskEvent) -> str:
        return by_source.get(task.source, native)(task, event)

    return render
