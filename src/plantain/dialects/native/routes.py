"""The task API: ``/v1/tasks`` (submit, get, list, cancel) and ``/v1/tasks/{id}/events`` (SSE).

Submissions go to the same door as every dialect. ``Prefer: wait[=N]`` holds the answer
until the task ends (201) or N seconds pass (202, the task as it is); without it the answer is
202 at once. ``Idempotency-Key`` with the same body answers the first task again.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.native import convert, errors
from plantain.dialects.native.protocol import TaskCreate
from plantain.dialects.routing import dialect_route
from plantain.errors import InvalidRequestError, NotFoundError
from plantain.net.guard import resolve_target
from plantain.scheduler import FrontDoor
from plantain.scheduler.channel import Subscription
from plantain.scheduler.frontdoor import Submission
from plantain.types import TASK_STATUSES, TERMINAL_EVENTS, Task, TaskEvent

router = APIRouter(tags=["tasks"], route_class=dialect_route(errors.error_body))

Preview = tuple[int, Image.Image]  # a run's n-th in-progress image
MAX_WAIT_SECONDS = 60.0  # Prefer: wait caps here, as Replicate's does
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait(?:=(\d+(?:\.\d+)?))?(?:$|[,;\s])")
MAX_PAGE = 100
MAX_EVENT_ID = 2**63 - 1  # SQLite's largest integer: no event is numbered beyond it
KEEPALIVE_SECONDS = 15.0  # an SSE comment this often while a task waits or runs a long step


@router.post(
    "/v1/tasks",
    openapi_extra=openapi.merge(
        openapi.json_body(TaskCreate),
        openapi.header_parameters({"Prefer": {"type": "string"}, "Idempotency-Key": {"type": "string"}}),
    ),
)
async def create_task(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    raw = await request.body()
    body, fingerprint = convert.parse_create(raw)
    if body.webhook is not None:
        allowed = door.settings.allowed_hosts
        await asyncio.to_thread(resolve_target, body.webhook, field="webhook", allow=allowed)
    submission = Submission(
        model=body.model,
        source="tasks",
        idempotency_key=request.headers.get("idempotency-key"),
        fingerprint=fingerprint,
        webhook_url=body.webhook,
        webhook_events=tuple(body.webhook_events_filter) if body.webhook_events_filter is not None else None,
        api_key_id=caller,
    )
    images = convert.image_sources(body.input, door.limits)  # URLs: fetched once the rest passes
    task, created = await door.submit(convert.to_image_request(body.input, images), submission)
    wait = _prefer_wait(request.headers.get("prefer", ""))
    if wait is not None:
        task = await door.wait(task.id, timeout=wait)
    response = _task_response(request, door, task, status=201 if task.finished else 202)
    if not created:
        response.headers["idempotent-replayed"] = "true"
    return response


@router.get("/v1/tasks")
async def list_tasks(
    request: Request,
    door: FrontDoorDep,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(TASK_STATUSES)})] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,  # out of range: a 400 (dialects/parameters.py)
    cursor: str | None = None,
) -> JSONResponse:
    if status is not None and status not in TASK_STATUSES:
        raise InvalidRequestError(
            f"status: {status!r} is not a task status; use one of {', '.join(TASK_STATUSES)}", field="status"
        )
    try:
        tasks, next_cursor = door.store.page(status=status, limit=limit, before=cursor)
    except NotFoundError:  # the cursor names no task: expired since, or never a page of this list
        raise InvalidRequestError(
            f"cursor: {cursor!r} is not a page of this list (or its task has expired); send the "
            "next_cursor of the previous page, or none for the first page",
            field="cursor",
        ) from None
    data = [_body(request, door, task) for task in tasks]
    return JSONResponse({"object": "list", "data": data, "next_cursor": next_cursor})


@router.get("/v1/tasks/{task_id}")
async def get_task(request: Request, door: FrontDoorDep, task_id: str) -> JSONResponse:
    return _task_response(request, door, door.store.get(task_id))


@router.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(request: Request, door: FrontDoorDep, task_id: str) -> JSONResponse:
    """Idempotent: a queued task ends at once, a running one at its next step, an ended one stays."""
    return _task_response(request, door, door.cancel(task_id), status=202)


@router.get(
    "/v1/tasks/{task_id}/events",
    openapi_extra=openapi.header_parameters({"Last-Event-ID": {"type": "integer", "minimum": 0}}),
)
async def task_events(request: Request, door: FrontDoorDep, task_id: str) -> Response:
    task = door.store.get(task_id)  # a 404 before the stream starts
    after = _last_event_id(request.headers.get("last-event-id"))
    if task.finished and not door.store.events_after(task_id, after):
        # Resumed at or past the end: 204 is how SSE tells a client (EventSource, which
        # reconnects after every close) that there is nothing more, so it stops reconnecting.
        return Response(status_code=204)
    file_url = _file_url(request)
    return StreamingResponse(_events(door, task_id, after, file_url), media_type="text/event-stream")


async def _events(door: FrontDoor, task_id: str, after: int, file_url: convert.FileURL) -> AsyncIterator[str]:
    """Stored events after ``after``, then live ones, until the task's last event; at once when
    that is at or before ``after`` (a resume past the end of a task that ended meanwhile).
    Previews (``input.previews``) come live between them, as ``preview`` events without an id:
    they are not stored, so a resumed stream has none of those it missed."""
    loop = asyncio.get_running_loop()
    previews: asyncio.Queue[Preview] = asyncio.Queue()

    def on_preview(index: int, image: Image.Image) -> None:  # on the worker's thread
        loop.call_soon_threadsafe(previews.put_nowait, (index, image))

    # subscribe first: nothing falls in between
    with door.subscribe(task_id) as live, door.channel.watch_previews(task_id, on_preview):
        ended = door.store.get(task_id).finished  # read after subscribing: a later end comes live
        last = after
        while True:
            for event in door.store.events_after(task_id, last):  # the store fills any gap
                yield convert.sse(event, file_url)
                last = event.seq
                if event.type in TERMINAL_EVENTS:
                    return
            if ended:
                return  # its last event was at or before ``after``: nothing more will come
            arrived = await _next_live(live, previews)
            if arrived is None:
                yield ": keep-alive\n\n"  # a comment: clients ignore it; proxies see a live stream
            elif isinstance(arrived, tuple):
                yield await asyncio.to_thread(convert.preview_sse, *arrived)  # encoding off the loop
            else:
                ended = arrived.type in TERMINAL_EVENTS


async def _next_live(live: Subscription, previews: asyncio.Queue[Preview]) -> TaskEvent | Preview | None:
    """The next live event or preview, or None once ``KEEPALIVE_SECONDS`` pass without either."""
    if not previews.empty():
        return previews.get_nowait()
    event = asyncio.ensure_future(live.get())
    preview = asyncio.ensure_future(previews.get())
    waiters = {event, preview}
    done, pending = await asyncio.wait(waiters, timeout=KEEPALIVE_SECONDS, return_when="FIRST_COMPLETED")
    for waiter in pending:
        waiter.cancel()  # a queue's getter cancelled before it took an item leaves the item queued
    if event in done:
        if preview in done:
            previews.put_nowait(preview.result())  # both at once: the preview waits its turn
        return event.result()
    return preview.result() if preview in done else None


def _last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    with contextlib.suppress(ValueError):
        number = int(value)
        if number <= MAX_EVENT_ID:
            return max(0, number)
    raise InvalidRequestError(
        f"Last-Event-ID: {value!r} is not an event number; send the id of the last event "
        f"received (0 to {MAX_EVENT_ID})",
        field="Last-Event-ID",
    )


def _prefer_wait(prefer: str) -> float | None:
    """``Prefer: wait`` -> the longest wait; ``wait=N`` -> N seconds (capped); absent -> None."""
    match = _PREFER_WAIT.search(prefer.lower())
    if match is None:
        return None
    return min(float(match.group(1) or MAX_WAIT_SECONDS), MAX_WAIT_SECONDS)


def _task_response(request: Request, door: FrontDoor, task: Task, status: int = 200) -> JSONResponse:
    return JSONResponse(
        _body(request, door, task), status_code=status, headers={"location": f"/v1/tasks/{task.id}"}
    )


def _body(request: Request, door: FrontDoor, task: Task) -> dict[str, object]:
    position = door.store.queue_position(task.id) if task.status == "queued" else None
    base = str(request.base_url).rstrip("/")
    return convert.task_body(task, _file_url(request), base=base, position=position)


def _file_url(request: Request) -> convert.FileURL:
    return lambda file_id: str(request.url_for("file_content", file_id=file_id))
