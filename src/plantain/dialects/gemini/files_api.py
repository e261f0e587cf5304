"""Gemini's Files API for input images, as google-genai's ``client.files`` calls it: the
resumable upload (``upload``), ``get``, ``list`` and ``delete``; and ``fileData`` parts that name
an uploaded file (``files/ID`` or its ``uri``), read from the store here instead of fetched.

The upload follows Google's resumable protocol: ``POST /upload/{version}/files`` with
``X-Goog-Upload-Protocol: resumable`` and ``X-Goog-Upload-Command: start`` answers the session's
URL in ``x-goog-upload-url``; the bytes are POSTed there in chunks (``upload``, the last
``upload, finalize``) at ``X-Goog-Upload-Offset``, each answered with ``x-goog-upload-status``
(``active``, then ``final`` with ``{"file": File}``). The session URL is under ``/v1/files/``,
where output files are served without an API key, because the SDK sends no key with the chunks:
its unguessable token is the credential, as Google's ``upload_id`` is. Every chunk is stored in
the database (:mod:`plantain.storage.uploads`), so a cluster's front doors can share a session.

Only images this server accepts as inputs (``input_formats``), at most ``max_image_bytes``. Each
file belongs to the API key that uploaded it. ``/v1/files/{id}`` is also where output files are
served: ``get`` and ``delete`` under ``v1`` match only this module's id shape (20 lowercase
letters and digits; an output file's id is 32 characters), the other ids fall through to them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import Convertor, register_url_convertor

from plantain.dialects import openapi
from plantain.dialects.deps import CallerKey, FrontDoorDep
from plantain.dialects.gemini import errors
from plantain.dialects.gemini.convert import FILES_API_HOST, uploaded_file_id
from plantain.dialects.gemini.paging import page_size
from plantain.dialects.wire import load_json, validate
from plantain.errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidRequestError,
    NotFoundError,
    PlantainError,
)
from plantain.imaging.codecs import FORMAT_NAMES, accepted_formats, sniff_format
from plantain.limits import INPUT_FORMATS, Limits
from plantain.scheduler import FrontDoor
from plantain.storage.uploads import ID_ALPHABET, ID_LENGTH, Upload, Uploads
from plantain.types import ImageRequest, InputImage

SESSION_PATH = "/v1/files/upload-sessions"  # under /v1/files/: no API key (the SDK sends none)
DEFAULT_PAGE = 10  # as Google's files.list
LIST_PARAMETERS = openapi.query_parameters(
    {"pageSize": {"type": "integer", "minimum": 0}, "pageToken": {"type": "string"}}
)
# Media types of each input format (the first is the one a file is listed with).
MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    "png": ("image/png",),
    "jpeg": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "webp": ("image/webp",),
    "gif": ("image/gif",),
    "avif": ("image/avif",),
    "heic": ("image/heic", "image/heif"),
}


class FileMetadata(BaseModel):
    """What ``start`` reads of the File the SDK sends (its ``name`` is ignored)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    display_name: str | None = Field(default=None, alias="displayName", max_length=512)
    mime_type: str | None = Field(default=None, alias="mimeType")
    size_bytes: int | str | None = Field(default=None, alias="sizeBytes")


class StartUploadRequest(BaseModel):
    """The body of ``POST /upload/{version}/files`` (the session itself is in the headers)."""

    model_config = ConfigDict(extra="allow")

    file: FileMetadata | None = None


UPLOAD_HEADERS = openapi.header_parameters(
    {
        "X-Goog-Upload-Protocol": {"type": "string", "enum": ["resumable"]},
        "X-Goog-Upload-Command": {"type": "string", "enum": ["start"]},
        "X-Goog-Upload-Header-Content-Length": {"type": "integer", "minimum": 1},
        "X-Goog-Upload-Header-Content-Type": {"type": "string"},
    }
)


