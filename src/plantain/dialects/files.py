"""``GET /v1/files/{id}``: the output images every dialect hands out as URLs (OpenAI's ``url``
answers, the task API's outputs). Unauthenticated: the unguessable, expiring id is the key.

Files in a bucket are sent through this server, or (``file_downloads=redirect``) answered with a
307 to a presigned URL of the bucket that works for ``presigned_url_seconds``.

It belongs to no dialect; its errors are in the OpenAI shape, the one its URLs first came in.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse

from plantain.dialects.deps import FrontDoorDep
from plantain.dialects.openai import errors as openai_errors
from plantain.dialects.routing import dialect_route

router = APIRouter(route_class=dialect_route(openai_errors.error_body))


@router.get("/v1/files/{file_id}", name="file_content")
@router.head("/v1/files/{file_id}", name="file_headers", include_in_schema=False)  # curl -I, link checkers
async def file_content(door: FrontDoorDep, file_id: str) -> Response:
    """An output image by its unguessable id (every task's outputs, OpenAI's ``url`` answers)."""
    media_type = door.store.file(file_id)  # a 404 for an unknown or expired id
    blobs, settings = door.store.blobs, door.settings
    if settings.file_downloads == "redirect":
        url = blobs.download_url(file_id, media_type, settings.presigned_url_seconds)
        if url is not None:
            return RedirectResponse(url, status_code=307)
    return Response(await asyncio.to_thread(blobs.get, file_id), media_type=media_type)
