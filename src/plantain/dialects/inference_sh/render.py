"""Tasks as inference.sh shows them: the task object (``GET /tasks/{id}``, each stream update),
the image apps' output ``{images, description, output_meta}``, and the webhook body.

Status is their integer enum (``STATUS``), which their SDK parses; ``status_text`` spells it. The
SDK strips a stream update to ``id, status, input, output, logs, created_at, updated_at``, so a
running task's progress rides in ``output`` as ``{"progress": P}`` (as their progress-yielding apps
report it) besides the top-level ``progress`` (0-100) raw clients read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from plantain.dialects.grounding import grounding_object
from plantain.dialects.inference_sh.convert import app_of
from plantain.types import PlanResult, Task, TaskEvent

FileURL = Callable[[str], str]  # file id -> absolute URL

# inference.sh's TaskStatus values (their SDK's ``TaskStatus`` IntEnum).
QUEUED, RUNNING, CANCELLING, COMPLETED, FAILED, CANCELLED = 2, 7, 8, 10, 11, 12
STATUS_TEXT = {
    QUEUED: "queued",
    RUNNING: "running",
    CANCELLING: "cancelling",
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "cancelled",
}
STATUS = {
    "queued": QUEUED,
    "running": RUNNING,
    "succeeded": COMPLETED,
    "failed": FAILED,
    "cancelled": CANCELLED,
}
TIER_NAMES = {"512": "0.5K"}  # Plantain's tier names -> theirs, where they differ


def status_of(task: Task) -> int:
    """Their status for ``task``: a running task asked to stop is ``CANCELLING`` until its next step."""
    if task.status == "running" and task.cancel_requested:
        return CANCELLING
    return STATUS[task.status]


def progress_of(task: Task, events: Iterable[TaskEvent]) -> int:
    """Percent of the run's denoising steps done (100 once it succeeded)."""
    if task.status == "succeeded":
        return 100
    percent = 0
    for event in events:
        step = step_percent(event)
        if step is not None:
            percent = step
        elif event.type in ("queued", "started"):
            percent = 0  # a task queued again after a restart starts over
    return percent


def step_percent(event: TaskEvent) -> int | None:
    """The percent a ``progress`` event with a step count reports (at most 99: 100 is the end);
    None for any other event."""
    if event.type == "progress" and event.data.get("total"):
        return min(int(100 * event.data["step"] / event.data["total"]), 99)
    return None


def task_body(
    task: Task, file_url: FileURL, *, progress: int, updated_at: float | None = None
) -> dict[str, Any]:
    """The task as ``GET /tasks/{id}`` and each stream update show it."""
    status = status_of(task)
    output = output_body(task, file_url) if task.status == "succeeded" else None
    if task.status == "running":
        output = {"progress": progress}
    return {
        "id": task.id,
        "app": app_of(task.model),
        "status": status,
        "status_text": STATUS_TEXT[status],
        "progress": progress,
        "input": input_echo(task),
        "output": output,
        "error": task.error.message if task.error else None,  # their SDK raises it as the message
        "error_detail": task.error.model_dump(exclude_none=True) if task.error else None,
        "logs": [],
        "session_id": None,
        "webhook": task.webhook_url,
        "created_at": iso(task.created_at),
        "updated_at": iso(updated_at or _last_change(task)),
    }


def input_echo(task: Task) -> dict[str, Any]:
    """The input as it ran (the server's choices filled in); images as a count, never their bytes."""
    request = task.request
    return {
        "prompt": request["prompt"],
        "images": task.input_count,
        "num_images": request.get("num_images"),
        "aspect_ratio": request.get("aspect_ratio") or "auto",
        "resolution": _tier(request.get("size")),
        "output_format": request.get("output_format"),
        "seed": request.get("seed"),
        "safety_level": request.get("safety"),
        "ignored": list(request.get("ignored", [])),
    }


def output_body(task: Task, file_url: FileURL) -> dict[str, Any] | None:
    """The image apps' output: image URLs, a description (the planner stage's text, docs/planner.md;
    empty without one: a diffusion model writes no text) and ``output_meta``: what was made, with
    what, by which engine, at what cost."""
    if task.result is None:
        return None
    plan = task.result.plan
    return {
        "images": [file_url(out.file_id) for out in task.result.outputs],
        "description": plan.text if plan is not None else "",
        "output_meta": output_meta(task),
    }


