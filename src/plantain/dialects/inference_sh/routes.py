"""inference.sh's app API on Plantain (docs/inference-sh.md).

- ``POST /apps/run``: what their SDK's ``run`` sends (``{"app", "input", "webhook"?}``); answers the
  task at once (``wait: true`` holds it until the task ends, ``stream: true`` streams its updates);
- ``POST /v1/apps/{owner}/{app}/run``: the same run with the app in the path; the body is the
  input object or ``{"input": {...}, "webhook"?}``; synchronous unless ``?wait=false`` or ``?stream=true``;
- ``POST /files`` and a ``PUT`` upload URL: where the SDK uploads local files and base64 (files.py);
- ``GET /tasks/{id}``, ``GET /tasks/{id}/stream`` (NDJSON, their SDK's; SSE when the client
  asks ``text/event-stream``) and ``POST /tasks/{id}/cancel``.

Answers use their envelope ``{"data": <task>, "messages": [...]}``; errors are problem+json
(errors.py). Every request goes to the same front door as every other dialect.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.inference_sh import convert, files, render
from plantain.dialects.inference_sh.errors import ProblemRoute
from plantain.dialects.inference_sh.protocol import AppInput, RunRequest
from plantain.dialects.report import report_headers
from plantain.net.guard import resolve_target
from plantain.scheduler import FrontDoor
from plantain.scheduler.frontdoor import Submission
from plantain.types import TERMINAL_EVENTS, Task, TaskEvent

router = APIRouter(tags=["inference.sh"], route_class=ProblemRoute)
router.include_router(files.router)  # POST /files and its upload URLs: the SDK's inline inputs

KEEPALIVE_SECONDS = (
    10.0  # the task again this often while nothing happens (their SDK gives up after 30 s of heartbeats only)
)
DISCONNECT_POLL_SECONDS = 0.5
TERMINAL_WEBHOOKS = ("completed", "failed", "cancelled")  # inference.sh calls a webhook at the end only
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

Line = Callable[[dict[str, Any]], str]


@router.post("/apps/run", openapi_extra=openapi.json_body(RunRequest))
async def run_app(
    request: Request,
    door: FrontDoorDep,
    caller: CallerKey,
    wait: bool | None = None,
    stream: bool | None = None,
) -> Response:
    body = convert.parse_run(await request.body())
    return await _run(
        request,
        door,
        caller,
        body,
        wait=_pick(wait, body.wait, False),
        stream=_pick(stream, body.stream, False),
    )


@router.post("/v1/apps/{owner}/{app}/run", openapi_extra=openapi.json_body(AppInput))
async def run_named_app(
    request: Request,
    door: FrontDoorDep,
    caller: CallerKey,
    owner: str,
    app: str,
    wait: Annotated[bool | None, Query()] = None,
    stream: Annotated[bool | None, Query()] = None,
) -> Response:
    convert.model_of(door.registry, f"{owner}/{app}")  # an unknown app is a 404 before the body is read
    body = convert.parse_run(await request.body(), app=f"{owner}/{app}")
    return await _run(
        request,
        door,
        caller,
        body,
        wait=_pick(wait, body.wait, True),
        stream=_pick(stream, body.stream, False),
    )


@router.get("/tasks/{task_id}")
async def get_task(request: Request, door: FrontDoorDep, task_id: str) -> JSONResponse:
    task = door.store.get(task_id)
    return JSONResponse(render.envelope(_body(request, task, _progress(door, task))))


@router.get("/tasks/{task_id}/stream")
async def stream_task(request: Request, door: FrontDoorDep, task_id: str) -> StreamingResponse:
    door.store.get(task_id)  # a 404 before the stream starts
    return _stream_response(request, door, task_id, cancel_on_close=False)


@router.post("/tasks/{task_id}/cancel")
async def cancel_task(request: Request, door: FrontDoorDep, task_id: str) -> JSONResponse:
    """Idempotent: a queued task ends at once, a running one at its next step (``cancelling``)."""
    task = door.cancel(task_id)
    return JSONResponse(render.envelope(_body(request, task, _progress(door, task))))


async def _run(
    request: Request, door: FrontDoor, caller: str, body: RunRequest, *, wait: bool, stream: bool
) -> Response:
    model = convert.model_of(door.registry, body.app or "")  # parse_run made sure there is one
    app_input = convert.parse_input(body.input)
    if body.webhook is not None:
        allowed = door.settings.allowed_hosts
        await asyncio.to_thread(resolve_target, body.webhook, field="webhook", allow=allowed)
    ignored = [name for name in convert.IGNORED_RUN_FIELDS if getattr(body, name) is not None]
    images = convert.image_sources(app_input, door.limits)  # URLs: fetched once the rest passes
    images = await files.resolve_uploads(request, door, caller, images)  # what the SDK uploaded
    image_request = convert.to_image_request(app_input, images, ignored)
    submission = Submission(
        model=model,
        source=convert.SOURCE,
        webhook_url=body.webhook,
        webhook_events=TERMINAL_WEBHOOKS,
        api_key_id=caller,
    )
    task, _ = await door.submit(image_request, submission)
    headers = report_headers(image_request)  # X-Plantain-Ignored-Parameters, as every dialect
    if stream:
        response = _stream_response(request, door, task.id, cancel_on_close=True)
        response.headers.update(headers)
        return response
    if wait:
        task = await _wait(request, door, task.id)
    data = _body(request, task, _progress(door, task))
    return JSONResponse(render.envelope(data, image_request.ignored), headers=headers)


async def _wait(request: Request, door: FrontDoor, task_id: str) -> Task:
    """The task once it ended; a caller that goes away first cancels it, as on every synchronous door."""
    try:
        while True:
            task = await door.wait(task_id, timeout=DISCONNECT_POLL_SECONDS)
            if task.finished:
                return task
            if await request.is_disconnected():
                return door.cancel(task_id)
    except asyncio.CancelledError:
        door.cancel(task_id)
        raise


def _stream_response(
    request: Request, door: FrontDoor, task_id: str, *, cancel_on_close: bool
) -> StreamingResponse:
    as_sse = SSE in request.headers.get("accept", "")
    line: Line = _sse_line if as_sse else _ndjson_line
    updates = _updates(request, door, task_id, line, cancel_on_close=cancel_on_close)
    return StreamingResponse(
        updates, media_type=SSE if as_sse else NDJSON, headers={"cache-control": "no-cache"}
    )


async def _updates(
    request: Request, door: FrontDoor, task_id: str, line: Line, *, cancel_on_close: bool
) -> AsyncIterator[str]:
    """The task now, then once per change (started, each progress percent, its end), then the
    stream closes. Subscribed before the store is read, so no event falls in between."""
    task: Task | None = None  # read once subscribed
    try:
        with door.subscribe(task_id) as live:
            events = door.store.events_after(task_id)
            task = door.store.get(task_id)
            percent = render.progress_of(task, events)
            last = events[-1].seq if events else 0
            yield line(_body(request, task, percent))
            while not task.finished:
                try:
                    await asyncio.wait_for(live.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield line(_body(request, task, percent))  # a real update: the SDK's idle timer restarts
                    continue
                for event in door.store.events_after(task_id, last):
                    last = event.seq
                    task, percent, changed = _apply(door, task, percent, event)
                    if changed:
                        yield line(_body(request, task, percent, event.created_at))
                    if event.type in TERMINAL_EVENTS:
                        return
    finally:
        if cancel_on_close and (task is None or not task.finished):
            door.cancel(task_id)  # the caller that started it went away mid-stream


def _apply(door: FrontDoor, task: Task, percent: int, event: TaskEvent) -> tuple[Task, int, bool]:
    """The task and progress after ``event``, and whether that is worth an update."""
    if event.type == "progress":
        new = render.step_percent(event)
        return task, percent if new is None else new, new is not None and new != percent
    fresh = door.store.get(task.id)
    if fresh.finished and event.type not in TERMINAL_EVENTS:
        return task, percent, False  # its end is a later event: shown then
    if fresh.status == "succeeded":
        percent = 100
    elif event.type in ("queued", "started"):
        percent = 0  # (again) from the start: a task requeued after a restart runs over
    return fresh, percent, True


def _progress(door: FrontDoor, task: Task) -> int:
    """``task``'s progress; its events are read only when it can be anything but 100."""
    if task.status == "succeeded":
        return 100
    return render.progress_of(task, door.store.events_after(task.id))


def _body(request: Request, task: Task, progress: int, updated_at: float | None = None) -> dict[str, Any]:
    return render.task_body(task, _file_url(request), progress=progress, updated_at=updated_at)


def _file_url(request: Request) -> render.FileURL:
    return lambda file_id: str(request.url_for("file_content", file_id=file_id))


def _ndjson_line(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":")) + "\n"


def _sse_line(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _pick(query: bool | None, body: bool | None, default: bool) -> bool:
    """The query's choice, else the body's, else the route's default."""
    return query if query is not None else body if body is not None else default
