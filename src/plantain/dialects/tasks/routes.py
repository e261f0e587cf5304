"""The task API: ``/v1/tasks`` (submit, get, list, cancel) and ``/v1/tasks/{id}/events`` (SSE).

Submissions go to the same scheduler as every dialect. ``Prefer: wait[=N]`` holds the answer
until the task ends (201) or N seconds pass (202, the task as it is); without it the answer is
202 at once. ``Idempotency-Key`` with the same body answers the first task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from plantain.dialects.tasks import convert
from plantain.dialects.tasks.protocol import TaskInput
from plantain.errors import InvalidRequestError
from plantain.fetch import fetch_all
from plantain.netguard import resolve_target
from plantain.scheduler import Scheduler
from plantain.scheduler.scheduler import Submission
from plantain.types import TASK_STATUSES, TERMINAL_EVENTS, InputImage, Task
from plantain.usage import caller_key_id

router = APIRouter(tags=["tasks"])

MAX_WAIT_SECONDS = 60.0  # Prefer: wait caps here, as Replicate's does
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait(?:=(\d+(?:\.\d+)?))?(?:$|[,;\s])")
MAX_PAGE = 100
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often while a task waits or runs a long step


@router.post("/v1/tasks")
async def create_task(request: Request) -> Response:
    scheduler = _scheduler(request)
    raw = await request.body()
    body, fingerprint = convert.parse_create(raw)
    if body.webhook is not None:
        allowed = scheduler.settings.allowed_hosts
        await asyncio.to_thread(resolve_target, body.webhook, field="webhook", allow=allowed)
    submission = Submission(
        model=body.model,
        source="tasks",
        idempotency_key=request.headers.get("idempotency-key"),
        fingerprint=fingerprint,
        webhook_url=body.webhook,
        webhook_events=tuple(body.webhook_events_filter) if body.webhook_events_filter is not None else None,
        api_key_id=caller_key_id(request),
    )
    images = await _input_images(body.input, scheduler)
    task, created = await scheduler.submit(convert.to_image_request(body.input, images), submission)
    wait = _prefer_wait(request.headers.get("prefer", ""))
    if wait is not None:
        task = await scheduler.wait(task.id, timeout=wait)
    response = _task_response(request, task, status=201 if task.finished else 202)
    if not created:
        response.headers["idempotent-replayed"] = "true"
    return response


async def _input_images(body: TaskInput, scheduler: Scheduler) -> list[InputImage]:
    """Inline images decoded, URL ones fetched (all at once, each in a worker thread)."""
    sources = convert.image_sources(body, scheduler.limits)
    urls = {convert.image_label(i): source for i, source in enumerate(sources) if isinstance(source, str)}
    fetched = await fetch_all(urls, scheduler.fetch_limits)
    images = []
    for index, source in enumerate(sources):
        label = convert.image_label(index)
        images.append(InputImage(data=fetched[label], label=label) if isinstance(source, str) else source)
    return images


@router.get("/v1/tasks")
async def list_tasks(
    request: Request, status: str | None = None, limit: int = 20, cursor: str | None = None
) -> JSONResponse:
    if status is not None and status not in TASK_STATUSES:
        raise InvalidRequestError(
            f"status: {status!r} is not a task status; use one of {', '.join(TASK_STATUSES)}", field="status"
        )
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(
            f"limit: {limit} is not allowed; must be between 1 and {MAX_PAGE}", field="limit"
        )
    tasks, next_cursor = _scheduler(request).store.page(status=status, limit=limit, before=cursor)
    data = [_body(request, task) for task in tasks]
    return JSONResponse({"object": "list", "data": data, "next_cursor": next_cursor})


@router.get("/v1/tasks/{task_id}")
async def get_task(request: Request, task_id: str) -> JSONResponse:
    return _task_response(request, _scheduler(request).store.get(task_id))


@router.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: str) -> JSONResponse:
    """Idempotent: a queued task ends at once, a running one at its next step, an ended one stays."""
    return _task_response(request, _scheduler(request).cancel(task_id), status=202)


@router.get("/v1/tasks/{task_id}/events")
async def task_events(request: Request, task_id: str) -> StreamingResponse:
    scheduler = _scheduler(request)
    scheduler.store.get(task_id)  # a 404 before the stream starts
    after = _last_event_id(request.headers.get("last-event-id"))
    file_url = _file_url(request)
    return StreamingResponse(_events(scheduler, task_id, after, file_url), media_type="text/event-stream")


async def _events(
    scheduler: Scheduler, task_id: str, after: int, file_url: convert.FileURL
) -> AsyncIterator[str]:
    """Stored events after ``after``, then live ones, until the task's last event."""
    with scheduler.bus.subscribe(task_id) as live:  # subscribe first: nothing falls in between
        last = after
        for event in scheduler.store.events_after(task_id, after):
            yield convert.sse(event, file_url)
            last = event.seq
            if event.type in TERMINAL_EVENTS:
                return
        while True:
            try:
                event = await asyncio.wait_for(live.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"  # a comment: clients ignore it; proxies see a live stream
                continue
            if event.seq <= last:
                continue
            for event in scheduler.store.events_after(task_id, last):  # the store fills any gap
                yield convert.sse(event, file_url)
                last = event.seq
                if event.type in TERMINAL_EVENTS:
                    return


def _last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    with contextlib.suppress(ValueError):
        return max(0, int(value))
    raise InvalidRequestError(
        f"Last-Event-ID: {value!r} is not an event number; send the id of the last event "
        "received (0 or more)",
        field="Last-Event-ID",
    )


def _prefer_wait(prefer: str) -> float | None:
    """``Prefer: wait`` -> the longest wait; ``wait=N`` -> N seconds (capped); absent -> None."""
    match = _PREFER_WAIT.search(prefer.lower())
    if match is None:
        return None
    return min(float(match.group(1) or MAX_WAIT_SECONDS), MAX_WAIT_SECONDS)


def _task_response(request: Request, task: Task, status: int = 200) -> JSONResponse:
    return JSONResponse(
        _body(request, task), status_code=status, headers={"location": f"/v1/tasks/{task.id}"}
    )


def _body(request: Request, task: Task) -> dict[str, object]:
    position = _scheduler(request).store.queue_position(task.id) if task.status == "queued" else None
    base = str(request.base_url).rstrip("/")
    return convert.task_body(task, _file_url(request), base=base, position=position)


def _file_url(request: Request) -> convert.FileURL:
    return lambda file_id: str(request.url_for("file_content", file_id=file_id))


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler
