"""Pure conversions for Gemini batch mode: a ``batchGenerateContent`` body -> core requests, and a
batch with its tasks -> the long-running Operation google-genai parses.

State, read from the tasks each time (the batch itself only remembers a cancel):

- ``BATCH_STATE_PENDING``: no request has started yet.
- ``BATCH_STATE_RUNNING``: one has started (or ended) and another has not ended.
- ``BATCH_STATE_SUCCEEDED``: every request has ended, whether it made images or failed; a failed
  request is an ``error`` entry in the output, as Gemini reports it.
- ``BATCH_STATE_CANCELLED``: cancelled before its last request ended, and every request has now
  ended (a running one stops at its next step, so the batch reads RUNNING until then). A cancel
  that comes after the end changes nothing.
- ``FAILED`` and ``EXPIRED`` are never reported: nothing fails a whole batch here, and an expired
  batch is gone (404), its results deleted with it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from plantain.dialects.gemini import convert, render, safety
from plantain.dialects.gemini.errors import RPC_CODE, rpc_code
from plantain.dialects.gemini.protocol import (
    BatchGenerateContentRequest,
    BatchOutput,
    BatchSpec,
    BatchStats,
    GenerateContentBatch,
    GenerateContentRequest,
    InlinedRequest,
    InlinedResponse,
    InlinedResponses,
    Operation,
    RpcStatus,
)
from plantain.dialects.wire import load_json, validate
from plantain.errors import ContentBlockedError, InvalidRequestError, PlantainError
from plantain.storage.batches import Batch, Member
from plantain.types import ImageRequest, ImageResult, Task

REQUESTS_FIELD = "batch.inputConfig.requests.requests"


# --- request ----------------------------------------------------------------------------------


def parse_batch(raw: bytes) -> BatchSpec:
    """The ``batch`` of the body, with inline requests; a file input is refused."""
    batch = validate(BatchGenerateContentRequest, load_json(raw)).batch
    config = batch.input_config if batch else None
    if batch is None or config is None:
        raise InvalidRequestError("batch.inputConfig is required", field="batch.inputConfig")
    if config.file_name is not None:
        raise InvalidRequestError(
            f"batch.inputConfig.fileName: {config.file_name!r} is an uploaded file, and this server "
            f"has no Files API; send the requests inline as {REQUESTS_FIELD}",
            field="batch.inputConfig.fileName",
        )
    if not _inlined(batch):
        raise InvalidRequestError(
            f"{REQUESTS_FIELD}: a batch needs at least one request", field=REQUESTS_FIELD
        )
    return batch


def to_image_requests(
    batch: BatchSpec, *, model: str, engine: str
) -> list[tuple[ImageRequest, dict[str, Any] | None]]:
    """Each inline request as the core request ``generateContent`` would make of it, with its
    metadata; the first bad one raises, named by its index."""
    converted = []
    for index, item in enumerate(_inlined(batch)):
        if item.request is None:
            field = f"{REQUESTS_FIELD}[{index}].request"
            raise InvalidRequestError(f"{field} is required", field=field)
        try:
            body = _request_body(item.request, model)
            converted.append((_inline_only(convert.to_image_request(body, engine=engine)), item.metadata))
        except PlantainError as exc:
            raise at_request(exc, index) from None
    return converted


def _inline_only(request: ImageRequest) -> ImageRequest:
    """``request`` if its images are all inline: a batch's requests fetch nothing."""
    for image in request.images:
        if image.url is not None:
            raise InvalidRequestError(
                f"{image.label}: file references are not fetched for batch requests; send the image "
                "bytes as inlineData",
                field=image.label,
            )
    return request


def _inlined(batch: BatchSpec) -> list[InlinedRequest]:
    config = batch.input_config
    return (config.requests.requests or []) if config and config.requests else []


def _request_body(raw: dict[str, Any], model: str) -> GenerateContentRequest:
    named = raw.get("model")
    if named is not None and render.model_id(str(named)) != render.model_id(model):
        raise InvalidRequestError(
            f"model: {named!r} differs from the batch's model {model!r}; a batch runs on one "
            "model, so leave it out or make it the same",
            field="model",
        )
    return validate(GenerateContentRequest, raw)


def at_request(error: PlantainError, index: int) -> PlantainError:
    """``error`` of one request, named by its place in the batch: ``…requests[2].request.contents``.
    Checks made as it is queued name core fields; they get their Gemini names first."""
    error = error.renamed(convert.FIELD_NAMES)
    prefix = f"{REQUESTS_FIELD}[{index}].request"
    field = f"{prefix}.{error.field}" if error.field else prefix
    leading = error.field is not None and error.message.startswith(error.field)
    message = f"{prefix}.{error.message}" if leading else f"{prefix}: {error.message}"
    renamed = copy.copy(error)
    renamed.message, renamed.field, renamed.args = message, field, (message,)
    return renamed


