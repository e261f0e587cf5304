"""``POST /v1/provenance/verify``: who made an image, by its C2PA manifest and its watermark
(docs/provenance.md).

The image comes as a multipart upload (field ``file``, as ``curl -F file=@x.png`` sends it) or as
the raw body with an ``image/*`` content type. Any size up to ``max_body_bytes`` is read: this
server's own 4K PNGs are larger than ``max_image_bytes``, the limit for images to edit. Reading
runs off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from plantain.dialects import openapi
from plantain.dialects.deps import FrontDoorDep
from plantain.dialects.native import errors
from plantain.dialects.routing import dialect_route
from plantain.errors import InvalidRequestError
from plantain.provenance.verify import verify

router = APIRouter(tags=["provenance"], route_class=dialect_route(errors.error_body))

UPLOAD_FIELD = "file"


@router.post(
    "/v1/provenance/verify",
    openapi_extra=openapi.form_body(
        None,
        {UPLOAD_FIELD: openapi.BINARY},
        [UPLOAD_FIELD],
        raw_types=("image/*", "application/octet-stream"),
    ),
)
async def verify_image(request: Request, door: FrontDoorDep) -> JSONResponse:
    data, label = await _read_image(request)
    report = await asyncio.to_thread(
        verify, data, door.provenance, door.store.marks.find, limits=door.limits, label=label
    )
    body: dict[str, Any] = {"object": "provenance.verification", **report.to_json()}
    return JSONResponse(body)


async def _read_image(request: Request) -> tuple[bytes, str]:
    """The uploaded image's bytes and how errors name it."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_upload(request)
    if content_type.startswith(("image/", "application/octet-stream")):
        data = await request.body()
        if not data:
            raise InvalidRequestError("the body is empty; send the image to verify", field=UPLOAD_FIELD)
        return data, "the body"
    raise InvalidRequestError(
        f"send the image as multipart/form-data (field {UPLOAD_FIELD!r}) or as the raw body with an "
        f"image/* content type; got {content_type or 'no content type'}",
        field=UPLOAD_FIELD,
    )


async def _read_upload(request: Request) -> tuple[bytes, str]:
    try:
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get(UPLOAD_FIELD)
            if not isinstance(upload, UploadFile):
                raise InvalidRequestError(
                    f"upload the image as the file field {UPLOAD_FIELD!r} "
                    f"(e.g. curl -F {UPLOAD_FIELD}=@image.png)",
                    field=UPLOAD_FIELD,
                )
            return await upload.read(), f"{UPLOAD_FIELD} ({upload.filename or 'upload'})"
    except HTTPException as exc:  # starlette's multipart parser: malformed body, too many parts
        raise InvalidRequestError(f"the multipart body could not be read: {exc.detail}") from None
