"""Gemini API and Vertex AI routes: ``generateContent``, ``streamGenerateContent``,
``countTokens``, Imagen's ``predict`` (:mod:`imagen`), models, batch mode (from
:mod:`batch_routes`) and the Files API (from :mod:`files_api`).

Thin on purpose: parse, convert, run on the door (a task the route waits on), convert
back. Errors are Plantain errors, rendered in the Gemini envelope by the router's route class.
Success is always status 200 (the google-genai SDK raises on anything else). ``GET /v1/models``
is shared with the OpenAI dialect and is added by the server from
:func:`render.list_models_body`, not here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.gemini import batch_routes, convert, errors, files_api, imagen, render, safety
from plantain.dialects.gemini.protocol import GenerateContentRequest, GenerateContentResponse
from plantain.dialects.report import answer_headers
from plantain.dialects.routing import dialect_route
from plantain.dialects.wire import ImageAnswer
from plantain.errors import ContentBlockedError, InvalidRequestError
from plantain.scheduler import FrontDoor
from plantain.scheduler.frontdoor import Submission
from plantain.types import ImageRequest, ImageResult, Task

GEMINI_VERSIONS = ("v1", "v1beta", "v1alpha")
VERTEX_VERSIONS = ("v1", "v1beta1")
MODEL_LISTING_VERSIONS = ("v1beta", "v1alpha")  # /v1/models is shared with OpenAI
STREAM_FORMATS = ("sse", "json")  # ?alt=; json, a JSON array of chunks, is the default
StreamFormat = Annotated[str | None, Query(json_schema_extra={"enum": list(STREAM_FORMATS)})]

router = APIRouter(tags=["gemini"], route_class=dialect_route(errors.error_body))


async def _generate(
    request: Request, door: FrontDoor, caller: str, model: str
) -> tuple[ImageRequest, Task, ImageResult, bool]:
    """The run, and whether the answer shows the planner's revised prompt as a thought part."""
    engine = door.engine_name(model)
    image_request, thoughts = await _image_request(request, door, engine)
    image_request = await files_api.resolve_files(image_request, request, door, caller)  # files/ID
    submission = Submission(model=model, source="gemini", api_key_id=caller)
    task, result = await door.run(image_request, submission, is_disconnected=request.is_disconnected)
    return image_request, task, result, thoughts


async def _image_request(request: Request, door: FrontDoor, engine: str) -> tuple[ImageRequest, bool]:
    """The body as a core request, with its ``thinkingConfig.includeThoughts`` (which the core
    request does not carry: only the answer uses it); its ``fileData`` images are fetched by the
    door, once everything else has been checked."""
    body = convert.parse_request(await request.body())
    image_request = convert.to_image_request(body, engine=engine, limits=door.limits)
    return image_request, convert.include_thoughts(body)


async def generate_content(
    request: Request, door: FrontDoorDep, caller: CallerKey, model: str
) -> JSONResponse:
    try:
        image_request, task, result, thoughts = await _generate(request, door, caller, model)
    except ContentBlockedError as blocked:  # Gemini reports a refusal in a 200 answer
        return JSONResponse(_blocked(blocked, model).wire(), status_code=200)
    response_id = render.new_response_id()
    response = render.to_response(result, image_request, model, response_id, include_thoughts=thoughts)
    headers = answer_headers(task, image_request, result)
    return ImageAnswer(response.wire(), status_code=200, headers=headers)


async def stream_generate_content(
    request: Request, door: FrontDoorDep, caller: CallerKey, model: str, alt: StreamFormat = None
) -> Response:
    """``?alt=sse``: one ``data:`` event per chunk; otherwise the REST form, a JSON array of chunks.

    The run finishes before the first byte, so every error still gets a proper HTTP status.
    """
    sse = _stream_format(alt) == "sse"  # checked before the run
    try:
        image_request, task, result, thoughts = await _generate(request, door, caller, model)
        response_id = render.new_response_id()
        chunks = render.to_stream_chunks(result, image_request, model, response_id, include_thoughts=thoughts)
        headers = answer_headers(task, image_request, result)
    except ContentBlockedError as blocked:  # one chunk saying why, as generateContent answers
        chunks, headers = [_blocked(blocked, model)], {}
    if not sse:
        return ImageAnswer([chunk.wire() for chunk in chunks], status_code=200, headers=headers)
    return StreamingResponse(_sse(chunks), status_code=200, media_type="text/event-stream", headers=headers)


def _stream_format(alt: str | None) -> str:
    form = (alt or "json").strip().lower()
    if form not in STREAM_FORMATS:
        raise InvalidRequestError(
            f"alt: {alt!r} is not allowed; use sse (one event per chunk) or json (the default: "
            "a JSON array of chunks)",
            field="alt",
        )
    return form


def _blocked(error: ContentBlockedError, model: str) -> GenerateContentResponse:
    renamed = error.renamed(convert.FIELD_NAMES)  # "contents: refused …", the field the caller wrote
    blocked = renamed if isinstance(renamed, ContentBlockedError) else error
    return safety.blocked_response(blocked, render.model_id(model), render.new_response_id())


def _sse(chunks: list[GenerateContentResponse]) -> Iterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk.wire(), separators=(',', ':'))}\n\n"


async def count_tokens(request: Request, door: FrontDoorDep, model: str) -> JSONResponse:
    door.engine_name(model)  # an unknown model is a 404, as for generateContent
    body = convert.parse_request(await request.body())
    return JSONResponse(render.count_tokens_body(body, model))


async def list_models(door: FrontDoorDep) -> JSONResponse:
    return JSONResponse(render.list_models_body(door.registry, door.provenance.describe()))


async def get_model(door: FrontDoorDep, model: str) -> JSONResponse:
    return JSONResponse(render.get_model_body(door.registry, model, door.provenance.describe()))


METHODS: dict[str, Callable[..., Awaitable[Response]]] = {
    "generateContent": generate_content,
    "streamGenerateContent": stream_generate_content,
    "countTokens": count_tokens,
}


def _model_prefixes() -> list[str]:
    """Every path prefix a google-genai client puts before ``{model}:<method>``."""
    gemini = [f"/{version}/models" for version in GEMINI_VERSIONS]
    vertex = [
        prefix
        for version in VERTEX_VERSIONS
        for prefix in (
            f"/{version}/projects/{{project}}/locations/{{location}}/publishers/google/models",
            f"/{version}/publishers/google/models",
        )
    ]
    return gemini + vertex


def _register() -> None:
    for prefix in _model_prefixes():
        # The body, and Vertex's {project} and {location}: matched, any value served the same.
        extra = openapi.merge(openapi.json_body(GenerateContentRequest), openapi.path_parameters(prefix))
        for method, endpoint in METHODS.items():
            router.add_api_route(
                f"{prefix}/{{model}}:{method}", endpoint, methods=["POST"], openapi_extra=extra
            )
        predict = openapi.merge(openapi.json_body(imagen.PredictRequest), openapi.path_parameters(prefix))
        router.add_api_route(
            f"{prefix}/{{model}}:predict", imagen.predict, methods=["POST"], openapi_extra=predict
        )
    for version in MODEL_LISTING_VERSIONS:
        router.add_api_route(f"/{version}/models", list_models, methods=["GET"])
        router.add_api_route(f"/{version}/models/{{model}}", get_model, methods=["GET"])
    batch_routes.register(router, GEMINI_VERSIONS)
    files_api.register(router, GEMINI_VERSIONS)  # the Files API (uploads of input images)


_register()
