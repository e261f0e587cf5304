"""Pure conversions between the OpenAI Images API and Plantain's internal model.

OpenAI request -> :class:`ImageRequest`, :class:`ImageResult` -> OpenAI response or stream events,
engine registry -> OpenAI model list. Nothing here does I/O; the routes do that around these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from annotated_types import Ge, Le
from pydantic import ValidationError

from plantain.dialects.openai.protocol import ImageParams
from plantain.dialects.report import background_made, ignored
from plantain.dialects.wire import encode_base64, validation_error
from plantain.engines.model_names import served_models
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidRequestError, UnknownModelError
from plantain.imaging.sizes import TABLE_1K, TIER_SCALE
from plantain.types import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    InputImage,
    OutputFormat,
    ProvenanceChoice,
    SafetyLevel,
    TokenUsage,
)

Endpoint = Literal["image_generation", "image_edit"]  # also the prefix of the stream's event types

# OpenAI's named sizes -> (aspect ratio, tier). Only exact ratios are mapped; the pixels that come
# back are the core's table for that ratio (1536x1024 -> 1248x832), echoed in the response `size`.
OPENAI_SIZES: dict[str, tuple[str, str]] = {
    "1024x1024": ("1:1", "1K"),
    "1536x1024": ("3:2", "1K"),  # gpt-image landscape -> 1248x832
    "1024x1536": ("2:3", "1K"),  # gpt-image portrait -> 832x1248
    "1792x1024": ("16:9", "1K"),  # dall-e-3 landscape (exactly 7:4 = 1344:768) -> 1344x768
    "1024x1792": ("9:16", "1K"),  # dall-e-3 portrait -> 768x1344
}

TABLE_MULTIPLE = 16  # the table's own sizes at each tier, as an engine with 16-pixel multiples makes them


def _table_sizes() -> dict[str, tuple[str, str]]:
    """Every size of the core's table at every tier, by its pixels: ``"1344x768" -> ("16:9", "1K")``."""
    sizes: dict[str, tuple[str, str]] = {}
    for tier, scale in TIER_SCALE.items():
        for ratio, (width, height) in TABLE_1K.items():
            w, h = (round(side * scale / TABLE_MULTIPLE) * TABLE_MULTIPLE for side in (width, height))
            sizes.setdefault(f"{w}x{h}", (ratio, tier))
    return sizes


SIZES: dict[str, tuple[str, str]] = {**_table_sizes(), **OPENAI_SIZES}

# Internal field names -> the OpenAI parameter a caller sent, for error `param`s and messages.
PARAM_NAMES = {"images": "image", "num_images": "n", "aspect_ratio": "size", "engine": "model"}

# `quality` -> a multiple of the engine preset's steps (docs/parameters.md has each engine's steps);
# auto, medium and standard run the preset as it is.
QUALITY_STEPS_SCALE: dict[str, float] = {"low": 0.5, "high": 1.5, "hd": 1.5, "xhigh": 2.0, "max": 2.0}

# Accepted for the SDK's sake, used by nothing here: reported in X-Plantain-Ignored-Parameters.
IGNORED_PARAMS = (
    *("style", "input_fidelity"),  # dall-e-3's look; gpt-image's edit fidelity
    *("complexity", "frame_count", "frame_duration_ms", "markup", "svg"),  # newer OpenAI models'
)

# `moderation` -> safety level: auto is OpenAI's default, so it is the server's; low loosens it.
MODERATION_LEVELS: dict[str, SafetyLevel | None] = {"auto": None, "low": "relaxed"}


# --- requests -------------------------------------------------------------------------------