# --- response ---------------------------------------------------------------------------------


def operation(
    batch: Batch,
    tasks: Sequence[Task | None],
    results: Mapping[str, ImageResult],
    *,
    with_output: bool = True,
) -> dict[str, Any]:
    """The Operation for ``batch``: ``tasks`` in request order (None for one that is gone),
    ``results`` the images of its succeeded tasks by task id. Once it has ended, the output holds
    one entry per request, in order (``with_output=False`` leaves it out, for lists)."""
    state = state_of(batch, tasks)
    done = state in {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED"}
    updated = _timestamp(_updated_at(batch, tasks))
    output = None
    if done and with_output:
        entries = [
            _entry(batch, member, task, results) for member, task in zip(batch.members, tasks, strict=True)
        ]
        output = BatchOutput(inlined_responses=InlinedResponses(inlined_responses=entries))
    metadata = GenerateContentBatch(
        name=f"batches/{batch.id}",
        model=f"models/{render.model_id(batch.model)}",
        display_name=batch.display_name,
        state=state,
        create_time=_timestamp(batch.created_at),
        update_time=updated,
        end_time=updated if done else None,
        batch_stats=_stats(tasks),
        output=output,
    )
    return Operation(name=metadata.name, metadata=metadata, done=done).wire()


def ended(tasks: Sequence[Task | None]) -> bool:
    """Whether every request has ended (a task that is gone has)."""
    return all(task is None or task.finished for task in tasks)


def state_of(batch: Batch, tasks: Sequence[Task | None]) -> str:
    if ended(tasks):
        # A cancel that came after the last request ended changed nothing: the batch succeeded.
        last = max((task.completed_at or 0.0 for task in tasks if task is not None), default=0.0)
        cancelled = batch.cancelled_at is not None and batch.cancelled_at <= last
        return "BATCH_STATE_CANCELLED" if cancelled else "BATCH_STATE_SUCCEEDED"
    if all(task is not None and task.status == "queued" and task.attempts == 0 for task in tasks):
        return "BATCH_STATE_PENDING"
    return "BATCH_STATE_RUNNING"


def _entry(
    batch: Batch, member: Member, task: Task | None, results: Mapping[str, ImageResult]
) -> InlinedResponse:
    if task is None:
        error = RpcStatus(code=RPC_CODE["NOT_FOUND"], message=f"task {member.task_id} has expired")
        return InlinedResponse(error=error, metadata=member.metadata)
    result = results.get(task.id)
    if result is not None:
        usage = render.usage_of(
            task.request.get("prompt", ""),
            task.input_count,
            task.request.get("size", "1K"),
            len(result.images),
            batch.model,
            text_tokens=render.plan_output_tokens(result),
        )
        response = render.response_with_usage(result, usage, batch.model, response_id=task.id)
        return InlinedResponse(response=response, metadata=member.metadata)
    if task.error is not None and task.error.code == ContentBlockedError.code:  # an output was blocked
        blocked = safety.image_blocked(task.error.message, render.model_id(batch.model), task.id)
        return InlinedResponse(response=blocked, metadata=member.metadata)
    return InlinedResponse(error=_error(task), metadata=member.metadata)


def _error(task: Task) -> RpcStatus:
    if task.status == "succeeded":  # its files could not be read
        return RpcStatus(code=RPC_CODE["NOT_FOUND"], message="the images of this request are gone")
    if task.status == "cancelled":
        return RpcStatus(code=RPC_CODE["CANCELLED"], message="the request was cancelled before it finished")
    if task.error is None:
        return RpcStatus(code=RPC_CODE["INTERNAL"], message=f"the request ended as {task.status}")
    return RpcStatus(code=rpc_code(task.error.status), message=task.error.message)


def _stats(tasks: Sequence[Task | None]) -> BatchStats:
    succeeded = sum(1 for task in tasks if task is not None and task.status == "succeeded")
    pending = sum(1 for task in tasks if task is not None and not task.finished)
    return BatchStats(
        request_count=str(len(tasks)),
        successful_request_count=str(succeeded),
        failed_request_count=str(len(tasks) - succeeded - pending),
        pending_request_count=str(pending),
    )


def _updated_at(batch: Batch, tasks: Sequence[Task | None]) -> float:
    times = [batch.created_at, batch.cancelled_at or 0.0]
    for task in tasks:
        if task is not None:
            times += [task.started_at or 0.0, task.completed_at or 0.0]
    return max(times)


def _timestamp(seconds: float) -> str:
    """RFC 3339 in UTC with microseconds, as Google writes timestamps."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
