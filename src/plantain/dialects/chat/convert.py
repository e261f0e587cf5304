"""Pure conversions between chat completions and Plantain's internal model.

A chat body -> :class:`ImageRequest`; an :class:`ImageResult` -> a ``chat.completion`` whose
choices carry ``message.images`` (OpenRouter's shape), or the ``chat.completion.chunk`` events of
a stream. ``n`` is OpenAI's: that many choices, each with one image. When the planner stage ran
(docs/planner.md), its text is each choice's ``message.content`` (a content delta before the
image in a stream), as an image model on OpenRouter answers; otherwise the content is empty.
Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from plantain.dialects.chat.messages import read_conversation
from plantain.dialects.chat.protocol import IGNORED_PARAMS, ChatRequest, Reasoning
from plantain.dialects.grounding import url_citations
from plantain.dialects.report import ignored
from plantain.dialects.wire import encode_base64, load_object, validation_error
from plantain.errors import InvalidRequestError, PlantainError
from plantain.limits import Limits
from plantain.types import GeneratedImage, ImageRequest, ImageResult, ProvenanceChoice, TokenUsage

# Core field names -> what a chat caller wrote, for error messages and the envelope's `param`.
FIELD_NAMES = {
    "images": "messages",
    "num_images": "n",
    "aspect_ratio": "image_config.aspect_ratio",
    "size": "image_config.image_size",
    "engine": "model",
    "prompt": "messages",
    "plan": "rewrite_prompt",
    "grounding": "plugins",
    "options.preset": "preset",
}

ONLINE = ":online"  # OpenRouter's model suffix for web search: "google/gemini-2.5-flash-image:online"


def parse_request(raw: bytes) -> ChatRequest:
    """The body, or a 400 naming the malformed field or the unknown parameter."""
    data = load_object(raw)
    try:
        body = ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise _param_error(exc) from None
    unknown = [name for name in body.extra_params() if name not in IGNORED_PARAMS]
    if unknown:
        raise InvalidRequestError(
            f"{unknown[0]} is not a known parameter of chat completions here (see docs/chat.md)",
            field=unknown[0],
        )
    return body


def _param_error(exc: ValidationError) -> InvalidRequestError:
    error = exc.errors()[0]
    if error["loc"] and error["loc"][0] == "n" and error["type"].startswith(("greater", "less")):
        return InvalidRequestError(
            f"n: {error.get('input')!r} is not allowed; must be between 1 and 10 (one image per choice)",
            field="n",
        )
    return validation_error(exc)


def check_modalities(modalities: list[str] | None) -> None:
    """Absent means image and text; a list without ``image`` is refused: only images are made here."""
    if modalities is None:
        return
    if "image" not in {item.strip().lower() for item in modalities}:
        raise InvalidRequestError(
            f"modalities: {modalities!r} does not include 'image'; this server only makes images, "
            'so send modalities ["image", "text"] or ["image"]',
            field="modalities",
        )


def to_image_request(body: ChatRequest, engine: str, limits: Limits) -> ImageRequest:
    """The core request ``body`` asks for, to run on ``engine``; http image URLs not yet fetched."""
    check_modalities(body.modalities)
    conversation = read_conversation(body.messages, limits)
    image_config = body.image_config
    fields: dict[str, Any] = {
        "prompt": conversation.prompt,
        "images": conversation.images,
        "aspect_ratio": image_config.aspect_ratio if image_config else None,
        "size": image_config.image_size if image_config else None,
        "num_images": body.n,
        "seed": body.seed,
        "engine": engine,
        "provenance": ProvenanceChoice(
            watermark=body.watermark, content_credentials=body.content_credentials
        ),
        "ignored": (*ignored(body.extra_params()), *_other_plugins(body)),
        "plan": plan_choice(body),
        "grounding": grounding_choice(body),
        "loras": tuple(body.loras) if body.loras else None,
        "options": {"preset": body.preset} if body.preset else None,
        **conversation.history,
    }
    try:
        return ImageRequest.create(**{name: value for name, value in fields.items() if value is not None})
    except InvalidRequestError as exc:
        raise exc.renamed(FIELD_NAMES) from None


def grounding_choice(body: ChatRequest) -> bool:
    """Whether ``body`` asks for web search: OpenRouter's ``web`` plugin or ``:online`` model
    suffix, or OpenAI's ``web_search_options`` (its settings do not change what is searched)."""
    web_plugin = any(plugin.get("id") == "web" for plugin in body.plugins or [])
    return web_plugin or body.web_search_options is not None or (body.model or "").endswith(ONLINE)


def without_online(model: str | None) -> str | None:
    """``model`` without OpenRouter's ``:online`` suffix: the model it names is the same."""
    return model[: -len(ONLINE)] if model and model.endswith(ONLINE) else model


def _other_plugins(body: ChatRequest) -> tuple[str, ...]:
    """Plugins other than web search (file parsing, response healing): reported as ignored."""
    return tuple(f"plugins.{plugin.get('id')}" for plugin in body.plugins or [] if plugin.get("id") != "web")