def parse_json(body: bytes) -> ImageParams:
    """A generations body -> parameters; malformed JSON or a bad value is a 400 naming it."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {type(data).__name__}")
    return parse_params(data)


def parse_params(data: Mapping[str, Any]) -> ImageParams:
    """JSON fields or multipart form fields (all strings) -> parameters."""
    try:
        return ImageParams.model_validate(dict(data))
    except ValidationError as exc:
        raise _param_error(exc) from None


def _param_error(exc: ValidationError) -> InvalidRequestError:
    """:func:`~plantain.dialects.wire.validation_error`, but an unknown parameter is named as one
    and a number out of range gets both of its field's bounds."""
    error = exc.errors()[0]
    param = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return InvalidRequestError(f"{param} is not a known parameter of the Images API", field=param)
    if error["type"] in {"greater_than_equal", "less_than_equal"}:
        low, high = _bounds(param)
        limit = f"must be between {low} and {high}"
        return InvalidRequestError(f"{param}: {error.get('input')!r} is not allowed; {limit}", field=param)
    return validation_error(exc)


def _bounds(param: str) -> tuple[object, object]:
    """The ``ge`` and ``le`` of an :class:`ImageParams` field."""
    metadata = ImageParams.model_fields[param].metadata
    low = next(item.ge for item in metadata if isinstance(item, Ge))
    high = next(item.le for item in metadata if isinstance(item, Le))
    return low, high


def input_images(parts: Sequence[tuple[str, bytes]]) -> tuple[InputImage, ...]:
    """Uploaded (file name, bytes) parts -> input images labelled so errors say which one."""
    labels = image_labels([name for name, _ in parts])
    return tuple(InputImage(data=data, label=label) for label, (_, data) in zip(labels, parts, strict=True))


def image_labels(filenames: Sequence[str]) -> list[str]:
    """How errors name each upload: ``image`` alone, ``image 1``, ``image 2``… among several,
    with the file's name when it has one."""
    count = len(filenames)
    labels = ["image"] if count == 1 else [f"image {i}" for i in range(1, count + 1)]
    return [_with_name(label, name) for label, name in zip(labels, filenames, strict=True)]


def _with_name(label: str, filename: str) -> str:
    # SDK uploads of raw bytes are all called "upload": naming that would not help anyone.
    return label if filename in {"", "upload"} else f"{label} ({filename})"


def to_image_request(params: ImageParams, engine: str, images: tuple[InputImage, ...] = ()) -> ImageRequest:
    """Parameters (already parsed) -> the internal request, refusing what Plantain cannot honour."""
    aspect_ratio, tier = resolve_size(params.size)
    try:
        return _create_request(params, engine, images, aspect_ratio, tier)
    except InvalidRequestError as exc:
        raise exc.renamed(PARAM_NAMES) from None


def _create_request(
    params: ImageParams, engine: str, images: tuple[InputImage, ...], aspect_ratio: str | None, tier: str
) -> ImageRequest:
    return ImageRequest.create(
        prompt=params.prompt,
        images=images,
        aspect_ratio=aspect_ratio,
        size=tier,
        num_images=params.n if params.n is not None else 1,
        output_format=output_format(params),
        output_quality=params.output_compression,
        seed=params.seed,
        engine=engine,
        safety=MODERATION_LEVELS[params.moderation] if params.moderation else None,
        background=params.background or "auto",
        provenance=ProvenanceChoice(
            watermark=params.watermark, content_credentials=params.content_credentials
        ),
        options={"steps_scale": QUALITY_STEPS_SCALE.get(params.quality or "auto")},
        ignored=ignored({name: getattr(params, name) for name in IGNORED_PARAMS}),
    )


def resolve_size(size: str | None) -> tuple[str | None, str]:
    """OpenAI ``size`` -> (aspect ratio or None for the engine's default, tier)."""
    if size is None or size.strip().lower() == "auto":
        return None, "1K"  # generation: square; edit: the first input's shape
    key = size.strip().lower().replace(" ", "")
    if key not in SIZES:
        raise InvalidRequestError(
            f"size: {size!r} is not supported; use auto, {', '.join(OPENAI_SIZES)}, or an exact size "
            "from Plantain's table such as 512x512, 1344x768 (16:9) or 2048x2048 (see docs/openai.md)",
            field="size",
        )
    return SIZES[key]


def output_format(params: ImageParams) -> OutputFormat:
    return params.output_format or "png"


