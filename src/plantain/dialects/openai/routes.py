"""OpenAI Images API routes: ``POST /v1/images/generations``, ``/v1/images/edits`` and
``/v1/images/variations`` (an edit with a neutral prompt); the images handed out as URLs are
served by :mod:`plantain.dialects.files`. Thin: read, convert, run, convert back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.openai import convert, errors
from plantain.dialects.openai.protocol import ImageParams, VariationParams
from plantain.dialects.report import answer_headers, report_headers
from plantain.dialects.routing import DialectRoute, ErrorBody
from plantain.dialects.wire import ImageAnswer
from plantain.errors import InvalidRequestError, PlantainError, response_headers
from plantain.generation import encode_output
from plantain.limits import Limits
from plantain.scheduler import FrontDoor
from plantain.scheduler.frontdoor import Submission
from plantain.types import ImageRequest, ImageResult, InputImage, Task, TokenUsage
from plantain.usage import cost_of

logger = logging.getLogger(__name__)

IMAGE_FIELDS = frozenset({"image", "image[]"})  # one file goes as `image`, several as `image[]`
MASK = "mask"


class OpenAIRoute(DialectRoute):
    """Errors in the OpenAI envelope; every answer tagged with ``x-request-id`` (the SDK reports
    it), errors included."""

    def envelope(self, request: Request) -> ErrorBody:
        return errors.error_body

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()  # errors rendered by error_response below

        async def route(request: Request) -> Response:
            request.state.request_id = request_id = f"req_{secrets.token_hex(16)}"
            response = await handler(request)
            response.headers["x-request-id"] = request_id
            return response

        return route

    def error_response(self, request: Request, error: PlantainError) -> Response:
        return _error_response(error, request, request.state.request_id)


router = APIRouter(route_class=OpenAIRoute)


@router.post("/v1/images/generations", openapi_extra=openapi.json_body(ImageParams))
async def generations(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    params = convert.parse_json(await request.body())
    return await _answer(request, door, caller, params, (), "image_generation")


@router.post(
    "/v1/images/edits",
    openapi_extra=openapi.form_body(
        ImageParams, {"image": openapi.BINARY, "image[]": {"type": "array", "items": openapi.BINARY}}, []
    ),
)
async def edits(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    fields, parts, mask_part = await _read_edit_form(request, door.limits)
    params = convert.parse_params(fields)
    if isinstance(mask_part, str):
        raise InvalidRequestError(
            "mask must be a file upload (a PNG with an alpha channel), not a text field", field="mask"
        )
    if not parts:
        raise InvalidRequestError(
            "image is required: send one file as image or several as image[]", field="image"
        )
    mask = None
    if mask_part is not None:  # OpenAI's rule: with several images, it marks the first
        limit = door.limits.max_input_pixels
        mask = await asyncio.to_thread(convert.inpaint_mask, mask_part, limit)
    images = convert.input_images(parts)
    return await _answer(request, door, caller, params, images, "image_edit", mask=mask)


@router.post(
    "/v1/images/variations",
    openapi_extra=openapi.form_body(VariationParams, {"image": openapi.BINARY}, ["image"]),
)
async def variations(request: Request, door: FrontDoorDep, caller: CallerKey) -> Response:
    """dall-e-2's variations: the image made again without a prompt, run as an edit prompted
    with :data:`convert.VARIATION_PROMPT`."""
    fields, parts, mask = await _read_edit_form(request, door.limits)
    if mask is not None:
        fields[MASK] = "sent"  # a mask is not one of its fields: refused by parse_variation
    variation = convert.parse_variation(fields)
    if len(parts) != 1:
        raise InvalidRequestError(
            f"image is required: a variation takes exactly one image file, got {len(parts)}", field="image"
        )
    params = convert.variation_params(variation)
    fmt = convert.response_format(variation.response_format, variation.model, variation=True)
    return await _answer(request, door, caller, params, convert.input_images(parts), "image_edit", fmt)


async def _answer(
    request: Request,
    door: FrontDoor,
    caller: str,
    params: ImageParams,
    images: tuple[InputImage, ...],
    endpoint: convert.Endpoint,
    fmt: str | None = None,
    *,
    mask: InputImage | None = None,
) -> Response:
    image_request = convert.to_image_request(params, door.engine_name(params.model), images, mask)
    submission = Submission(model=params.model, source="openai", api_key_id=caller)
    if params.stream:
        return await _stream(request, door, Streaming(image_request, params, endpoint, submission))
    task, result = await door.run(image_request, submission, is_disconnected=request.is_disconnected)
    fmt = fmt or convert.response_format(params.response_format, params.model)
    urls = _urls(request, task) if fmt == "url" else None
    body = convert.response_body(
        result, params, int(time.time()), urls, counted=_tokens(task), cost=cost_of(task)
    )
    return ImageAnswer(body, headers=answer_headers(task, image_request, result))


@dataclass(frozen=True)
class Streaming:
    """One streamed request: what the events are made from."""

    request: ImageRequest
    params: ImageParams
    endpoint: convert.Endpoint
    submission: Submission
    created: int = field(default_factory=lambda: int(time.time()))


Preview = tuple[int, Image.Image]


async def _stream(request: Request, door: FrontDoor, streaming: Streaming) -> Response:
    """Previews as the engine decodes them (``partial_images``), then the images.

    The response starts only with its first event, so every error up to then — a bad input,
    a missing engine, a failed run without previews — keeps its status code; one after it is
    an ``error`` event in the stream."""
    loop = asyncio.get_running_loop()
    previews: asyncio.Queue[Preview] = asyncio.Queue()

    def on_preview(index: int, image: Image.Image) -> None:  # on the engine's thread
        loop.call_soon_threadsafe(previews.put_nowait, (index, image))

    run = asyncio.create_task(
        door.run(
            streaming.request.model_copy(update={"previews": streaming.params.partial_images or 0}),
            streaming.submission,
            is_disconnected=request.is_disconnected,
            on_preview=on_preview,
        )
    )
    try:
        first = await _next_preview(previews, run)
        if first is None:
            task, result = await run
            events = convert.stream_events(
                result,
                streaming.params,
                streaming.created,
                streaming.endpoint,
                counted=_tokens(task),
                cost=cost_of(task),
            )
            headers = answer_headers(task, streaming.request, result)
            return StreamingResponse(iter(events), media_type="text/event-stream", headers=headers)
    except BaseException:
        run.cancel()
        raise
    headers = report_headers(streaming.request)  # sent before the run ends: each event has its seed
    return StreamingResponse(
        _events(first, previews, run, streaming), media_type="text/event-stream", headers=headers
    )


Run = asyncio.Task[tuple[Task, ImageResult]]


async def _next_preview(previews: asyncio.Queue[Preview], run: Run) -> Preview | None:
    """The next preview, or None once the run has ended and every preview was taken."""
    getter = asyncio.ensure_future(previews.get())
    try:
        await asyncio.wait({getter, run}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()  # a cancelled get loses no item
    return getter.result() if getter.done() and not getter.cancelled() else None


async def _events(
    first: Preview, previews: asyncio.Queue[Preview], run: Run, streaming: Streaming
) -> AsyncIterator[str]:
    params, created, endpoint = streaming.params, streaming.created, streaming.endpoint
    try:
        preview: Preview | None = first
        while preview is not None:
            index, image = preview
            encoded = await asyncio.to_thread(encode_output, image, 0, streaming.request)  # seed unused
            yield convert.partial_event(encoded, index, params, created, endpoint)
            preview = await _next_preview(previews, run)
        try:
            task, result = await run
        except PlantainError as error:
            yield convert.error_event(_error_body(error))
            return
        for event in convert.stream_events(
            result, params, created, endpoint, counted=_tokens(task), cost=cost_of(task)
        ):
            yield event
    finally:
        run.cancel()  # the client went away mid-stream: stop the engine at its next step


async def _read_edit_form(
    request: Request, limits: Limits
) -> tuple[dict[str, str], list[tuple[str, bytes]], bytes | str | None]:
    """Multipart -> (text fields, (file name, bytes) of each image, the ``mask``: a file's bytes,
    a text field's value, or None when none was sent)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "edits take multipart/form-data, with the image file(s) as image or image[]", field="image"
        )
    fields: dict[str, str] = {}
    mask: bytes | str | None = None
    try:
        async with request.form(max_files=64, max_fields=256) as form:
            uploads: list[UploadFile] = []
            mask_part: UploadFile | str | None = None
            for key, value in form.multi_items():
                _check_part(key, value)
                if key == MASK:
                    if mask_part is not None:
                        raise InvalidRequestError("mask: send one mask file, not several", field="mask")
                    mask_part = value
                elif isinstance(value, UploadFile):
                    uploads.append(value)
                else:
                    fields[key] = value
            parts = await _read_uploads(uploads, limits)
            if isinstance(mask_part, UploadFile):
                limits.check_image_bytes(mask_part.size or 0, "mask", field="mask")
                mask = await mask_part.read()
            else:
                mask = mask_part
    except HTTPException as exc:  # starlette's multipart parser: malformed body, too many parts
        raise InvalidRequestError(f"the multipart body could not be read: {exc.detail}") from None
    return fields, parts, mask


