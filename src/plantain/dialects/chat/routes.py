"""Chat completions routes: ``POST /v1/chat/completions`` and its OpenRouter-style alias
``/api/v1/chat/completions``. Thin: read, convert, run, convert back.

A non-streamed request waits for its task, as the Images API does. A streamed one is checked and
queued first, so every refusal (bad input, unknown model, full queue) keeps its status code; the
stream then opens at once, says it is still working with SSE comments while the task runs (as
OpenRouter does), and ends with the images, the usage and ``[DONE]``. A failure after the stream
opened is an ``{"error": …}`` event, which the openai SDK raises as ``APIError``. A client that
goes away cancels its task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from plantain.dialects import openapi
from plantain.dialects.chat import convert
from plantain.dialects.chat.protocol import ChatRequest
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.openai import errors
from plantain.dialects.openai.routes import OpenAIRoute
from plantain.dialects.report import answer_headers, report_headers
from plantain.dialects.wire import ImageAnswer
from plantain.engines.model_names import without_vendor
from plantain.errors import PlantainError
from plantain.scheduler import FrontDoor
from plantain.scheduler.frontdoor import Submission
from plantain.types import ImageRequest, Task, TokenUsage
from plantain.usage import cost_of

KEEPALIVE_SECONDS = 10.0  # between SSE comments while a streamed task runs
PATHS = ("/v1/chat/completions", "/api/v1/chat/completions")


class ChatRoute(OpenAIRoute):
    """OpenAI's envelope and ``x-request-id``, with core field names turned into chat ones
    (``aspect_ratio`` -> ``image_config.aspect_ratio``) before OpenAI's renaming could apply."""

    def error_response(self, request: Request, error: PlantainError) -> Response:
        return super().error_response(request, convert.renamed(error))


router = APIRouter(route_class=ChatRoute)


@dataclass(frozen=True)
class Completion:
    """One chat request on its way: what the answer echoes."""

    request: ImageRequest
    model: str  # as the caller wrote it, echoed in every body
    submission: Submission
    created: int = field(default_factory=lambda: int(time.time()))


async def chat_completions(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    body = convert.parse_request(await request.body())
    engine, name = _resolve(door, convert.without_online(body.model))
    image_request = convert.to_image_request(body, engine, door.limits)
    submission = Submission(model=name, source="chat", api_key_id=caller)
    completion = Completion(image_request, body.model or image_request.engine or "", submission)
    if body.stream:
        return await _stream(door, completion)
    task, result = await door.run(image_request, submission, is_disconnected=request.is_disconnected)
    answer = convert.completion_body(
        result,
        _completion_id(task),
        completion.model,
        completion.created,
        counted=_tokens(task),
        cost=cost_of(task),
    )
    return ImageAnswer(answer, headers=answer_headers(task, image_request, result))


for _path in PATHS:
    router.add_api_route(
        _path, chat_completions, methods=["POST"], openapi_extra=openapi.json_body(ChatRequest)
    )


def _resolve(door: FrontDoor, model: str | None) -> tuple[str, str | None]:
    """(the engine ``model`` runs on, the name its task records): model_names' rule, which drops
    a known vendor prefix (``google/…``) and keeps a name the ``models`` setting lists whole; the
    task records the bare name, which usage counts tokens by. Unknown: a 404 naming it."""
    return door.engine_name(model), without_vendor(door.registry, model) if model else None


async def _stream(door: FrontDoor, completion: Completion) -> Response:
    task, _ = await door.submit(completion.request, completion.submission)  # refusals keep their status
    return StreamingResponse(
        _events(door, task, completion),
        media_type="text/event-stream",
        headers=report_headers(completion.request),
    )


async def _events(door: FrontDoor, task: Task, completion: Completion) -> AsyncIterator[str]:
    completion_id, model, created = _completion_id(task), completion.model, completion.created
    yield convert.opening_chunk(completion_id, model, created, completion.request.num_images)
    try:
        while not task.finished:
            task = await door.wait(task.id, timeout=KEEPALIVE_SECONDS)
            if not task.finished:
                yield convert.KEEPALIVE
        try:
            result = await asyncio.to_thread(door.result_of, task)
        except PlantainError as error:
            yield convert.data_line(errors.error_body(convert.renamed(error))[1])
            return
        for line in convert.closing_chunks(
            result, completion_id, model, created, counted=_tokens(task), cost=cost_of(task)
        ):
            yield line
    finally:
        if not task.finished:  # the client went away mid-stream: stop the run at its next step
            door.cancel(task.id)


def _completion_id(task: Task) -> str:
    """``chatcmpl-<task id>``: the task API (``/v1/tasks/{id}``) has the rest of its story."""
    return f"chatcmpl-{task.id}"


def _tokens(task: Task) -> TokenUsage:
    return task.usage.tokens if task.usage is not None else TokenUsage()
