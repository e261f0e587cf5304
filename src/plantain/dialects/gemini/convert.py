"""Pure conversions between the Gemini API and Plantain's core types.

Request → :class:`~plantain.types.ImageRequest`:

- The prompt is the text of the **last user turn**, with the ``systemInstruction`` text (if any)
  prepended and separated by a blank line, so a standing instruction ("You are an image editor")
  reaches the engine ahead of the request itself. Earlier user turns are not part of the prompt.
- Input images are those of the most recent earlier turn that carries any (in a ``client.chats``
  conversation: the previous model turn's image, the one being edited), followed by the images
  attached to the last user turn. ``thought: true`` parts (a model's interim drafts) never count.
  An image is ``inlineData`` (base64 in either alphabet) or ``fileData`` with an http(s)
  ``fileUri``, which becomes an input the scheduler fetches once the request has passed every
  other check (a batch refuses it: :mod:`batch_convert`).
- Several images are answered as several **candidates**, one image each, as Gemini does for
  ``candidateCount`` > 1: ``response.parts`` (= ``candidates[0].content.parts``) then shows the first
  image, and a client that asked for more reads ``response.candidates``.
- Only images are made: text parts are never returned, and ``responseModalities`` without IMAGE is
  refused rather than answered with nothing.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from plantain.dialects.gemini.protocol import (
    Blob,
    Candidate,
    Content,
    FileData,
    GenerateContentRequest,
    GenerationConfig,
    ImageConfig,
    ListModelsResponse,
    ModalityTokenCount,
    Model,
    Part,
    UsageMetadata,
)
from plantain.dialects.gemini.protocol import GenerateContentResponse as Response
from plantain.dialects.gemini.safety import safety_level
from plantain.dialects.report import ignored
from plantain.dialects.wire import decode_base64, encode_base64, load_json, validate
from plantain.engines.model_names import engine_for_model, served_models
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidImageError, InvalidRequestError
from plantain.imaging.codecs import accepted_formats
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.types import ImageRequest, ImageResult, InputImage, ProvenanceChoice
from plantain.usage import count_tokens, input_image_tokens, output_image_tokens, prompt_tokens

# ImageRequest field -> the Gemini field a caller set it with, so core errors name the caller's field.
FIELD_NAMES: dict[str, str] = {
    "prompt": "contents",
    "images": "contents",
    "aspect_ratio": "generationConfig.imageConfig.aspectRatio",
    "size": "generationConfig.imageConfig.imageSize",
    "num_images": "generationConfig.candidateCount",
    "seed": "generationConfig.seed",
    "output_format": "generationConfig.imageConfig.imageOutputOptions.mimeType",
    "output_quality": "generationConfig.imageConfig.imageOutputOptions.compressionQuality",
    "background": "generationConfig.imageConfig.background",
}

# generationConfig fields of a language model, accepted and reported as ignored (docs/parameters.md).
IGNORED_CONFIG = (
    *("temperature", "top_p", "top_k", "max_output_tokens", "presence_penalty", "frequency_penalty"),
    *("stop_sequences", "response_mime_type", "thinking_config", "media_resolution"),
)

FILES_API_HOST = "generativelanguage.googleapis.com"  # its file URIs need Google's credentials


# --- request ----------------------------------------------------------------------------------


def parse_request(raw: bytes) -> GenerateContentRequest:
    """The request body, or InvalidRequestError naming what is malformed."""
    return validate(GenerateContentRequest, load_json(raw))


def to_image_request(
    body: GenerateContentRequest, *, engine: str, limits: Limits = DEFAULT_LIMITS
) -> ImageRequest:
    """The core request a Gemini ``generateContent`` body asks for, to run on ``engine``; a
    ``fileData`` image is its URL, not yet fetched."""
    config = body.generation_config or GenerationConfig()
    _check_modalities(config)
    turn = _last_user_turn(body.contents)
    return _create(
        prompt=_prompt(body.system_instruction, body.contents[turn], turn),
        images=_input_images(body.contents, turn, limits),
        engine=engine,
        safety=safety_level(body.safety_settings),
        **_generation_fields(config),
    )


def _check_modalities(config: GenerationConfig) -> None:
    modalities = config.response_modalities
    if modalities and "IMAGE" not in {item.strip().upper() for item in modalities}:
        raise InvalidRequestError(
            f"generationConfig.responseModalities: {modalities!r} does not include IMAGE; this server "
            'only makes images, so ask for ["IMAGE"] or ["TEXT", "IMAGE"]',
            field="generationConfig.responseModalities",
        )


def _last_user_turn(contents: list[Content]) -> int:
    for turn in range(len(contents) - 1, -1, -1):
        if (contents[turn].role or "user").lower() != "model":
            return turn
    raise InvalidRequestError(
        "contents: no user turn; send at least one content with role 'user' and a text part",
        field="contents",
    )


def _prompt(system: Content | None, content: Content, turn: int) -> str:
    text = _text_of(content)
    if not text:
        raise InvalidRequestError(
            f"contents[{turn}].parts: the last user turn has no text; "
            "send the instruction for the image as a text part",
            field=f"contents[{turn}].parts",
        )
    instruction = _text_of(system) if system else ""
    return f"{instruction}\n\n{text}" if instruction else text


def _text_of(content: Content) -> str:
    texts = [part.text.strip() for part in content.parts if part.text and not part.thought]
    return "\n".join(text for text in texts if text)


def _input_images(contents: list[Content], turn: int, limits: Limits) -> tuple[InputImage, ...]:
    parts = _input_parts(contents, turn)
    limits.check_input_count(len(parts))  # before any base64 is decoded
    return tuple(_input_image(label, part, limits) for label, part in parts)


def _input_parts(contents: list[Content], turn: int) -> list[tuple[str, Part]]:
    """The images being edited (latest earlier turn with any), then the last user turn's own,
    each with the label errors name it by."""
    earlier: list[tuple[str, Part]] = []
    for previous in range(turn - 1, -1, -1):
        earlier = _image_parts(contents[previous], previous)
        if earlier:
            break
    return [*earlier, *_image_parts(contents[turn], turn)]


def _image_parts(content: Content, turn: int) -> list[tuple[str, Part]]:
    found = []
    for index, part in enumerate(content.parts):
        kind = "inlineData" if part.inline_data is not None else "fileData" if part.file_data else None
        if kind is not None and not part.thought:
            found.append((f"contents[{turn}].parts[{index}].{kind}", part))
    return found


def _input_image(label: str, part: Part, limits: Limits) -> InputImage:
    if part.file_data is not None:
        _check_mime_type(part.file_data.mime_type, label, limits)
        return InputImage(url=_file_uri(part.file_data, label), label=label)
    blob = part.inline_data or Blob()
    _check_mime_type(blob.mime_type, label, limits)
    data = decode_base64(blob.data, f"{label}.data", field=label, limits=limits, label=label)
    return InputImage(data=data, label=label)


def _check_mime_type(mime_type: str | None, label: str, limits: Limits) -> None:
    """A declared type that is not an image is refused; an image type is advisory (the bytes are
    sniffed)."""
    if not (mime_type or "image/*").lower().startswith("image/"):
        raise InvalidImageError(
            f"{label}.mimeType: {mime_type!r} is not an image; send {accepted_formats(limits)} images",
            field=label,
        )


def _file_uri(file: FileData | None, label: str) -> str:
    """``fileUri`` if it is an http(s) URL this server can fetch."""
    uri = (file.file_uri if file else "").strip()
    parsed = urlsplit(uri)
    field = f"{label}.fileUri"
    if parsed.scheme.lower() not in {"http", "https"} or not parsed.hostname:
        raise InvalidRequestError(
            f"{field}: {uri!r} cannot be fetched; only http(s) URLs are fetched (not gs:// or "
            "Files API names): send a public image URL, or the bytes as inlineData",
            field=field,
        )
    if parsed.hostname.lower() == FILES_API_HOST:
        raise InvalidRequestError(
            f"{field}: {uri!r} is a Gemini Files API file, which this server does not hold; only "
            "http(s) URLs of images are fetched: send the image's own URL, or the bytes as inlineData",
            field=field,
        )
    return uri


def _generation_fields(config: GenerationConfig) -> dict[str, Any]:
    image = config.image_config
    fields: dict[str, Any] = {
        "aspect_ratio": image.aspect_ratio if image else None,
        "size": image.image_size if image else None,
        "num_images": config.candidate_count,
        "seed": config.seed,
        "output_format": _output_format(image),
        "output_quality": _output_quality(image),
        "background": image.background if image else None,
        "provenance": _provenance(image),
        "ignored": _ignored(config),
    }
    return {name: value for name, value in fields.items() if value is not None}


def _provenance(image: ImageConfig | None) -> ProvenanceChoice:
    return ProvenanceChoice(
        watermark=image.add_watermark if image else None,
        content_credentials=image.content_credentials if image else None,
        watermark_field="generationConfig.imageConfig.addWatermark",
        content_credentials_field="generationConfig.imageConfig.contentCredentials",
    )


def _ignored(config: GenerationConfig) -> tuple[str, ...]:
    """The ignored fields ``config`` sets, by their Gemini names (``topP``)."""
    fields = GenerationConfig.model_fields
    return ignored({fields[name].alias or name: getattr(config, name) for name in IGNORED_CONFIG})


def _output_format(image: ImageConfig | None) -> str | None:
    """Vertex's ``imageOutputOptions.mimeType`` (or ``outputMimeType``): ``image/jpeg`` -> ``jpeg``."""
    if image is None:
        return None
    options = image.image_output_options
    chosen = (options.mime_type if options else None) or image.output_mime_type
    return chosen.lower().removeprefix("image/") if chosen else None