def plan_choice(body: ChatRequest) -> bool | None:
    """``ImageRequest.plan``: ``rewrite_prompt`` when sent (Plantain's own switch wins); else
    False when reasoning is turned off (``reasoning.enabled: false``, an effort of ``none``,
    ``reasoning.max_tokens: 0``), since the planner is this server's reasoning; else None, the
    server's ``planner`` setting (a reasoning effort cannot ask for a planner the server lacks)."""
    if body.rewrite_prompt is not None:
        return body.rewrite_prompt
    return False if _reasoning_off(body.reasoning) or body.reasoning_effort == "none" else None


def _reasoning_off(reasoning: Reasoning | None) -> bool:
    if reasoning is None:
        return False
    return reasoning.enabled is False or reasoning.effort == "none" or reasoning.max_tokens == 0


def renamed(error: PlantainError) -> PlantainError:
    """An error of the core (raised as the request was checked) named by the chat fields."""
    return error.renamed(FIELD_NAMES)


# --- results --------------------------------------------------------------------------------


def completion_body(
    result: ImageResult,
    completion_id: str,
    model: str,
    created: int,
    *,
    counted: TokenUsage,
    cost: float | None = None,
) -> dict[str, Any]:
    """A ``chat.completion``: one choice per image, its ``message.images`` holding it and its
    ``message.content`` the planner's text (each choice is a whole answer, so each has it)."""
    content = plan_text(result)
    choices = [
        {
            "index": index,
            "finish_reason": "stop",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": content,
                "images": [image_item(image)],
                **citations(result, content),
            },
        }
        for index, image in enumerate(result.images)
    ]
    return {
        **_head(completion_id, model, created, "chat.completion"),
        "choices": choices,
        "usage": usage(counted, cost),
    }


def citations(result: ImageResult, content: str) -> dict[str, Any]:
    """``{"annotations": [...]}`` with a ``url_citation`` per page search grounding read (as
    OpenRouter's web search annotates a message); empty when the request was not grounded."""
    if result.grounding is None:
        return {}
    return {"annotations": url_citations(result.grounding, content)}


def plan_text(result: ImageResult) -> str:
    """The planner stage's text (docs/planner.md); empty when none ran, as before it existed."""
    return result.plan.text if result.plan is not None else ""


def image_item(image: GeneratedImage) -> dict[str, Any]:
    """One image as OpenRouter answers it: a data URL; ``seed`` is a Plantain extension."""
    url = f"data:{image.media_type};base64,{encode_base64(image.data)}"
    return {"type": "image_url", "image_url": {"url": url}, "index": 0, "seed": image.seed}


def opening_chunk(completion_id: str, model: str, created: int, choices: int) -> str:
    """The first chunk, sent as soon as the task is queued: the assistant's role per choice."""
    deltas = [_choice(index, {"role": "assistant", "content": ""}) for index in range(choices)]
    return chunk(completion_id, model, created, deltas)


def closing_chunks(
    result: ImageResult,
    completion_id: str,
    model: str,
    created: int,
    *,
    counted: TokenUsage,
    cost: float | None = None,
) -> list[str]:
    """The planner's text as each choice's content delta (when there is any, with search
    grounding's annotations), each choice's image,
    then each choice's ``finish_reason``, then the usage (``choices`` empty, as OpenAI sends
    ``include_usage``), then ``[DONE]``."""
    content = plan_text(result)
    cited = citations(result, content)
    texts = (
        [_choice(i, {"content": content, **cited}) for i in range(len(result.images))]
        if content or cited
        else []
    )
    images = [_choice(i, {"images": [image_item(image)]}) for i, image in enumerate(result.images)]
    stops = [_choice(i, {}, "stop") for i in range(len(result.images))]
    return [
        *([chunk(completion_id, model, created, texts)] if content or cited else []),
        *(chunk(completion_id, model, created, [item]) for item in images),
        chunk(completion_id, model, created, stops),
        chunk(completion_id, model, created, [], usage(counted, cost)),
        DONE,
    ]


DONE = "data: [DONE]\n\n"
KEEPALIVE = ": PLANTAIN PROCESSING\n\n"  # an SSE comment, as OpenRouter sends while a model works


def chunk(
    completion_id: str,
    model: str,
    created: int,
    choices: list[dict[str, Any]],
    counted: Mapping[str, Any] | None = None,
) -> str:
    body: dict[str, Any] = {
        **_head(completion_id, model, created, "chat.completion.chunk"),
        "choices": choices,
    }
    if counted is not None:
        body["usage"] = dict(counted)
    return data_line(body)


def data_line(body: Mapping[str, Any]) -> str:
    """One SSE event; an ``{"error": …}`` body makes the openai SDK raise ``APIError``."""
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


def _choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


def _head(completion_id: str, model: str, created: int, kind: str) -> dict[str, Any]:
    return {"id": completion_id, "object": kind, "created": created, "model": model}


def usage(counted: TokenUsage, cost: float | None = None) -> dict[str, Any]:
    """Tokens as Gemini counts them for the model (plantain.usage): every output token an image's;
    ``cost``, the task's cost in the server's currency, as OpenRouter's ``usage.cost``."""
    return {
        **({} if cost is None else {"cost": cost}),
        "prompt_tokens": counted.input,
        "completion_tokens": counted.output,
        "total_tokens": counted.total,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": counted.input_image},
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": counted.output},
    }