class FileIdConvertor(Convertor[str]):
    """A path segment shaped like an uploaded file's id, so that ``/v1/files/{id}`` is an output
    file's route for every other id."""

    regex = f"[{ID_ALPHABET}]{{{ID_LENGTH}}}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("gemini_file_id", FileIdConvertor())


def uploads_of(door: FrontDoor) -> Uploads:
    uploads: Uploads = door.store.uploads
    return uploads


# --- upload -----------------------------------------------------------------------------------


def _expect_header(request: Request, name: str, wanted: str, hint: str) -> None:
    """A 400 naming header ``name`` and what it held unless it says ``wanted``."""
    sent = (request.headers.get(name) or "").strip().lower()
    if sent != wanted:
        raise InvalidRequestError(
            f"{name}: {sent or None!r} is not served here; send {wanted!r} ({hint})", field=name
        )


async def start_upload(request: Request, door: FrontDoorDep, caller: CallerKey) -> JSONResponse:
    """A resumable session for one image, checked before any byte is sent."""
    _expect_header(request, "X-Goog-Upload-Protocol", "resumable", "as google-genai's files.upload does")
    _expect_header(
        request, "X-Goog-Upload-Command", "start", "then the bytes to the x-goog-upload-url it answers"
    )
    headers = request.headers
    raw = await request.body()
    file = validate(StartUploadRequest, load_json(raw) if raw.strip() else {}).file or FileMetadata()
    limits = door.limits
    mime_type = _media_type(headers.get("x-goog-upload-header-content-type") or file.mime_type, limits)
    size = _declared_size(headers.get("x-goog-upload-header-content-length") or file.size_bytes, limits)
    display_name = file.display_name or ""
    upload, session = await asyncio.to_thread(
        uploads_of(door).start, caller, display_name=display_name, mime_type=mime_type, size_bytes=size
    )
    url = f"{_base(request, door)}{SESSION_PATH}/{session}"
    answer = {"x-goog-upload-url": url, "x-goog-upload-status": "active"}
    return JSONResponse({"file": file_resource(upload, _base(request, door))}, headers=answer)


async def upload_chunk(request: Request, door: FrontDoorDep, session: str) -> Response:
    """One chunk of a session (``upload``, ``upload, finalize``, ``finalize``, ``query`` or
    ``cancel``). A refusal also says ``x-goog-upload-status: final``: the SDK retries a chunk
    answer without a status, and a refused chunk will not pass on a retry."""
    try:
        return await _chunk(request, door, session)
    except PlantainError as error:
        status, body = errors.error_body(error)
        return JSONResponse(body, status_code=status, headers={"x-goog-upload-status": "final"})


async def _chunk(request: Request, door: FrontDoor, session: str) -> Response:
    uploads = uploads_of(door)
    commands = {
        part.strip().lower() for part in (request.headers.get("x-goog-upload-command") or "").split(",")
    }
    commands.discard("")
    if not commands or not commands <= {"upload", "finalize", "query", "cancel"}:
        raise InvalidRequestError(
            f"X-Goog-Upload-Command: {request.headers.get('x-goog-upload-command')!r} is not served; "
            "send 'upload', 'upload, finalize', 'query' or 'cancel'",
            field="X-Goog-Upload-Command",
        )
    upload = await asyncio.to_thread(uploads.session, session)
    if "cancel" in commands:
        await asyncio.to_thread(uploads.abandon, upload)
        return JSONResponse({}, headers={"x-goog-upload-status": "cancelled"})
    if "upload" in commands:
        data = await request.body()
        upload = await asyncio.to_thread(uploads.append, session, _offset(request), data)
    if "finalize" not in commands:
        headers = {"x-goog-upload-status": "active", "x-goog-upload-size-received": str(upload.received)}
        return JSONResponse({}, headers=headers)
    upload, data = await asyncio.to_thread(uploads.assemble, session)
    try:
        _check_content(upload, data, door.limits)
    except PlantainError:
        await asyncio.to_thread(uploads.abandon, upload)
        raise
    upload = await asyncio.to_thread(uploads.activate, upload, data, upload.mime_type)
    body = {"file": file_resource(upload, _base(request, door))}
    return JSONResponse(body, headers={"x-goog-upload-status": "final"})


