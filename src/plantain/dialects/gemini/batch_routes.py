"""Gemini batch mode on the durable queue: ``models/{model}:batchGenerateContent`` and
``batches`` (get, list, cancel, delete), as google-genai's ``client.batches`` calls them.

Each inline request becomes one task, checked and queued all or nothing; the batch is a named,
ordered group of those tasks (:mod:`plantain.storage.batches`) whose state is read from them on
every call. Inline requests only: there is no Files API, and Vertex's ``batchPredictionJobs`` are
not served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from plantain.dialects import openapi
from plantain.dialects.deps import BatchesDep, CallerKey, FrontDoorDep
from plantain.dialects.gemini import batch_convert
from plantain.dialects.gemini.paging import page_size
from plantain.dialects.gemini.protocol import BatchGenerateContentRequest
from plantain.errors import InvalidRequestError, NotFoundError, PlantainError
from plantain.scheduler import FrontDoor, bulk
from plantain.scheduler.frontdoor import Checked, Submission
from plantain.storage.batches import Batch
from plantain.types import ImageRequest, ImageResult, Task

DEFAULT_PAGE = 20
# read by list_batches itself, so that a bad one is refused with Google's rules (docs/gemini.md)
LIST_PARAMETERS = openapi.query_parameters(
    {"pageSize": {"type": "integer", "minimum": 0}, "pageToken": {"type": "string"}}
)


async def batch_generate_content(
    request: Request, door: FrontDoorDep, batches: BatchesDep, caller: CallerKey, model: str
) -> JSONResponse:
    engine = door.engine_name(model)  # an unknown model is a 404 before the body is read
    spec = batch_convert.parse_batch(await request.body())
    items = batch_convert.to_image_requests(spec, model=model, engine=engine)
    submission = Submission(model=model, source="gemini-batch", api_key_id=caller)
    images = sum(image_request.num_images for image_request, _ in items)
    door.quotas.check(caller, door.store, len(items), images)  # the whole batch, before any work
    checked = await _check_all([image_request for image_request, _ in items], door, submission)
    door.check_capacity(len(items), field=batch_convert.REQUESTS_FIELD)
    tasks = await bulk.enqueue_all(door, checked, submission)
    members = [(task.id, metadata) for task, (_, metadata) in zip(tasks, items, strict=True)]
    try:
        batch = batches.create(
            source="gemini", model=model, display_name=spec.display_name or "", members=members
        )
    except BaseException:
        bulk.cancel_all(door, [task.id for task in tasks])
        raise
    return JSONResponse(await _operation(door, batch))


async def _check_all(requests: list[ImageRequest], door: FrontDoor, submission: Submission) -> list[Checked]:
    """Every request checked as :meth:`FrontDoor.check` checks one, but each step for all of them
    before the next: every prompt is screened before any image is decoded."""
    prechecked = []
    for index, image_request in enumerate(requests):
        with _named(index):
            prechecked.append(await asyncio.to_thread(door.precheck, image_request, submission))
    checked = []
    for index, image_request in enumerate(prechecked):
        with _named(index):
            # Without its decoded inputs: a batch may hold many requests of many images, and
            # keeping every one decoded until the last is checked could take gigabytes. The
            # worker decodes each again when it runs (a batch is not waited on).
            checked.append(replace(await door.check_inputs(image_request, submission), job=None))
    return checked


@contextlib.contextmanager
def _named(index: int) -> Iterator[None]:
    """A refusal raised inside, named by the batch request it is about."""
    try:
        yield
    except InvalidRequestError as exc:
        raise batch_convert.at_request(exc, index) from None


async def get_batch(door: FrontDoorDep, batches: BatchesDep, batch_id: str) -> JSONResponse:
    return JSONResponse(await _operation(door, batches.get(batch_id)))


async def list_batches(request: Request, door: FrontDoorDep, store: BatchesDep) -> JSONResponse:
    """Newest first, without outputs (a page of finished batches would carry all their images):
    ``batches.get`` one for its responses."""
    size = page_size(request.query_params.get("pageSize"), default=DEFAULT_PAGE, items="batches")
    token = request.query_params.get("pageToken") or None
    batches, next_token = store.page(limit=size, after=token)
    operations = [
        batch_convert.operation(batch, _tasks(door, batch), {}, with_output=False) for batch in batches
    ]
    body: dict[str, object] = {"operations": operations}
    if next_token is not None:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


async def cancel_batch(door: FrontDoorDep, batches: BatchesDep, batch_id: str) -> JSONResponse:
    """Idempotent; queued requests end at once, a running one at its next step. A batch that had
    already ended stays as it was."""
    batch = batches.mark_cancelled(batch_id)
    bulk.cancel_all(door, [member.task_id for member in batch.members])
    return JSONResponse({})


async def delete_batch(door: FrontDoorDep, batches: BatchesDep, batch_id: str) -> JSONResponse:
    """Cancel, then forget: the batch is gone (404) and its results are deleted soon after."""
    batch = batches.get(batch_id)
    bulk.cancel_all(door, [member.task_id for member in batch.members])
    batches.delete(batch_id)
    return JSONResponse({})


async def _operation(door: FrontDoor, batch: Batch) -> dict[str, object]:
    tasks = _tasks(door, batch)
    results = await asyncio.to_thread(_results, door, tasks) if batch_convert.ended(tasks) else {}
    return batch_convert.operation(batch, tasks, results)


def _tasks(door: FrontDoor, batch: Batch) -> list[Task | None]:
    tasks: list[Task | None] = []
    for member in batch.members:
        try:
            tasks.append(door.store.get(member.task_id))
        except NotFoundError:
            tasks.append(None)
    return tasks


def _results(door: FrontDoor, tasks: Sequence[Task | None]) -> dict[str, ImageResult]:
    """The images of every succeeded task that can still be read (one that cannot is reported as
    an error entry rather than failing the whole answer)."""
    results = {}
    for task in tasks:
        if task is not None and task.status == "succeeded":
            with contextlib.suppress(PlantainError, OSError):
                results[task.id] = door.result_of(task)
    return results


def register(router: APIRouter, versions: Sequence[str]) -> None:
    """The batch routes under each Gemini API version (``v1`` is google-genai 3's default)."""
    for version in versions:
        router.add_api_route(
            f"/{version}/models/{{model}}:batchGenerateContent",
            batch_generate_content,
            methods=["POST"],
            openapi_extra=openapi.json_body(BatchGenerateContentRequest),
        )
        router.add_api_route(
            f"/{version}/batches", list_batches, methods=["GET"], openapi_extra=LIST_PARAMETERS
        )
        router.add_api_route(f"/{version}/batches/{{batch_id}}", get_batch, methods=["GET"])
        router.add_api_route(f"/{version}/batches/{{batch_id}}", delete_batch, methods=["DELETE"])
        router.add_api_route(f"/{version}/batches/{{batch_id}}:cancel", cancel_batch, methods=["POST"])
