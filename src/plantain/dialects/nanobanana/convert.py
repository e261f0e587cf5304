"""Pure conversions between nanobananaapi.dev's wire format and Plantain's internal model.

A body -> :class:`ImageRequest`; a finished task -> ``{"code": 0, "message": "success", "data":
{"url": …}}``, where ``url`` is a string for one image and a list for several, as the vendor's
clients read it (``Array.isArray(data.url) ? data.url : [data.url]``); an error -> the same
envelope with a non-zero ``code`` (the HTTP status) and ``data`` null. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from plantain.dialects.nanobanana.protocol import (
    HD_SUFFIX,
    IGNORED_PARAMS,
    MAX_NUM,
    MAX_REF_IMAGES,
    SERVICE_TIERS,
    GenerateRequest,
)
from plantain.dialects.report import ignored
from plantain.dialects.wire import image_url, load_object, validation_error
from plantain.engines.model_names import is_served, served_models
from plantain.engines.registry import EngineRegistry
from plantain.errors import (
    ContentBlockedError,
    InvalidRequestError,
    PlantainError,
    UnknownModelError,
)
from plantain.limits import Limits
from plantain.types import ImageRequest, InputImage, ProvenanceChoice

# `-hd` ("more detail", same 1K pixels): 1.5 times the engine preset's denoising steps, the
# multiple OpenAI's `quality: "hd"` gets (openai/convert.QUALITY_STEPS_SCALE), so the two
# dialects' "hd" cost and look the same. docs/nanobananaapi.md documents it as a quality preset.
HD_STEPS_SCALE = 1.5

# Core field names -> the vendor's, for error messages and the envelope's `field`.
FIELD_NAMES = {
    "num_images": "num",
    "aspect_ratio": "image_size",
    "images": "ref_images",
    "engine": "model",
    "size": "model",  # the size tier follows from the model (1K for both variants)
}


def parse_request(raw: bytes) -> GenerateRequest:
    """The body, or a 400 naming the malformed field, its value and its limit, or the unknown field."""
    data = load_object(raw)
    try:
        body = GenerateRequest.model_validate(data)
    except ValidationError as exc:
        raise _field_error(exc) from None
    unknown = [name for name in body.extra_params() if name not in IGNORED_PARAMS]
    if unknown:
        raise UnknownFieldError(
            f"{unknown[0]} is not a known field of /v1/images/generate; send prompt, model, num, "
            "image_size, ref_images or service_tier (see docs/nanobananaapi.md)",
            field=unknown[0],
        )
    if not (body.prompt or "").strip():
        raise InvalidRequestError("prompt is required: the text describing the image", field="prompt")
    if not (body.model or "").strip():
        raise InvalidRequestError(
            f"model is required: send {DEFAULT_MODELS} (or another name GET /v1/models lists)", field="model"
        )
    return body


DEFAULT_MODELS = "gemini-2.5-flash-image or gemini-2.5-flash-image-hd"


class UnknownFieldError(InvalidRequestError):
    """A field the vendor's body does not have, named as the caller wrote it: never renamed by
    :data:`FIELD_NAMES`, which maps core names (a caller's ``aspect_ratio`` is not the core's)."""

    def renamed(self, names: Mapping[str, str]) -> PlantainError:
        return self


def _field_error(exc: ValidationError) -> InvalidRequestError:
    """pydantic's first complaint in the vendor's words where it has a range (``num``)."""
    error = exc.errors()[0]
    name = error["loc"][0] if error["loc"] else None
    if name == "num":
        return InvalidRequestError(
            f"num: {error.get('input')!r} is not allowed; must be a whole number between 1 and {MAX_NUM}",
            field="num",
        )
    if name == "service_tier":
        return InvalidRequestError(
            f"service_tier: {error.get('input')!r} is not allowed; must be one of {', '.join(SERVICE_TIERS)}",
            field="service_tier",
        )
    return validation_error(exc)


def resolve_model(registry: EngineRegistry, model: str) -> tuple[str, bool]:
    """(the model name the rest of Plantain knows, whether the ``-hd`` preset applies).

    ``gemini-2.5-flash-image-hd`` is no vendor model of its own: it is the served name before the
    suffix, run with more steps. A name that is served as written (an engine or a ``models``
    setting entry ending in ``-hd``) is kept whole. Unknown: a 404 listing what is served."""
    name = model.strip()
    if is_served(registry, name):
        return name, False
    if name.lower().endswith(HD_SUFFIX) and is_served(registry, name[: -len(HD_SUFFIX)]):
        return name[: -len(HD_SUFFIX)], True
    served = ", ".join(served_models(registry))
    raise UnknownModelError(
        f"model {model!r} is not served here; use {DEFAULT_MODELS}, or one of {served} "
        f"(each may end in {HD_SUFFIX} for more detail)",
        field="model",
    )


def to_image_request(body: GenerateRequest, engine: str, hd: bool, limits: Limits) -> ImageRequest:
    """The core request ``body`` asks for, to run on ``engine``; http(s) ref_images not yet fetched."""
    ratio = (body.image_size or "").strip()
    fields: dict[str, Any] = {
        "prompt": body.prompt,
        "images": tuple(ref_images(body.ref_images, limits)),
        "aspect_ratio": None if ratio.lower() in {"", "auto"} else ratio,
        "num_images": body.num,
        "engine": engine,
        "options": {"steps_scale": HD_STEPS_SCALE if hd else None},
        "provenance": ProvenanceChoice(
            watermark=body.watermark, content_credentials=body.content_credentials
        ),
        "ignored": ignored({name: getattr(body, name) for name in IGNORED_PARAMS}),
    }
    try:
        return ImageRequest.create(**{name: value for name, value in fields.items() if value is not None})
    except InvalidRequestError as exc:
        raise exc.renamed(FIELD_NAMES) from None


def ref_images(value: Sequence[str] | str | None, limits: Limits) -> list[InputImage]:
    """Each reference image: an http(s) URL left for the front door's safe fetcher, or a
    ``data:image/…;base64`` URI decoded now. More than the vendor's 3 is refused before any is read."""
    if value is None:
        return []
    urls = [value] if isinstance(value, str) else list(value)
    if len(urls) > MAX_REF_IMAGES:
        raise InvalidRequestError(
            f"ref_images: {len(urls)} images is more than {MAX_REF_IMAGES}; send at most "
            f"{MAX_REF_IMAGES} reference images",
            field="ref_images",
        )
    limits.check_input_count(len(urls), field="ref_images")
    return [_ref_image(url.strip(), f"ref_images[{index}]", limits) for index, url in enumerate(urls)]


def _ref_image(url: str, label: str, limits: Limits) -> InputImage:
    return image_url(url, label, label, limits=limits)


# --- answers ----------------------------------------------------------------------------------

SUCCESS = 0  # the vendor's clients test `code !== 0` for an error


def success_body(urls: Sequence[str], task_id: str) -> dict[str, Any]:
    """The answer: ``data.url`` one string for one image, a list for several; ``task_id`` is a
    Plantain extension (``GET /v1/tasks/{id}`` has seeds, usage and provenance)."""
    url: str | list[str] = urls[0] if len(urls) == 1 else list(urls)
    return {"code": SUCCESS, "message": "success", "data": {"url": url, "task_id": task_id}}


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """``{"code": <HTTP status>, "message", "data": null}``, the status also the HTTP one; a core
    field is given the vendor's name (``num_images`` -> ``num``). ``error`` (Plantain's code and
    the field at fault) is an extension a client may read or ignore."""
    error = error.renamed(FIELD_NAMES)
    message = error.message
    if isinstance(error, ContentBlockedError):
        message = f"the request was blocked by the safety system: {message}"
    return error.status, {
        "code": error.status,
        "message": message,
        "data": None,
        "error": {"code": error.code, "field": error.field},
    }
