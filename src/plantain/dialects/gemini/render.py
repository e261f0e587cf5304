"""Gemini responses from Plantain's results: ``generateContent`` bodies and stream chunks,
``usageMetadata`` and ``countTokens``, and the ``models.list`` / ``models.get`` bodies (pure).

The request side, a Gemini body -> :class:`~plantain.types.ImageRequest`, is :mod:`convert`'s.

- Several images are answered as several **candidates**, one image each, as Gemini does for
  ``candidateCount`` > 1: ``response.parts`` (= ``candidates[0].content.parts``) then shows the first
  image, and a client that asked for more reads ``response.candidates``.
- Images are sent in standard base64; every candidate finishes with ``STOP``.
- When the planner stage ran (``result.plan``, docs/planner.md), each candidate answers as Nano
  Banana does, text then image: the planner's text part before the image, and first, when the
  request set ``thinkingConfig.includeThoughts``, the prompt the engine got as a thought part
  (``"thought": true``, how Gemini returns thought summaries). Without a plan, image parts only.
"""

from __future__ import annotations

import secrets
from typing import Any

from plantain.dialects.gemini.protocol import (
    Blob,
    Candidate,
    Content,
    GenerateContentRequest,
    ListModelsResponse,
    ModalityTokenCount,
    Model,
    Part,
    UsageMetadata,
)
from plantain.dialects.gemini.protocol import GenerateContentResponse as Response
from plantain.dialects.grounding import gemini_metadata
from plantain.dialects.wire import encode_base64
from plantain.engines.model_names import API_OF, engine_for_model, served_models
from plantain.engines.registry import EngineRegistry
from plantain.providers.passthrough import listed_provenance
from plantain.types import ImageRequest, ImageResult
from plantain.usage import count_tokens, input_image_tokens, output_image_tokens, prompt_tokens

# --- response ---------------------------------------------------------------------------------


def new_response_id() -> str:
    return secrets.token_urlsafe(16)


def to_response(
    result: ImageResult,
    request: ImageRequest,
    model: str,
    response_id: str,
    *,
    include_thoughts: bool = False,
) -> Response:
    """One candidate per image, each finished with STOP; images in standard base64.
    ``include_thoughts``: the request's ``thinkingConfig.includeThoughts`` (a plan's thought part)."""
    metadata = usage(request, result, model)
    return response_with_usage(result, metadata, model, response_id, include_thoughts=include_thoughts)


def response_with_usage(
    result: ImageResult,
    usage_metadata: UsageMetadata,
    model: str,
    response_id: str,
    *,
    include_thoughts: bool = False,
) -> Response:
    """:func:`to_response` with the usage already counted (a batch counts it from a stored task)."""
    candidates = [_candidate(result, index, include_thoughts) for index in range(len(result.images))]
    return Response(
        candidates=candidates,
        usage_metadata=usage_metadata,
        model_version=model_id(model),
        response_id=response_id,
    )


def to_stream_chunks(
    result: ImageResult,
    request: ImageRequest,
    model: str,
    response_id: str,
    *,
    include_thoughts: bool = False,
) -> list[Response]:
    """One chunk per image (an image never splits), its candidate's text parts before it as in
    :func:`to_response`; the last chunk also carries usageMetadata."""
    chunks = [
        Response(
            candidates=[_candidate(result, index, include_thoughts)],
            model_version=model_id(model),
            response_id=response_id,
        )
        for index in range(len(result.images))
    ]
    chunks[-1].usage_metadata = usage(request, result, model)
    return chunks


def _candidate(result: ImageResult, index: int, include_thoughts: bool) -> Candidate:
    """Each candidate is a whole answer, so each carries the plan's text parts before its image."""
    image = result.images[index]
    blob = Blob(mime_type=image.media_type, data=encode_base64(image.data))
    text_parts = _plan_parts(result, include_thoughts)
    return Candidate(
        content=Content(role="model", parts=[*text_parts, Part(inline_data=blob)]),
        finish_reason="STOP",
        grounding_metadata=_grounding(result, text_parts),
        index=index,
    )


def _grounding(result: ImageResult, text_parts: list[Part]) -> dict[str, Any] | None:
    """The candidate's ``groundingMetadata`` (None when not grounded), its support on the
    planner's text part, the last of ``text_parts`` that is not a thought."""
    if result.grounding is None:
        return None
    answers = [index for index, part in enumerate(text_parts) if not part.thought]
    text = text_parts[answers[-1]].text if answers else None
    return gemini_metadata(result.grounding, text, answers[-1] if answers else 0)


def _plan_parts(result: ImageResult, include_thoughts: bool) -> list[Part]:
    """The planner's parts (none without a plan): the revised prompt as a thought when asked for,
    then its text (left out when empty: an empty part says nothing)."""
    plan = result.plan
    if plan is None:
        return []
    parts = [Part(text=plan.revised_prompt, thought=True)] if include_thoughts else []
    return [*parts, Part(text=plan.text)] if plan.text else parts


def usage(request: ImageRequest, result: ImageResult, model: str) -> UsageMetadata:
    """Token counts as Gemini reports them for ``model`` (plantain.usage; the prompt is estimated)."""
    return usage_of(
        request.prompt,
        len(request.images),
        request.size,
        len(result.images),
        model,
        text_tokens=plan_output_tokens(result),
    )


