"""nanobananaapi.dev's route: ``POST /v1/images/generate`` (not OpenAI's ``/v1/images/generations``,
which the openai dialect serves beside it). Thin: read, convert, run, convert back.

The vendor answers synchronously with the image URLs, so the route waits for its task as the
OpenAI Images API routes do; the URLs are this server's ``/v1/files/{id}`` (unguessable, kept
``retention_seconds``). A client that goes away cancels its task.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.nanobanana import convert
from plantain.dialects.nanobanana.protocol import GenerateRequest
from plantain.dialects.report import answer_headers
from plantain.dialects.routing import dialect_route
from plantain.scheduler.frontdoor import Submission
from plantain.types import Task

router = APIRouter(route_class=dialect_route(convert.error_body))


@router.post("/v1/images/generate", openapi_extra=openapi.json_body(GenerateRequest))
async def generate(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    body = convert.parse_request(await request.body())
    model, hd = convert.resolve_model(door.registry, body.model or "")  # parse_request requires it
    image_request = convert.to_image_request(body, door.engine_name(model), hd, door.limits)
    # The task records the served name (usage counts tokens by it); the -hd preset is in its steps.
    submission = Submission(model=model, source="nanobanana", api_key_id=caller)
    task, result = await door.run(image_request, submission, is_disconnected=request.is_disconnected)
    answer = convert.success_body(_urls(request, task), task.id)
    return JSONResponse(answer, headers=answer_headers(task, image_request, result))


def _urls(request: Request, task: Task) -> list[str]:
    """Absolute URLs of the task's stored images, in order."""
    outputs = task.result.outputs if task.result else ()
    return [str(request.url_for("file_content", file_id=output.file_id)) for output in outputs]