def _offset(request: Request) -> int:
    value = request.headers.get("x-goog-upload-offset")
    try:
        offset = int(value or "")
    except ValueError:
        offset = -1
    if offset < 0:
        raise InvalidRequestError(
            f"X-Goog-Upload-Offset: {value!r} is not a byte offset; send where this chunk starts",
            field="X-Goog-Upload-Offset",
        )
    return offset


def _media_type(value: Any, limits: Limits) -> str:
    """The declared type, if it is one of the accepted input formats (as its usual name)."""
    declared = str(value or "").strip().lower()
    for fmt in INPUT_FORMATS:
        if fmt in limits.input_formats and declared in MEDIA_TYPES[fmt]:
            return MEDIA_TYPES[fmt][0]
    accepted = ", ".join(MEDIA_TYPES[fmt][0] for fmt in INPUT_FORMATS if fmt in limits.input_formats)
    raise InvalidImageError(
        f"file.mimeType: {value!r} is not served; this server takes uploads of input images only: "
        f"{accepted} (input_formats)",
        field="file.mimeType",
    )


def _declared_size(value: Any, limits: Limits) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = -1
    if size <= 0:
        raise InvalidRequestError(
            f"X-Goog-Upload-Header-Content-Length: {value!r} is not a size; send the file's size "
            "in bytes (google-genai does)",
            field="X-Goog-Upload-Header-Content-Length",
        )
    if size > limits.max_image_bytes:
        raise ImageTooLargeError(
            f"file.sizeBytes: {size} bytes is over the limit of {limits.max_image_bytes} bytes per "
            "input image (max_image_bytes)",
            field="file.sizeBytes",
        )
    return size


def _check_content(upload: Upload, data: bytes, limits: Limits) -> None:
    if len(data) != upload.size_bytes:
        raise InvalidRequestError(
            f"X-Goog-Upload-Header-Content-Length: the upload declared {upload.size_bytes} bytes and "
            f"{len(data)} were sent before finalize",
            field="X-Goog-Upload-Header-Content-Length",
        )
    sniffed = sniff_format(data)
    if sniffed not in {FORMAT_NAMES[fmt] for fmt in limits.input_formats}:
        what = "not an image this server recognises" if sniffed is None else f"a {sniffed} image"
        raise InvalidImageError(
            f"file: the uploaded bytes are {what}; upload {accepted_formats(limits)} images",
            field="file",
        )


# --- files ------------------------------------------------------------------------------------


async def get_file(request: Request, door: FrontDoorDep, caller: CallerKey, file_id: str) -> JSONResponse:
    upload = await asyncio.to_thread(uploads_of(door).get, caller, file_id)
    return JSONResponse(file_resource(upload, _base(request, door)))


async def delete_file(door: FrontDoorDep, caller: CallerKey, file_id: str) -> JSONResponse:
    await asyncio.to_thread(uploads_of(door).delete, caller, file_id)
    return JSONResponse({})


async def list_files(request: Request, door: FrontDoorDep, caller: CallerKey) -> JSONResponse:
    """The caller's files, newest first, ``pageSize`` at a time."""
    size = page_size(request.query_params.get("pageSize"), default=DEFAULT_PAGE, items="files")
    token = request.query_params.get("pageToken") or None
    uploads, next_token = await asyncio.to_thread(uploads_of(door).page, caller, limit=size, after=token)
    base = _base(request, door)
    body: dict[str, Any] = {"files": [file_resource(upload, base) for upload in uploads]}
    if next_token is not None:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