def plan_output_tokens(result: ImageResult) -> int:
    """The planner's output tokens (0 without a plan): the text it answers with is output."""
    return result.plan.output_tokens if result.plan is not None else 0


def usage_of(
    prompt: str, input_images: int, size: str, output_images: int, model: str, *, text_tokens: int = 0
) -> UsageMetadata:
    """:func:`usage` from its parts: a stored task keeps how many input images it had, not them.
    The counting is the core's (plantain.usage), so every dialect reports the same tokens;
    ``text_tokens``, the planner's output, are added as the TEXT part of the candidates' count."""
    tokens = count_tokens(prompt, input_images, size, output_images, model_id(model))
    details = [ModalityTokenCount(modality="IMAGE", token_count=tokens.output)]
    if text_tokens:
        details.insert(0, ModalityTokenCount(modality="TEXT", token_count=text_tokens))
    return UsageMetadata(
        prompt_token_count=tokens.input,
        candidates_token_count=tokens.output + text_tokens,
        total_token_count=tokens.total + text_tokens,
        prompt_tokens_details=_prompt_details(tokens.input_text, tokens.input_image),
        candidates_tokens_details=details,
    )


def count_tokens_body(body: GenerateContentRequest, model: str) -> dict[str, Any]:
    """``countTokens``: the estimate ``usageMetadata`` makes of a prompt, over every turn and the
    system instruction (what a model that reads the whole conversation would be sent)."""
    contents = [*body.contents, *([body.system_instruction] if body.system_instruction else [])]
    parts = [part for content in contents for part in content.parts]
    text_tokens = prompt_tokens("".join(part.text or "" for part in parts))
    image_tokens = input_image_tokens(model) * sum(1 for part in parts if part.inline_data or part.file_data)
    details = [detail.wire() for detail in _prompt_details(text_tokens, image_tokens)]
    return {"totalTokens": text_tokens + image_tokens, "promptTokensDetails": details}


def _prompt_details(text_tokens: int, image_tokens: int) -> list[ModalityTokenCount]:
    details = [ModalityTokenCount(modality="TEXT", token_count=text_tokens)]
    if image_tokens:
        details.append(ModalityTokenCount(modality="IMAGE", token_count=image_tokens))
    return details


def model_id(model: str) -> str:
    """``models/<id>`` or ``<id>`` -> ``<id>``."""
    return model.removeprefix("models/")


# --- models.list / models.get -----------------------------------------------------------------

DISPLAY_NAMES: dict[str, str] = {
    "gemini-2.5-flash-image": "Nano Banana",
    "gemini-2.5-flash-image-preview": "Nano Banana (preview)",
    "nano-banana": "Nano Banana",
    "gemini-3-pro-image-preview": "Nano Banana Pro",
    "gemini-3.1-flash-image-preview": "Nano Banana 2",
    "gemini-3-pro-image": "Nano Banana Pro",
    "nano-banana-pro-preview": "Nano Banana Pro (preview)",
    "gemini-3.1-flash-image": "Nano Banana 2",
}

# (input, output) token limits from Google's model pages; 32768 each where none is published.
TOKEN_LIMITS: dict[str, tuple[int, int]] = {
    "gemini-3-pro-image-preview": (65536, 32768),
    "gemini-3.1-flash-image-preview": (131072, 32768),
    "gemini-3-pro-image": (65536, 32768),
    "nano-banana-pro-preview": (65536, 32768),
    "gemini-3.1-flash-image": (131072, 32768),
}
DEFAULT_TOKEN_LIMITS = (32768, 32768)

GENERATION_METHODS = ["generateContent", "streamGenerateContent"]
PREDICT_METHODS = ["predict"]  # Imagen names (engines/model_names.py: api "imagen")


def list_models_body(registry: EngineRegistry, provenance: dict[str, Any]) -> dict[str, Any]:
    """The body of ``GET /v1beta/models``: every name a caller may pass as ``model``, with the
    ``provenance`` marks its images get."""
    models = [_model_entry(registry, name, provenance) for name in served_models(registry)]
    return ListModelsResponse(models=models).wire()


def get_model_body(registry: EngineRegistry, model: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """The body of ``GET /v1beta/models/{model}``; UnknownModelError (404) for a name not served."""
    return _model_entry(registry, model_id(model), provenance).wire()


def _methods(name: str) -> list[str]:
    return list(PREDICT_METHODS if API_OF.get(name) == "imagen" else GENERATION_METHODS)


def _model_entry(registry: EngineRegistry, name: str, provenance: dict[str, Any]) -> Model:
    """``name``'s entry; the provenance its engine's images get (a provider's carry none of ours)."""
    engine = engine_for_model(registry, name)
    input_limit, output_limit = TOKEN_LIMITS.get(name, DEFAULT_TOKEN_LIMITS)
    return Model(
        name=f"models/{name}",
        base_model_id=name,
        version="001",
        display_name=DISPLAY_NAMES.get(name, name),
        description=f"Image generation and editing, served by Plantain's {engine} engine.",
        input_token_limit=input_limit,
        output_token_limit=output_limit,
        supported_generation_methods=_methods(name),
        provenance=listed_provenance(registry.get(engine), provenance),
    )


__all__ = [
    "get_model_body",
    "list_models_body",
    "model_id",
    "new_response_id",
    "output_image_tokens",
    "plan_output_tokens",
    "response_with_usage",
    "to_response",
    "to_stream_chunks",
    "usage",
    "usage_of",
]
