"""inference.sh's file upload, which their SDK uses for every local path, data URI or base64
string in an input: ``POST /files`` declares the files and answers an upload URL for each, the
SDK ``PUT``s the bytes there (without its API key, as to a signed bucket URL), then sends the
file's ``uri`` in the input.

The files are the Gemini Files API's uploads (:mod:`plantain.storage.uploads`), owned by the key
that declared them: the upload URL is ``/v1/files/inference-uploads/{session}`` (under
``/v1/files/``, which needs no key; the session token is the secret), and the ``uri`` is the
file's Gemini URI (``{base}/v1beta/files/{id}``), which a run of the same key reads from the store,
never over HTTP.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.inference_sh.errors import ProblemRoute
from plantain.dialects.wire import load_json, validate
from plantain.errors import InvalidRequestError, PlantainError
from plantain.scheduler import FrontDoor
from plantain.storage.uploads import ID_ALPHABET, ID_LENGTH, Uploads
from plantain.types import InputImage

router = APIRouter(tags=["inference.sh"], route_class=ProblemRoute)

UPLOAD_PATH = "/v1/files/inference-uploads"
MAX_FILES = 14  # an input takes at most this many images
UPLOAD_URI = re.compile(rf"/v1beta/files/([{ID_ALPHABET}]{{{ID_LENGTH}}})")


class FileSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")  # uri, path, public: the SDK's, unused here

    filename: str | None = None
    content_type: str | None = None
    size: int = Field(ge=1)


class FilesCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    files: list[FileSpec] = Field(min_length=1, max_length=MAX_FILES)


@router.post("/files", openapi_extra=openapi.json_body(FilesCreate))
async def create_files(request: Request, door: FrontDoorDep, caller: CallerKey) -> JSONResponse:
    body = validate(FilesCreate, load_json(await request.body()))
    uploads: Uploads = door.store.uploads
    base = _base(request, door)
    created: list[dict[str, Any]] = []
    for index, spec in enumerate(body.files):
        door.limits.check_image_bytes(spec.size, f"files[{index}]", f"files[{index}].size")  # 7 MB inline
        media = (spec.content_type or "application/octet-stream").lower()
        if not media.startswith(("image/", "application/octet-stream")):
            raise InvalidRequestError(
                f"files[{index}].content_type: {spec.content_type!r} is not allowed; "
                "uploads are input images",
                field=f"files[{index}].content_type",
            )
        upload, session = await asyncio.to_thread(
            uploads.start,
            caller,
            display_name=spec.filename or "upload",
            mime_type=media,
            size_bytes=spec.size,
        )
        created.append(
            {
                "id": upload.id,
                "uri": f"{base}/v1beta/files/{upload.id}",
                "upload_url": f"{base}{UPLOAD_PATH}/{session}",
                "filename": spec.filename,
                "content_type": media,
                "size": spec.size,
            }
        )
    return JSONResponse({"data": created, "messages": []})


@router.put(f"{UPLOAD_PATH}/{{session}}", include_in_schema=False)  # a URL the server hands out
async def upload_file(request: Request, door: FrontDoorDep, session: str) -> JSONResponse:
    """The whole file in one PUT, as to a signed bucket URL; it is then ready to be used."""
    uploads: Uploads = door.store.uploads
    upload = await asyncio.to_thread(uploads.session, session)
    data = await request.body()
    try:
        door.limits.check_image_bytes(len(data), upload.display_name, "body")
        if len(data) > upload.size_bytes:
            raise InvalidRequestError(
                f"body: {len(data)} bytes is more than the {upload.size_bytes} bytes this upload "
                "declared (POST /files, files[].size)",
                field="body",
            )
        # The whole file at once: stored as the file itself, never as a chunk to be assembled.
        upload = await asyncio.to_thread(uploads.activate, upload, data, upload.mime_type)
    except PlantainError:
        await asyncio.to_thread(uploads.abandon, upload)
        raise
    return JSONResponse({"data": {"id": upload.id, "size": upload.size_bytes}, "messages": []})


async def resolve_uploads(
    request: Request, door: FrontDoor, caller: str, images: Sequence[InputImage]
) -> list[InputImage]:
    """``images`` with each URI of one of ``caller``'s uploads on this server replaced by its bytes
    (another caller's file is a 404, as on the Files API); other URLs stay for the scheduler to fetch."""
    own = {request.url.netloc, urlsplit(door.settings.public_url or "").netloc} - {""}
    resolved = []
    for image in images:
        url = urlsplit(image.url or "")
        match = UPLOAD_URI.fullmatch(url.path) if url.netloc in own else None
        if match is None:
            resolved.append(image)
            continue
        _, data = await asyncio.to_thread(door.store.uploads.data, caller, match.group(1))
        resolved.append(InputImage(data=data, label=image.label))
    return resolved


def _base(request: Request, door: FrontDoor) -> str:
    """This server's URL as the caller reaches it (``public_url`` when set)."""
    public = door.settings.public_url
    return public.rstrip("/") if public else str(request.base_url).rstrip("/")
