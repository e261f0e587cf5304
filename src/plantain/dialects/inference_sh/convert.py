"""Pure conversions for inference.sh's app API: an app reference -> the model it runs, a run
body -> an :class:`ImageRequest` (this module does no I/O)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from plantain.dialects.inference_sh.protocol import AppInput, RunRequest
from plantain.dialects.report import ignored as sent
from plantain.dialects.wire import decode_base64, load_json, validate
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidRequestError, UnknownModelError
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.safety.terms import strictest
from plantain.types import ImageRequest, InputImage, SafetyLevel

SOURCE = "inference_sh"  # Task.source of the tasks this door submits (its webhooks' shape)

# inference.sh's Gemini image apps -> the vendor model each one is (engines/model_names.py),
# which the ``models`` setting maps to an engine like any Gemini model name.
GOOGLE_APPS: dict[str, str] = {
    "google/gemini-2-5-flash-image": "gemini-2.5-flash-image",
    "google/gemini-3-pro-image-preview": "gemini-3-pro-image-preview",
    "google/gemini-3-pro-image": "gemini-3-pro-image",
    "google/gemini-3-1-flash-image-preview": "gemini-3.1-flash-image-preview",
    "google/gemini-3-1-flash-image": "gemini-3.1-flash-image",
}
APP_OF_MODEL = {model: app for app, model in GOOGLE_APPS.items()}
ENGINE_NAMESPACE = "plantain"  # plantain/<engine> runs that engine

# Core field names -> this dialect's, for errors.
FIELD_NAMES = {
    "prompt": "input.prompt",
    "size": "input.resolution",
    "num_images": "input.num_images",
    "images": "input.images",
    "aspect_ratio": "input.aspect_ratio",
    "output_format": "input.output_format",
    "seed": "input.seed",
    "model": "app",
    "grounding": "input.enable_google_search",
}

RESOLUTIONS = {"0.5K": "512", "1K": "1K", "2K": "2K", "4K": "4K"}

# Both vocabularies, as Gemini's thresholds map (dialects/gemini/safety.py); docs/safety.md.
SAFETY_FILTERS: dict[str, SafetyLevel] = {
    "block_low_and_above": "strict",
    "block_medium_and_above": "standard",
    "block_only_high": "relaxed",
    "block_none": "off",
}
SAFETY_TOLERANCES: dict[str, SafetyLevel] = {
    "BLOCK_MOST": "strict",
    "BLOCK_SOME": "standard",
    "BLOCK_FEW": "relaxed",
    "BLOCK_NONE": "off",
}

# Sent, accepted, and without effect here (docs/parameters.md): a language model's sampling.
# (retry_count is used: a remote provider's retries, EngineOptions.retries; enable_google_search
# is search grounding, docs/grounding.md.)
IGNORED_INPUT_FIELDS = ("temperature", "top_p", "top_k", "max_tokens")
# The run request's fields about inference.sh's own fleet (workers, sessions, setup).
IGNORED_RUN_FIELDS = (
    "setup",
    "infra",
    "workers",
    "session",
    "session_timeout",
    "metadata",
    "app_id",
    "version_id",
)

_APP = re.compile(
    r"(?P<name>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<version>[\w.-]+))?(?::(?P<function>\w+))?"
)


def parse_run(raw: bytes, app: str | None = None) -> RunRequest:
    """``POST /apps/run``'s body, or the versioned path's (``app`` from the path): either the run
    request ``{"input": {...}, "webhook"?: ...}`` or the input object itself (it has no ``input``
    field, so the two cannot be confused)."""
    payload = load_json(raw)
    if not isinstance(payload, dict):
        raise InvalidRequestError(
            "the body must be a JSON object: the run request or the app's input", field="body"
        )
    if app is not None and "input" not in payload:
        payload = {"input": payload}
    body = validate(RunRequest, payload)
    if app is not None:
        if body.app is not None and app_name(body.app) != app_name(app):
            raise InvalidRequestError(
                f"app: {body.app!r} does not match the path's app {app!r}; drop it from the body", field="app"
            )
        body = body.model_copy(update={"app": app})
    if body.app is None:
        raise InvalidRequestError(
            "app is required, as namespace/name (e.g. google/gemini-2-5-flash-image)", field="app"
        )
    if body.run_at is not None:
        raise InvalidRequestError(
            f"run_at: {body.run_at!r} is not allowed; scheduled runs are not supported here: "
            "send the run when it should start",
            field="run_at",
        )
    if body.function not in (None, "", "run"):
        raise InvalidRequestError(
            f"function: {body.function!r} is not allowed; the image apps have only 'run'", field="function"
        )
    return body


def app_name(app: str) -> str:
    """``Google/Gemini-2-5-Flash-Image@abc1:run`` -> ``google/gemini-2-5-flash-image``: the version
    pin and the function are dropped (one server serves one version of each)."""
    match = _APP.fullmatch(app.strip())
    if match is None:
        raise InvalidRequestError(
            f"app: {app!r} is not an app reference; write namespace/name, optionally @version", field="app"
        )
    function = match.group("function")
    if function not in (None, "run"):
        raise InvalidRequestError(
            f"app: function {function!r} is not allowed; the image apps have only 'run'", field="app"
        )
    return match.group("name").lower()


def served_apps(registry: EngineRegistry) -> list[str]:
    """Every app name this server runs: the Gemini apps, then ``plantain/<engine>`` per engine."""
    return [*GOOGLE_APPS, *(f"{ENGINE_NAMESPACE}/{name}" for name in registry.names())]


def model_of(registry: EngineRegistry, app: str) -> str:
    """The model name a task of ``app`` records (a vendor name, or an engine name); unknown apps
    are a 404 naming the served ones."""
    name = app_name(app)
    if name in GOOGLE_APPS:
        return GOOGLE_APPS[name]
    namespace, _, engine = name.partition("/")
    if namespace == ENGINE_NAMESPACE and engine in registry.names():
        return engine
    raise UnknownModelError(
        f"app {app!r} is not served here; use one of {', '.join(served_apps(registry))}", field="app"
    )


def app_of(model: str) -> str:
    """The app a task's recorded model came in as (the inverse of :func:`model_of`)."""
    return APP_OF_MODEL.get(model, f"{ENGINE_NAMESPACE}/{model}")


