"""OpenAI Images API routes: ``POST /v1/images/generations``, ``POST /v1/images/edits`` and
``GET /v1/files/{id}`` (the images handed out as URLs). Thin: read, convert, run, convert back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from plantain.dialects.openai import convert, errors
from plantain.dialects.openai.protocol import ImageParams
from plantain.errors import InvalidRequestError, PlantainError
from plantain.files import FileStore
from plantain.service import ImageService
from plantain.types import ImageResult, InputImage

logger = logging.getLogger(__name__)

IMAGE_FIELDS = frozenset({"image", "image[]"})  # one file goes as `image`, several as `image[]`


class OpenAIRoute(APIRoute):
    """Tags every answer with ``x-request-id`` (the SDK reports it) and renders Plantain errors with
    OpenAI's parameter names (``images`` -> ``image``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            request_id = f"req_{secrets.token_hex(16)}"
            try:
                response = await handler(request)
            except PlantainError as error:
                response = _error_response(error.renamed(convert.PARAM_NAMES), request, request_id)
            response.headers["x-request-id"] = request_id
            return response

        return route


router = APIRouter(route_class=OpenAIRoute)


@router.post("/v1/images/generations")
async def generations(request: Request) -> Response:
    params = convert.parse_json(await request.body())
    return await _answer(request, params, (), "image_generation")


@router.post("/v1/images/edits")
async def edits(request: Request) -> Response:
    fields, parts = await _read_edit_form(request)
    params = convert.parse_params(fields)
    if not parts:
        raise InvalidRequestError(
            "image is required: send one file as image or several as image[]", field="image"
        )
    return await _answer(request, params, convert.input_images(parts), "image_edit")


@router.get("/v1/files/{file_id}", name="openai_file")
async def file_content(request: Request, file_id: str) -> Response:
    data, media_type = await asyncio.to_thread(_files(request).get, file_id)
    return Response(data, media_type=media_type)


async def _answer(
    request: Request, params: ImageParams, images: tuple[InputImage, ...], endpoint: convert.Endpoint
) -> Response:
    service: ImageService = request.app.state.service
    image_request = convert.to_image_request(params, service.engine_name(params.model), images)
    result = await service.run(image_request, is_disconnected=request.is_disconnected)
    created = int(time.time())
    if params.stream:  # the images are ready before the stream opens: no engine makes previews
        events = convert.stream_events(result, params, created, endpoint)
        return StreamingResponse(iter(events), media_type="text/event-stream")
    urls = await _store(request, result) if params.response_format == "url" else None
    return JSONResponse(convert.response_body(result, params, created, urls))


async def _read_edit_form(request: Request) -> tuple[dict[str, str], list[tuple[str, bytes]]]:
    """Multipart -> (text fields, (file name, bytes) of each image); a mask is refused here."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequestError(
            "edits take multipart/form-data, with the image file(s) as image or image[]", field="image"
        )
    fields: dict[str, str] = {}
    parts: list[tuple[str, bytes]] = []
    try:
        async with request.form(max_files=64, max_fields=256) as form:
            for key, value in form.multi_items():
                _check_part(key, value)
                if isinstance(value, UploadFile):
                    parts.append((value.filename or "", await value.read()))
                else:
                    fields[key] = value
    except HTTPException as exc:  # starlette's multipart parser: malformed body, too many parts
        raise InvalidRequestError(f"the multipart body could not be read: {exc.detail}") from None
    return fields, parts


def _check_part(key: str, value: str | UploadFile) -> None:
    if key == "mask":
        raise InvalidRequestError(
            "mask is not supported yet: no engine here inpaints; send the edit without a mask "
            "and describe the change in the prompt",
            field="mask",
        )
    is_file = isinstance(value, UploadFile)
    if key in IMAGE_FIELDS and not is_file:
        raise InvalidRequestError(f"{key} must be a file upload, not a text field", field="image")
    if is_file and key not in IMAGE_FIELDS:
        raise InvalidRequestError(f"{key} must be a text field, not a file upload", field=key)


async def _store(request: Request, result: ImageResult) -> list[str]:
    """Store each image for ``url_ttl_seconds`` and return absolute URLs to them."""
    store = _files(request)
    ids = [await asyncio.to_thread(store.put, image.data, image.media_type) for image in result.images]
    return [str(request.url_for("openai_file", file_id=file_id)) for file_id in ids]


def _files(request: Request) -> FileStore:
    service: ImageService = request.app.state.service
    settings = service.registry.settings
    return FileStore(settings.data_dir / "files", settings.url_ttl_seconds)


def _error_response(error: PlantainError, request: Request, request_id: str) -> JSONResponse:
    if error.status >= 500:
        logger.error("%s %s failed (%s): %s", request.method, request.url.path, request_id, error.message)
    status, body = errors.error_body(error)
    return JSONResponse(body, status_code=status)