async def _read_uploads(uploads: list[UploadFile], limits: Limits) -> list[tuple[str, bytes]]:
    """(file name, bytes) of each upload, read once every size (known from the parsed body) is
    within max_image_bytes; errors name them as the decoder does (convert.image_labels)."""
    names = [upload.filename or "" for upload in uploads]
    for label, upload in zip(convert.image_labels(names), uploads, strict=True):
        limits.check_image_bytes(upload.size or 0, label, field="image")
    return [(name, await upload.read()) for name, upload in zip(names, uploads, strict=True)]


def _check_part(key: str, value: str | UploadFile) -> None:
    if key == MASK:
        return  # a file or not: the route reads or refuses it
    is_file = isinstance(value, UploadFile)
    if key in IMAGE_FIELDS and not is_file:
        raise InvalidRequestError(f"{key} must be a file upload, not a text field", field="image")
    if is_file and key not in IMAGE_FIELDS:
        raise InvalidRequestError(f"{key} must be a text field, not a file upload", field=key)


def _tokens(task: Task) -> TokenUsage:
    """The tokens the finished task counted (every task that ends has its usage)."""
    return task.usage.tokens if task.usage is not None else TokenUsage()


def _urls(request: Request, task: Task) -> list[str]:
    """Absolute URLs of the task's stored images (kept ``retention_seconds``)."""
    outputs = task.result.outputs if task.result else ()
    return [str(request.url_for("file_content", file_id=output.file_id)) for output in outputs]


def _error_response(error: PlantainError, request: Request, request_id: str) -> JSONResponse:
    body = _error_body(error, f"{request.method} {request.url.path} ({request_id})")
    return JSONResponse(body, status_code=error.status, headers=response_headers(error))


def _error_body(error: PlantainError, where: str = "a streamed run") -> dict[str, Any]:
    if error.status >= 500:
        logger.error("%s failed: %s", where, error.message)
    return errors.error_body(error)[1]
