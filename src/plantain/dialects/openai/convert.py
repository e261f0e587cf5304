"""Pure conversions between the OpenAI Images API and Plantain's internal model.

OpenAI request -> :class:`ImageRequest` (its ``mask`` converted), :class:`ImageResult` -> OpenAI
response or stream events, engine registry -> OpenAI model list. Nothing here does I/O; the routes
do that around these.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from annotated_types import Ge, Le
from PIL import Image
from pydantic import ValidationError

from plantain.dialects.grounding import grounding_object
from plantain.dialects.openai.protocol import ImageParams, VariationParams
from plantain.dialects.report import background_made, ignored
from plantain.dialects.wire import encode_base64, validation_error
from plantain.errors import InvalidImageError, InvalidRequestError
from plantain.imaging.codecs import encode_image, sniff_format
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS, nearest_aspect_ratio
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

# `size` is exact pixels ("1536x1024": that many, or a 400 naming the engine's limit), an aspect
# ratio of Plantain's table ("16:9", as gateways send it), or auto. Ratios and `resolution` tiers
# give the table's pixels (imaging/sizes.py), as the Gemini dialect does.
_EXACT = re.compile(r"(\d{1,6})x(\d{1,6})")
_RESOLUTIONS = {"512": "512", "0.5K": "512", "1K": "1K", "2K": "2K", "4K": "4K"}

# Internal field names -> the OpenAI parameter a caller sent, for error `param`s and messages.
PARAM_NAMES = {
    "images": "image",
    "num_images": "n",
    "engine": "model",
    "width": "size",
    "height": "size",
    "plan": "rewrite_prompt",
    "grounding": "grounding",
    "options.preset": "preset",
}

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
    if len(error["loc"]) != 1:  # inside a parameter (loras[0].scale): named as the path to it
        return validation_error(exc)
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


def inpaint_mask(data: bytes, max_pixels: int) -> InputImage:
    """OpenAI's ``mask`` -> the internal one (:attr:`ImageRequest.mask`).

    OpenAI's is a PNG the size of the (first) image whose fully transparent pixels (alpha 0) mark
    where to edit; the internal one is a greyscale PNG, white where to repaint, black where to
    keep. A mask that is not a PNG or has no alpha channel is refused naming ``mask``; its size is
    checked against the image once that is decoded (the engine's planning)."""
    sniffed = sniff_format(data)
    if sniffed != "PNG":
        what = "not a recognisable image" if sniffed is None else f"a {sniffed} image"
        raise InvalidImageError(
            f"mask is {what}; send a PNG with an alpha channel whose fully transparent pixels mark "
            "where to edit",
            field="mask",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise InvalidImageError(
                        f"mask is {width}x{height} = {width * height} pixels; the limit is "
                        f"{max_pixels} pixels (max_input_pixels)",
                        field="mask",
                    )
                if opened.mode not in {"RGBA", "LA", "PA"} and "transparency" not in opened.info:
                    raise InvalidImageError(
                        f"mask has no alpha channel (PNG mode {opened.mode}); OpenAI's mask marks where "
                        "to edit with fully transparent pixels (alpha 0): send a PNG with an alpha "
                        "channel, the same size as the image",
                        field="mask",
                    )
                alpha = opened.convert("RGBA").getchannel("A")
    except InvalidImageError:
        raise
    except Exception as exc:  # a corrupt PNG: Pillow raises more than its documented errors
        raise InvalidImageError(
            f"mask is not a readable PNG ({exc or type(exc).__name__}); send a PNG with an alpha channel",
            field="mask",
        ) from None
    repaint = alpha.point(lambda value: 255 if value == 0 else 0)
    return InputImage(data=encode_image(repaint, "png"), label="mask")


def to_image_request(
    params: ImageParams,
    engine: str,
    images: tuple[InputImage, ...] = (),
    mask: InputImage | None = None,
) -> ImageRequest:
    """Parameters (already parsed) -> the internal request, refusing what Plantain cannot honour;
    ``mask`` is already converted (:func:`inpaint_mask`)."""
    size = resolve_size(params.size, params.aspect_ratio, params.resolution)
    try:
        return _create_request(params, engine, images, size, mask)
    except InvalidRequestError as exc:
        raise exc.renamed(PARAM_NAMES) from None


def _create_request(
    params: ImageParams,
    engine: str,
    images: tuple[InputImage, ...],
    size: SizeChoice,
    mask: InputImage | None = None,
) -> ImageRequest:
    unused = {name: getattr(params, name) for name in IGNORED_PARAMS}
    return ImageRequest.create(
        prompt=params.prompt,
        images=images,
        mask=mask,
        aspect_ratio=size.aspect_ratio,
        size=size.tier,
        width=size.width,
        height=size.height,
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
        options={"steps_scale": QUALITY_STEPS_SCALE.get(params.quality or "auto"), "preset": params.preset},
        ignored=ignored(unused | {name: params.resolution for name in size.ignored}),
        plan=params.rewrite_prompt,
        grounding=bool(params.grounding),
        loras=tuple(params.loras or ()),
    )


# dall-e-2 makes variations with no prompt; Plantain runs one as an edit with this one.
VARIATION_PROMPT = "a variation of this image"


def variation_params(params: VariationParams) -> ImageParams:
    """``/v1/images/variations`` fields -> an edit's parameters, prompted with VARIATION_PROMPT."""
    return ImageParams(prompt=VARIATION_PROMPT, **params.model_dump(exclude_none=True))


def parse_variation(data: Mapping[str, Any]) -> VariationParams:
    """Variation form fields -> parameters; a prompt or an edit-only field is refused by name."""
    try:
        return VariationParams.model_validate(dict(data))
    except ValidationError as exc:
        error = exc.errors()[0]
        if error["type"] == "extra_forbidden":
            param = str(error["loc"][0])
            raise InvalidRequestError(
                f"{param} is not a parameter of /v1/images/variations (it takes image, model, n, "
                "size, response_format and user); use /v1/images/edits to steer an image with a prompt",
                field=param,
            ) from None
        raise validation_error(exc) from None


# --- sizes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeChoice:
    """What ``size``, ``aspect_ratio`` and ``resolution`` ask for: exact pixels (``width``,
    ``height``), or a ratio of the table (None: the engine's default shape) at a tier."""

    aspect_ratio: str | None = None
    tier: str = "1K"
    width: int | None = None
    height: int | None = None
    ignored: tuple[str, ...] = ()  # parameters an exact size overrides: ("resolution",)


def resolve_size(
    size: str | None, aspect_ratio: str | None = None, resolution: str | None = None
) -> SizeChoice:
    """OpenAI ``size`` (and a gateway's ``aspect_ratio`` and ``resolution``) -> what to make.

    ``WxH`` is exact (the engine checks it against its limits when the request is checked);
    ``W:H`` in ``size`` is the same as ``aspect_ratio``; a ratio that contradicts the other is
    refused. ``resolution`` picks the table's tier; with exact pixels it has no say, as on
    Lumenfall, and is reported ignored."""
    ratio = _ratio(aspect_ratio, "aspect_ratio")
    tier = _tier(resolution)
    key = (size or "auto").strip().lower().replace(" ", "")
    if key == "auto":
        return SizeChoice(ratio, tier)
    exact = _EXACT.fullmatch(key)
    if exact is not None:
        width, height = int(exact.group(1)), int(exact.group(2))
        if width == 0 or height == 0:
            raise InvalidRequestError(
                f"size: {size!r} has a zero side; each side is at least 1 pixel", field="size"
            )
        if ratio is not None and nearest_aspect_ratio(width, height) != ratio:
            raise _conflict(size, f"is {nearest_aspect_ratio(width, height)}", aspect_ratio)
        return SizeChoice(width=width, height=height, ignored=("resolution",) if resolution else ())
    if ":" in key:
        size_ratio = _ratio(key, "size")
        if ratio is not None and ratio != size_ratio:
            raise _conflict(size, f"is {size_ratio}", aspect_ratio)
        return SizeChoice(size_ratio, tier)
    raise InvalidRequestError(
        f"size: {size!r} is not supported; use auto, a size in pixels as WIDTHxHEIGHT (such as "
        "1024x1024, 1536x1024 or 256x256, each side a multiple of the engine's step and within its "
        f"pixel limit), or an aspect ratio: {', '.join(ASPECT_RATIOS)}",
        field="size",
    )


def _conflict(size: str | None, shape: str, aspect_ratio: str | None) -> InvalidRequestError:
    return InvalidRequestError(
        f"size {size!r} {shape} and aspect_ratio {aspect_ratio!r} asks for another shape; "
        "send one of them, or the two agreeing",
        field="size",
    )


def _ratio(value: str | None, param: str) -> str | None:
    """An aspect ratio of the table, or None for absent or ``auto``."""
    if value is None or value.strip().lower() in {"", "auto"}:
        return None
    ratio = value.strip().replace(" ", "")
    if ratio not in ASPECT_RATIOS:
        raise InvalidRequestError(
            f"{param}: {value!r} is not a supported aspect ratio; use one of {', '.join(ASPECT_RATIOS)}",
            field=param,
        )
    return ratio


def _tier(resolution: str | None) -> str:
    """``resolution`` -> the table's tier; absent: 1K."""
    if resolution is None:
        return "1K"
    key = resolution.strip().upper().removesuffix("PX")
    if key not in _RESOLUTIONS:
        raise InvalidRequestError(
            f"resolution: {resolution!r} is not supported; use one of {', '.join(TIERS)}", field="resolution"
        )
    return _RESOLUTIONS[key]


# --- response format ------------------------------------------------------------------------

URL_MODELS = frozenset({"dall-e-2", "dall-e-3"})  # OpenAI answers these with URLs by default


def response_format(requested: str | None, model: str | None, *, variation: bool = False) -> str:
    """``url`` or ``b64_json``: as asked, else OpenAI's default for the model — ``url`` for
    dall-e-2 and dall-e-3 (and for a variation, dall-e-2's endpoint, with no model),
    ``b64_json`` for GPT image models, engine names and the default engine."""
    if requested is not None:
        return requested
    name = (model or "").removeprefix("models/").removeprefix("openai/")
    if name in URL_MODELS or (variation and not model):
        return "url"
    return "b64_json"


def revised_prompt(result: ImageResult) -> str | None:
    """The prompt the planner stage gave the engine (docs/planner.md), or None when none ran."""
    return result.plan.revised_prompt if result.plan is not None else None


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
    cost: float | None = None,
) -> dict[str, Any]:
    """The ``ImagesResponse`` body: ``b64_json`` per image, or ``url`` when ``urls`` are given;
    ``counted`` is the task's usage (plantain.usage), reported in gpt-image's ``usage`` shape.
    ``revised_prompt`` is the prompt the engine got from the planner stage, as dall-e-3 reports its
    rewrite (None when no planner ran)."""
    revised = revised_prompt(result)
    if urls is None:
        data: list[dict[str, Any]] = [
            {"b64_json": _b64(image), "revised_prompt": revised} for image in result.images
        ]
    else:
        data = [{"url": url, "revised_prompt": revised} for url in urls]
    for item, image in zip(data, result.images, strict=True):
        item["seed"] = image.seed  # a Plantain extension, as the seed parameter is
    return {
        "created": created,
        "data": data,
        **_echo(result.images[0], params),
        "usage": usage(counted, cost),
        **_grounding(result),
    }


def _grounding(result: ImageResult) -> dict[str, Any]:
    """Search grounding's report and how an upscaled image was made, as Plantain extension fields
    (none when not grounded, not upscaled): OpenAI's images API has no place for either."""
    extra: dict[str, Any] = {}
    if result.grounding is not None:
        extra["grounding"] = grounding_object(result.grounding)
    if result.upscaled is not None:
        extra["upscaled"] = result.upscaled.model_dump()
    return extra


def stream_events(
    result: ImageResult,
    params: ImageParams,
    created: int,
    endpoint: Endpoint,
    *,
    counted: TokenUsage,
    cost: float | None = None,
) -> list[str]:
    """The stream's last events: one ``<endpoint>.completed`` per image, each with the usage of the
    whole request (a client reads it from any one of them), and the planner's ``revised_prompt``
    when one ran (left out otherwise: OpenAI's events have no such field, and unknown ones are
    ignored by the SDK)."""
    kind = f"{endpoint}.completed"
    shared = {**_echo(result.images[0], params), "usage": usage(counted, cost), **_grounding(result)}
    if result.plan is not None:
        shared["revised_prompt"] = result.plan.revised_prompt
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


def usage(counted: TokenUsage, cost: float | None = None) -> dict[str, Any]:
    """Tokens in gpt-image's shape, counted as Gemini counts them for the model asked for (the
    prompt's estimated); every output token is an image token. ``cost``, the task's cost in the
    server's currency, goes in as ``cost``, as gateways (Lumenfall, OpenRouter) report it."""
    return {
        **({} if cost is None else {"cost": cost}),
        "input_tokens": counted.input,
        "input_tokens_details": {"text_tokens": counted.input_text, "image_tokens": counted.input_image},
        "output_tokens": counted.output,
        "output_tokens_details": {"image_tokens": counted.output, "text_tokens": 0},
        "total_tokens": counted.total,
    }


def _b64(image: GeneratedImage) -> str:
    return encode_base64(image.data)
