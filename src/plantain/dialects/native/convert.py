"""Pure conversions for the task API: bodies -> ImageRequest, Task -> JSON, events -> SSE."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from pydantic import ValidationError

from plantain.dialects.grounding import grounding_object
from plantain.dialects.inference_sh import convert as inference_sh_convert
from plantain.dialects.inference_sh.convert import SAFETY_FILTERS, SAFETY_TOLERANCES
from plantain.dialects.native.protocol import VENDOR_RANGES, TaskCreate, TaskInput
from plantain.dialects.report import ignored
from plantain.dialects.wire import decode_base64, encode_base64, load_json, validation_error
from plantain.errors import InvalidRequestError
from plantain.imaging.codecs import encode_image
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.safety.terms import strictest
from plantain.types import (
    EVENT_TYPES,
    ImageRequest,
    InputImage,
    PlanResult,
    ProvenanceChoice,
    SafetyLevel,
    Task,
    TaskEvent,
)

FileURL = Callable[[str], str]  # file id -> absolute URL
PREVIEW_QUALITY = 80  # a preview is seen for a second: a small JPEG, not the image's format

# Core field names -> the task API's, for errors.
FIELD_NAMES = {
    "prompt": "input.prompt",
    "size": "input.resolution",
    "num_images": "input.num_images",
    "images": "input.images",
    "aspect_ratio": "input.aspect_ratio",
    "output_format": "input.output_format",
    "output_quality": "input.output_quality",
    "seed": "input.seed",
    "options.steps": "input.steps",
    "options.guidance": "input.guidance",
    "background": "input.background",
    "plan": "input.rewrite",
    "grounding": "input.grounding",
    "previews": "input.previews",
    "loras": "input.loras",
    "preset": "input.preset",
    "options.preset": "input.preset",
}

# input.safety_tolerance (0 strictest, 6 most permissive, as BFL and fal take it) -> level.
SAFETY_TOLERANCE: tuple[SafetyLevel, ...] = (
    "strict",  # 0
    "strict",
    "standard",  # 2, BFL's default
    "standard",
    "relaxed",
    "relaxed",
    "off",  # 6
)


def parse_create(raw: bytes) -> tuple[TaskCreate, str]:
    """The body, and its fingerprint for idempotency: of the JSON values, so key order and
    spacing do not make two submissions different."""
    payload = load_json(raw)
    try:
        body = TaskCreate.model_validate(payload)
    except ValidationError as exc:
        raise _body_error(exc) from None
    safety_level(body.input)  # a bad or contradictory safety value is refused with the body's other errors
    _check_events_filter(body.webhook_events_filter)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return body, hashlib.sha256(canonical.encode()).hexdigest()


def _body_error(exc: ValidationError) -> InvalidRequestError:
    """pydantic's first complaint about a body, said for the task API: an unknown field named as
    unknown (not pydantic's "Extra inputs are not permitted"), a vendor field's value against the
    vendor's range, a safety field against the values it takes; anything else as every dialect
    says it (wire.validation_error)."""
    error = exc.errors()[0]
    loc = tuple(str(part) for part in error["loc"])
    field = ".".join(loc[:2]) if loc[:1] == ("input",) else ".".join(loc[:1])
    if error["type"] == "extra_forbidden":
        name = ".".join(loc)
        return InvalidRequestError(
            f"{name} is not a known field of the task API; docs/tasks.md lists the fields it "
            "takes, and the vendors' field names it accepts",
            field=name,
        )
    if loc[:1] == ("input",) and len(loc) > 1 and loc[1] in VENDOR_RANGES:
        return InvalidRequestError(
            f"{field}: {error.get('input')!r} is not allowed; must be {VENDOR_RANGES[loc[1]]} "
            "(the vendor's range; the field is accepted here and reported as ignored)",
            field=field,
        )
    if field in {"input.safety_tolerance", "input.safety_filter"}:
        return _safety_error(field, error.get("input"))
    return validation_error(exc)


def _safety_error(field: str, value: object) -> InvalidRequestError:
    if field == "input.safety_filter":
        takes = ", ".join(SAFETY_FILTERS)
    else:
        takes = f"a whole number from 0 (strictest) to 6, or one of {', '.join(SAFETY_TOLERANCES)}"
    return InvalidRequestError(f"{field}: {value!r} is not allowed; must be {takes}", field=field)


def image_sources(body: TaskInput, limits: Limits = DEFAULT_LIMITS) -> list[InputImage]:
    """Each input image: its base64 decoded, or its URL, which the scheduler fetches once the
    request has passed every other check (this module does no I/O). The input count is checked
    first, so a request over it decodes nothing."""
    limits.check_input_count(len(body.images), field=FIELD_NAMES["images"])
    return [_input_image(value, index, limits) for index, value in enumerate(body.images)]


def image_label(index: int) -> str:
    return f"input.images[{index}]"


def to_image_request(body: TaskInput, images: Sequence[InputImage]) -> ImageRequest:
    """``body`` with its ``images`` as :func:`image_sources` gave them."""
    fields: dict[str, Any] = {
        "prompt": body.prompt,
        "images": tuple(images),
        "aspect_ratio": None if (body.aspect_ratio or "auto").lower() == "auto" else body.aspect_ratio,
        "size": body.resolution,
        "num_images": body.num_images,
        "output_format": body.output_format,
        "output_quality": body.output_quality,
        "background": body.background,
        "seed": body.seed,
        "options": {
            "steps": body.steps,
            "guidance": body.guidance,
            "retries": body.retry_count,
            "preset": body.preset,
        },
        "loras": tuple(body.loras) if body.loras else None,
        "safety": safety_level(body),
        "provenance": ProvenanceChoice(
            watermark=body.watermark,
            content_credentials=body.content_credentials,
            watermark_field="input.watermark",
            content_credentials_field="input.content_credentials",
        ),
        # inference.sh's fields with no meaning here (retry_count is used: options.retries)
        "ignored": ignored({name: getattr(body, name) for name in inference_sh_convert.IGNORED_INPUT_FIELDS}),
        "plan": body.rewrite,
        "grounding": _grounding(body),
        "previews": body.previews,
    }
    try:
        return ImageRequest.create(**{name: value for name, value in fields.items() if value is not None})
    except InvalidRequestError as exc:
        raise exc.renamed(FIELD_NAMES) from None


def _grounding(body: TaskInput) -> bool | None:
    """``input.grounding``, or inference.sh's ``enable_google_search`` when only it is sent;
    either true asks for search grounding."""
    sent = [value for value in (body.grounding, body.enable_google_search) if value is not None]
    return any(sent) if sent else None


def safety_level(body: TaskInput) -> SafetyLevel | None:
    """The level ``input.safety_tolerance`` and ``input.safety_filter`` ask for; None: the server's.

    ``safety_tolerance`` is BFL's and fal's 0–6 or inference.sh's ``BLOCK_MOST`` … ``BLOCK_NONE``;
    ``safety_filter`` is inference.sh's Gemini threshold. Two inference.sh values that differ
    give the stricter, as inference.sh's own door does (dialects/inference_sh); the task API's
    number beside a ``safety_filter`` that means another level is refused naming both, since
    neither can be said to be the one meant."""
    tolerance = _tolerance_level(body.safety_tolerance)
    threshold = _filter_level(body.safety_filter)
    if tolerance is None or threshold is None or tolerance == threshold:
        return tolerance or threshold
    if isinstance(body.safety_tolerance, int) or str(body.safety_tolerance).strip().isdigit():
        raise InvalidRequestError(
            f"input.safety_tolerance and input.safety_filter disagree: safety_tolerance "
            f"{body.safety_tolerance!r} is level {tolerance!r}, safety_filter {body.safety_filter!r} "
            f"is level {threshold!r}; send one of them",
            field="input.safety_filter",
        )
    return strictest([tolerance, threshold])


def _tolerance_level(value: int | str | None) -> SafetyLevel | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())  # "2": the number, as pydantic's lax int read it before
    if isinstance(value, int):
        if not 0 <= value <= 6:
            raise _safety_error("input.safety_tolerance", value)
        return SAFETY_TOLERANCE[value]
    level = SAFETY_TOLERANCES.get(value.strip().upper())
    if level is None:
        raise _safety_error("input.safety_tolerance", value)
    return level


def _filter_level(value: str | None) -> SafetyLevel | None:
    if value is None:
        return None
    level = SAFETY_FILTERS.get(value.strip().lower())
    if level is None:
        raise _safety_error("input.safety_filter", value)
    return level


_OTHER_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://")


def _input_image(value: str, index: int, limits: Limits) -> InputImage:
    label = image_label(index)
    if value[:8].lower().startswith(("http://", "https://")):
        return InputImage(url=value, label=label)
    if _OTHER_URL.match(value):  # file://, gs://, ftp://…: never read, whatever the scheme
        raise InvalidRequestError(
            f"{label}: {value[:60]!r} cannot be fetched; only http(s) URLs are fetched, "
            "or send the bytes as base64 or a data: URI",
            field=label,
        )
    return InputImage(data=decode_base64(value, label, limits=limits), label=label)


def _check_events_filter(events: list[str] | None) -> None:
    for name in events or ():
        if name not in EVENT_TYPES:
            raise InvalidRequestError(
                f"webhook_events_filter: {name!r} is not an event; use any of {', '.join(EVENT_TYPES)}",
                field="webhook_events_filter",
            )


# --- answers ----------------------------------------------------------------------------------


def task_body(task: Task, file_url: FileURL, *, base: str, position: int | None = None) -> dict[str, Any]:
    """The task as the API shows it (no input bytes; outputs as URLs)."""
    return {
        "id": task.id,
        "object": "task",
        "model": task.model,
        "engine": task.engine,
        "status": task.status,
        "input": _input_echo(task),
        "output": _output(task, file_url),
        "error": task.error.model_dump(exclude_none=True) if task.error else None,
        "usage": task.usage.model_dump() if task.usage else None,  # once the task has ended
        "attempts": task.attempts,
        "cancel_requested": task.cancel_requested,  # a running task stops at its next step
        "queue_position": position,
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "completed_at": iso(task.completed_at),
        "expires_at": iso(task.expires_at),
        "urls": {
            "get": f"{base}/v1/tasks/{task.id}",
            "cancel": f"{base}/v1/tasks/{task.id}/cancel",
            "events": f"{base}/v1/tasks/{task.id}/events",
        },
    }


def _input_echo(task: Task) -> dict[str, Any]:
    request = task.request
    return {
        "prompt": request["prompt"],
        "images": task.input_count,
        "aspect_ratio": request.get("aspect_ratio") or "auto",
        "resolution": request.get("size"),
        "num_images": request.get("num_images"),
        "output_format": request.get("output_format"),
        "output_quality": request.get("output_quality"),
        "background": request.get("background", "auto"),  # as asked; an output's alpha says what was made
        "seed": request.get("seed"),
        "ignored": request.get("ignored", []),  # parameters sent by another dialect that nothing used
        "safety": request.get("safety"),  # the level it ran at, once the server's limits applied
        "watermark": request.get("provenance", {}).get("watermark"),  # as asked: null is the default
        "content_credentials": request.get("provenance", {}).get("content_credentials"),
        # input.rewrite as asked, shown only when sent (a task without it reads as it always has)
        **({"rewrite": request["plan"]} if request.get("plan") is not None else {}),
        **({"grounding": True} if request.get("grounding") else {}),  # shown only when asked for
        **({"loras": request["loras"]} if request.get("loras") else {}),  # shown only when sent
        **({"preset": preset} if (preset := request.get("options", {}).get("preset")) else {}),
    }


def _output(task: Task, file_url: FileURL) -> dict[str, Any] | None:
    if task.result is None:
        return None
    result = task.result
    images = [
        {
            "url": file_url(out.file_id),
            "media_type": out.media_type,
            "width": out.width,
            "height": out.height,
            "seed": out.seed,
            "provenance": out.provenance.model_dump(),
        }
        for out in result.outputs
    ]
    output: dict[str, Any] = {
        "images": images,
        "steps": result.steps,
        "guidance": result.guidance,
        "seconds": result.seconds,
    }
    if result.plan is not None:
        output |= _plan_output(result.plan)
    if result.grounding is not None:
        output["grounding"] = grounding_object(result.grounding)
    if result.upscaled is not None:
        output["upscaled"] = result.upscaled.model_dump()
    return output


def _plan_output(plan: PlanResult) -> dict[str, Any]:
    """What the planner stage made (docs/planner.md): its text as ``description`` (inference.sh's
    name for an image app's text), the prompt the engine got, and the planner's own numbers,
    apart from the engine's ``seconds`` above. Present only when a planner ran."""
    return {
        "description": plan.text,
        "revised_prompt": plan.revised_prompt,
        "plan": {
            "model": plan.model,
            "seconds": plan.seconds,
            "input_tokens": plan.input_tokens,
            "output_tokens": plan.output_tokens,
            # the earlier image of the conversation the edit was resolved to, when the planner
            # chose another than the dialect's rule ("": none, a new image)
            **({"edited": plan.edited} if plan.edited is not None else {}),
        },
    }


def event_body(event: TaskEvent, file_url: FileURL) -> dict[str, Any]:
    """One event as SSE and webhooks show it: its type, number and data, outputs with URLs."""
    data = dict(event.data)
    if event.type == "completed":
        data["outputs"] = [{**out, "url": file_url(out["file_id"])} for out in data.get("outputs", [])]
    return {
        "type": event.type,
        "task_id": event.task_id,
        "seq": event.seq,
        "created_at": iso(event.created_at),
        **data,
    }


def sse(event: TaskEvent, file_url: FileURL) -> str:
    """One event as SSE; its ``id`` is the event number a reconnect sends as ``Last-Event-ID``."""
    payload = json.dumps(event_body(event, file_url), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {payload}\n\n"


def preview_sse(index: int, image: Image.Image) -> str:
    """A run's in-progress image as a ``preview`` SSE event: a JPEG ``data:`` URI, small enough
    for a page to show at once. No ``id``: previews are live only, never resumed."""
    jpeg = encode_image(image.convert("RGB"), "jpeg", PREVIEW_QUALITY)
    uri = "data:image/jpeg;base64," + encode_base64(jpeg)
    payload = json.dumps({"index": index, "image": uri}, separators=(",", ":"))
    return f"event: preview\ndata: {payload}\n\n"


def webhook_renderer(base: str) -> Callable[[Task, TaskEvent], str]:
    """The task API's webhook bodies for a server reached at ``base``, in the Standard Webhooks
    shape ``{type, timestamp, data}``: ``data`` is the task as GET shows it, plus the ``event``.
    (dialects/webhooks.py picks another dialect's body for the tasks that came in by it.)"""

    def file_url(file_id: str) -> str:
        return f"{base}/v1/files/{file_id}"

    def render(task: Task, event: TaskEvent) -> str:
        position = event.data.get("position") if event.type == "queued" else None
        data = task_body(task, file_url, base=base, position=position)
        data["event"] = event_body(event, file_url)
        body = {"type": f"task.{event.type}", "timestamp": iso(event.created_at), "data": data}
        return json.dumps(body, separators=(",", ":"))

    return render


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