def _output_quality(image: ImageConfig | None) -> int | None:
    """Vertex's ``imageOutputOptions.compressionQuality`` (or ``outputCompressionQuality``)."""
    if image is None:
        return None
    options = image.image_output_options
    return (options.compression_quality if options else None) or image.output_compression_quality


def _create(**fields: Any) -> ImageRequest:
    """ImageRequest.create, with errors renamed to the Gemini fields the caller wrote."""
    try:
        return ImageRequest.create(**fields)
    except InvalidRequestError as exc:
        raise exc.renamed(FIELD_NAMES) from None


# --- response ---------------------------------------------------------------------------------


def new_response_id() -> str:
    return secrets.token_urlsafe(16)


def to_response(result: ImageResult, request: ImageRequest, model: str, response_id: str) -> Response:
    """One candidate per image, each finished with STOP; images in standard base64."""
    return response_with_usage(result, usage(request, result, model), model, response_id)


def response_with_usage(
    result: ImageResult, usage_metadata: UsageMetadata, model: str, response_id: str
) -> Response:
    """:func:`to_response` with the usage already counted (a batch counts it from a stored task)."""
    candidates = [_candidate(result, index) for index in range(len(result.images))]
    return Response(
        candidates=candidates,
        usage_metadata=usage_metadata,
        model_version=model_id(model),
        response_id=response_id,
    )