def output_meta(task: Task) -> dict[str, Any]:
    """inference.sh's ``OutputMeta`` (``inputs``/``outputs`` items, their pricing record) plus the
    resolution, the parameters used, the usage and cost and the engine that served, and, when the
    planner stage ran, the prompt the engine got (``revised_prompt``) and the planner's numbers,
    and, when search grounding ran, what it searched and found (``grounding``)."""
    result, usage, request = task.result, task.usage, task.request
    assert result is not None
    inputs: list[dict[str, Any]] = [{"type": "text", "tokens": usage.tokens.input_text if usage else 0}]
    if task.input_count:
        inputs.append(
            {"type": "image", "count": task.input_count, "tokens": usage.tokens.input_image if usage else 0}
        )
    outputs = [
        {
            "type": "image",
            "width": out.width,
            "height": out.height,
            "resolution_mp": round(out.width * out.height / 1_000_000, 3),
            "steps": result.steps,
            "count": 1,
            "extra": {"seed": out.seed, "media_type": out.media_type},
        }
        for out in result.outputs
    ]
    first = result.outputs[0] if result.outputs else None
    return {
        "inputs": inputs,
        "outputs": outputs,
        "resolution": {
            "tier": _tier(request.get("size")),
            "aspect_ratio": request.get("aspect_ratio") or "auto",
            "width": first.width if first else None,
            "height": first.height if first else None,
        },
        "parameters": {
            "num_images": request.get("num_images"),
            "output_format": request.get("output_format"),
            "seed": first.seed if first else request.get("seed"),
            "steps": result.steps,
            "guidance": result.guidance,
            "safety_level": request.get("safety"),
            "ignored": list(request.get("ignored", [])),
        },
        "usage": {
            "images": usage.images if usage else len(result.outputs),
            "tokens": usage.tokens.model_dump() if usage else None,
            "device_seconds": usage.device_seconds if usage else None,
            "seconds": result.seconds,
        },
        "cost": usage.cost.model_dump() if usage else None,  # an estimate at the operator's price
        "model": task.model,
        "served_by": (usage.served_by if usage else None) or result.engine or task.engine,
        **_plan_meta(result.plan),
        **({"grounding": grounding_object(result.grounding)} if result.grounding is not None else {}),
    }


def _plan_meta(plan: PlanResult | None) -> dict[str, Any]:
    """The planner stage's part of ``output_meta``: nothing when it did not run."""
    if plan is None:
        return {}
    numbers = {
        "model": plan.model,
        "seconds": plan.seconds,
        "input_tokens": plan.input_tokens,
        "output_tokens": plan.output_tokens,
    }
    return {"revised_prompt": plan.revised_prompt, "plan": numbers}


def envelope(data: Any, ignored: Iterable[str] = ()) -> dict[str, Any]:
    """Their response envelope ``{data, messages}``; an ignored parameter is a warning message."""
    names = list(ignored)
    messages = (
        [
            {
                "level": "warning",
                "code": "ignored_parameters",
                "message": f"ignored: {', '.join(names)}",
                "meta": {"ignored": names},
            }
        ]
        if names
        else []
    )
    return {"data": data, "messages": messages}


def webhook_body(task: Task, file_url: FileURL) -> str:
    """The body inference.sh POSTs at a task's terminal state (signed like every Plantain webhook)."""
    status = status_of(task)
    body = {
        "id": task.id,
        "status": STATUS_TEXT[status],
        "output": output_body(task, file_url) if task.status == "succeeded" else None,
        "error": task.error.message if task.error else None,
        "session_id": None,
        "created_at": iso(task.created_at),
        "updated_at": iso(_last_change(task)),
    }
    return json.dumps(body, separators=(",", ":"))


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _tier(size: str | None) -> str | None:
    return None if size is None else TIER_NAMES.get(size, size)


def _last_change(task: Task) -> float:
    return task.completed_at or task.started_at or task.created_at
