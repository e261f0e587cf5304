"""``GET /v1/files/{id}``: the output images every dialect hands out as URLs (OpenAI's ``url``
answers, the task API's outputs). Unauthenticated: the unguessable, expiring id is the key.

It belongs to no dialect; its errors are in the OpenAI shape, the one its URLs first came in.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from plantain.dialects.deps import FrontDoorDep
from plantain.dialects.openai import errors as openai_errors
from plantain.dialects.routing import dialect_route

router = APIRouter(route_class=dialect_route(openai_errors.error_body))


@router.get("/v1/files/{file_id}", name="file_content")
@router.head("/v1/files/{file_id}", name="file_headers", include_in_schema=False)  # curl -I, link checkers
async def file_content(door: FrontDoorDep, file_id: str) -> Response:
    """An output image by its unguessable id (every task's outputs, OpenAI's ``url`` answers)."""
    path, media_type = door.store.file(file_id)
    return Response(await asyncio.to_thread(path.read_bytes), media_type=media_type)