# --- results --------------------------------------------------------------------------------


def response_body(
    result: ImageResult,
    params: ImageParams,
    created: int,
    urls: Sequence[str] | None = None,
    *,
    counted: TokenUsage,
) -> dict[str, Any]:
    """The ``ImagesResponse`` body: ``b64_json`` per image, or ``url`` when ``urls`` are given;
    ``counted`` is the task's usage (plantain.usage), reported in gpt-image's ``usage`` shape."""
    if urls is None:
        data: list[dict[str, Any]] = [
            {"b64_json": _b64(image), "revised_prompt": None} for image in result.images
        ]
    else:
        data = [{"url": url, "revised_prompt": None} for url in urls]
    for item, image in zip(data, result.images, strict=True):
        item["seed"] = image.seed  # a Plantain extension, as the seed parameter is
    return {"created": created, "data": data, **_echo(result.images[0], params), "usage": usage(counted)}


def stream_events(
    result: ImageResult, params: ImageParams, created: int, endpoint: Endpoint, *, counted: TokenUsage
) -> list[str]:
    """The stream's last events: one ``<endpoint>.completed`` per image, each with the usage of the
    whole request (a client reads it from any one of them)."""
    kind = f"{endpoint}.completed"
    shared = {**_echo(result.images[0], params), "usage": usage(counted)}  # once, not per image
    return [
        sse(kind, {"type": kind, "b64_json": _b64(image), "seed": image.seed, "created_at": created} | shared)
        for image in result.images
    ]


def partial_event(
    preview: GeneratedImage, index: int, params: ImageParams, created: int, endpoint: Endpoint
) -> str:
    """``<endpoint>.partial_image``: an in-progress image of the first output (0-based index)."""
    kind = f"{endpoint}.partial_image"
    return sse(
        kind,
        {
            "type": kind,
            "b64_json": _b64(preview),
            "partial_image_index": index,
            "created_at": created,
            **_echo(preview, params),
        },
    )


def error_event(body: Mapping[str, Any]) -> str:
    """An error after the stream has started (the status is already 200): the SDK raises APIError."""
    return sse("error", {"type": "error", **body})


def sse(event: str, data: Mapping[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _echo(first: GeneratedImage, params: ImageParams) -> dict[str, Any]:
    return {
        "background": background_made(first),  # what was made: a background not keyed out is opaque
        "output_format": output_format(params),
        "quality": params.quality or "auto",  # as sent; it scaled the steps (QUALITY_STEPS_SCALE)
        "size": f"{first.width}x{first.height}",  # the pixels made, which may differ from the ask
    }


def usage(counted: TokenUsage) -> dict[str, Any]:
    """Tokens in gpt-image's shape, counted as Gemini counts them for the model asked for (the
    prompt's estimated); every output token is an image token."""
    return {
        "input_tokens": counted.input,
        "input_tokens_details": {"text_tokens": counted.input_text, "image_tokens": counted.input_image},
        "output_tokens": counted.output,
        "output_tokens_details": {"image_tokens": counted.output, "text_tokens": 0},
        "total_tokens": counted.total,
    }


def _b64(image: GeneratedImage) -> str:
    return encode_base64(image.data)


# --- models ---------------------------------------------------------------------------------

MODEL_CREATED = 0  # served models have no meaningful creation time


def models_body(registry: EngineRegistry, provenance: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's list shape: vendor model names, then engine names, each
    with the ``provenance`` marks its images get (an extension field; the SDK keeps extras)."""
    return {"object": "list", "data": [_model(name, provenance) for name in served_models(registry)]}


def model_body(registry: EngineRegistry, model: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/models/{model}``; an unknown name is a 404."""
    served = served_models(registry)
    if model not in served:
        raise UnknownModelError(
            f"model {model!r} is not served here; use one of {', '.join(served)}", field="model"
        )
    return _model(model, provenance)


def _model(name: str, provenance: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": MODEL_CREATED,
        "owned_by": "plantain",
        "provenance": provenance,
    }