def file_resource(upload: Upload, base: str) -> dict[str, Any]:
    """The ``File`` resource, as the Gemini API writes it."""
    resource: dict[str, Any] = {
        "name": upload.name,
        "displayName": upload.display_name,
        "mimeType": upload.mime_type,
        "sizeBytes": str(upload.size_bytes),
        "createTime": _rfc3339(upload.created_at),
        "updateTime": _rfc3339(upload.updated_at),
        "expirationTime": _rfc3339(upload.expires_at),
        "uri": f"{base}/v1beta/{upload.name}",
        "state": "ACTIVE" if upload.state == "active" else "PROCESSING",
        "source": "UPLOADED",
    }
    if upload.sha256 is not None:  # as Google writes it: the hex digest, in base64
        resource["sha256Hash"] = base64.b64encode(upload.sha256.encode()).decode()
    if not upload.display_name:
        del resource["displayName"]
    return resource


def _rfc3339(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _base(request: Request, door: FrontDoor) -> str:
    """This server's URL as the caller reaches it (``public_url`` when set)."""
    return (
        door.settings.public_url.rstrip("/")
        if door.settings.public_url
        else str(request.base_url).rstrip("/")
    )


# --- fileData ---------------------------------------------------------------------------------


async def resolve_files(
    image_request: ImageRequest, request: Request, door: FrontDoor, caller: str
) -> ImageRequest:
    """``image_request`` with each input that names an uploaded file (``files/ID``, or a file's
    ``uri``) replaced by the caller's stored bytes: no HTTP fetch, not even of this server's own
    URL. A file the caller does not have (never uploaded by its key, deleted, expired) is a 404
    naming the part and the file."""
    origins = _origins(request, door)
    images: list[InputImage] = []
    changed = False
    for image in image_request.images:
        file_id = uploaded_file_id(image.url, origins) if image.url is not None else None
        if file_id is None:
            images.append(image)
            continue
        try:
            _, data = await asyncio.to_thread(uploads_of(door).data, caller, file_id)
        except NotFoundError as missing:
            field = f"{image.label}.fileUri"
            raise NotFoundError(f"{field}: {missing.message}", field=field) from None
        images.append(InputImage(data=data, label=image.label))
        changed = True
    return image_request.model_copy(update={"images": tuple(images)}) if changed else image_request


def _origins(request: Request, door: FrontDoor) -> set[str]:
    """The ``host:port`` forms of this server's own URLs (a file's ``uri`` names one of them)."""
    netlocs = {request.url.netloc.lower(), FILES_API_HOST}
    for url in (door.settings.base_url, request.headers.get("host", "")):
        netlocs.add(url.split("://", 1)[-1].split("/", 1)[0].lower())
    return netlocs


# --- routes -----------------------------------------------------------------------------------


def register(router: APIRouter, versions: Sequence[str]) -> None:
    """The Files API under each Gemini API version; under ``v1``, ``files/{id}`` only for ids of
    this module's shape (``/v1/files/{id}`` is also the output files' route)."""
    router.add_api_route(
        f"{SESSION_PATH}/{{session}}", upload_chunk, methods=["POST"], include_in_schema=False
    )
    for version in versions:
        start = openapi.merge(openapi.json_body(StartUploadRequest), UPLOAD_HEADERS)
        router.add_api_route(f"/upload/{version}/files", start_upload, methods=["POST"], openapi_extra=start)
        router.add_api_route(f"/{version}/files", list_files, methods=["GET"], openapi_extra=LIST_PARAMETERS)
        shared = version == "v1"  # /v1/files/{id} is documented as the output files' route
        file_path = (
            f"/{version}/files/{{file_id:gemini_file_id}}" if shared else f"/{version}/files/{{file_id}}"
        )
        router.add_api_route(file_path, get_file, methods=["GET"], include_in_schema=not shared)
        router.add_api_route(file_path, delete_file, methods=["DELETE"], include_in_schema=not shared)