def parse_input(payload: dict[str, Any]) -> AppInput:
    """The app input, strictly: a 400 names a wrong or unknown field as ``input.<name>``."""
    try:
        return validate(AppInput, payload)
    except InvalidRequestError as exc:
        field = f"input.{exc.field}" if exc.field and exc.field != "body" else "input"
        message = f"input.{exc.message}" if exc.field and exc.field != "body" else exc.message
        raise InvalidRequestError(message, field=field) from None


def image_sources(body: AppInput, limits: Limits = DEFAULT_LIMITS) -> list[InputImage]:
    """Each input image: an http(s) URL (fetched by the scheduler once every other check has
    passed), or a data: URI or base64 decoded here, refused from its length when over
    ``max_image_bytes`` (7 MB, inference.sh's inline limit). The count is checked first."""
    limits.check_input_count(len(body.images), field=FIELD_NAMES["images"])
    return [_input_image(value, index, limits) for index, value in enumerate(body.images)]


_OTHER_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://")  # file://, gs://…: never read


def _input_image(value: str, index: int, limits: Limits) -> InputImage:
    label = f"input.images[{index}]"
    if value[:8].lower().startswith(("http://", "https://")):
        return InputImage(url=value, label=label)
    if _OTHER_URL.match(value) or value.startswith(("/", "./", "../", "~")):
        raise InvalidRequestError(
            f"{label}: {value[:60]!r} cannot be read by the server; send an http(s) URL, a data: URI or "
            "base64 (the SDK and 'plantain app run' upload local files as base64)",
            field=label,
        )
    return InputImage(data=decode_base64(value, label, limits=limits), label=label)


def to_image_request(
    body: AppInput, images: Sequence[InputImage], ignored: Sequence[str] = ()
) -> ImageRequest:
    """``body`` as Plantain's request; ``ignored`` adds the run request's own ignored fields."""
    aspect = body.aspect_ratio
    fields: dict[str, Any] = {
        "prompt": body.prompt,
        "images": tuple(images),
        "aspect_ratio": None if aspect is None or aspect.strip().lower() == "auto" else aspect.strip(),
        "size": _resolution(body.resolution),
        "num_images": body.num_images,
        "output_format": body.output_format,
        "seed": body.seed,
        "safety": _safety(body),
        # A remote provider's retries (docs/providers.md); a local engine has none to make.
        "options": None if body.retry_count is None else {"retries": body.retry_count},
        "ignored": (*ignored, *sent({name: getattr(body, name) for name in IGNORED_INPUT_FIELDS})),
        "grounding": body.enable_google_search,
    }
    try:
        return ImageRequest.create(**{name: value for name, value in fields.items() if value is not None})
    except InvalidRequestError as exc:
        raise exc.renamed(FIELD_NAMES) from None


def _resolution(value: str | None) -> str | None:
    if value is None:
        return None
    tier = RESOLUTIONS.get(value.strip().upper())
    if tier is None:
        raise InvalidRequestError(
            f"input.resolution: {value!r} is not allowed; must be one of {', '.join(RESOLUTIONS)}",
            field="input.resolution",
        )
    return tier


def _safety(body: AppInput) -> SafetyLevel | None:
    """The level ``safety_filter`` and ``safety_tolerance`` ask for (the stricter when both are sent)."""
    levels = [
        level
        for level in (
            SAFETY_FILTERS.get(body.safety_filter or ""),
            SAFETY_TOLERANCES.get(body.safety_tolerance or ""),
        )
        if level is not None
    ]
    return strictest(levels) if levels else None