def to_stream_chunks(
    result: ImageResult, request: ImageRequest, model: str, response_id: str
) -> list[Response]:
    """One chunk per image (an image never splits); the last chunk also carries usageMetadata."""
    chunks = [
        Response(
            candidates=[_candidate(result, index)],
            model_version=model_id(model),
            response_id=response_id,
        )
        for index in range(len(result.images))
    ]
    chunks[-1].usage_metadata = usage(request, result, model)
    return chunks


def _candidate(result: ImageResult, index: int) -> Candidate:
    image = result.images[index]
    blob = Blob(mime_type=image.media_type, data=encode_base64(image.data))
    return Candidate(
        content=Content(role="model", parts=[Part(inline_data=blob)]),
        finish_reason="STOP",
        index=index,
    )


def usage(request: ImageRequest, result: ImageResult, model: str) -> UsageMetadata:
    """Token counts as Gemini reports them for ``model`` (plantain.usage; the prompt is estimated)."""
    return usage_of(request.prompt, len(request.images), request.size, len(result.images), model)


def usage_of(prompt: str, input_images: int, size: str, output_images: int, model: str) -> UsageMetadata:
    """:func:`usage` from its parts: a stored task keeps how many input images it had, not them.
    The counting is the core's (plantain.usage), so every dialect reports the same tokens."""
    tokens = count_tokens(prompt, input_images, size, output_images, model_id(model))
    return UsageMetadata(
        prompt_token_count=tokens.input,
        candidates_token_count=tokens.output,
        total_token_count=tokens.total,
        prompt_tokens_details=_prompt_details(tokens.input_text, tokens.input_image),
        candidates_tokens_details=[ModalityTokenCount(modality="IMAGE", token_count=tokens.output)],
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
}

# (input, output) token limits from Google's model pages; 32768 each where none is published.
TOKEN_LIMITS: dict[str, tuple[int, int]] = {
    "gemini-3-pro-image-preview": (65536, 32768),
    "gemini-3.1-flash-image-preview": (131072, 32768),
}
DEFAULT_TOKEN_LIMITS = (32768, 32768)

GENERATION_METHODS = ["generateContent", "streamGenerateContent"]


def list_models_body(registry: EngineRegistry, provenance: dict[str, Any]) -> dict[str, Any]:
    """The body of ``GET /v1beta/models``: every name a caller may pass as ``model``, with the
    ``provenance`` marks its images get."""
    models = [
        _model_entry(name, engine_for_model(registry, name), provenance) for name in served_models(registry)
    ]
    return ListModelsResponse(models=models).wire()


def get_model_body(registry: EngineRegistry, model: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """The body of ``GET /v1beta/models/{model}``; UnknownModelError (404) for a name not served."""
    name = model_id(model)
    return _model_entry(name, engine_for_model(registry, name), provenance).wire()


def _model_entry(name: str, engine: str, provenance: dict[str, Any]) -> Model:
    input_limit, output_limit = TOKEN_LIMITS.get(name, DEFAULT_TOKEN_LIMITS)
    return Model(
        name=f"models/{name}",
        base_model_id=name,
        version="001",
        display_name=DISPLAY_NAMES.get(name, name),
        description=f"Image generation and editing, served by Plantain's {engine} engine.",
        input_token_limit=input_limit,
        output_token_limit=output_limit,
        supported_generation_methods=list(GENERATION_METHODS),
        provenance=provenance,
    )


__all__ = [
    "decode_base64",
    "get_model_body",
    "list_models_body",
    "model_id",
    "new_response_id",
    "output_image_tokens",
    "parse_request",
    "response_with_usage",
    "to_image_request",
    "to_response",
    "to_stream_chunks",
    "usage",
    "usage_of",
]
