"""Pure conversions between the Gemini API and Plantain's core types.

Request → :class:`~plantain.types.ImageRequest`:

- The prompt is the text of the **last user turn**, with the ``systemInstruction`` text (if any)
  prepended and separated by a blank line, so a standing instruction ("You are an image editor")
  reaches the engine ahead of the request itself. Earlier user turns are not part of the prompt.
- Input images are those of the most recent earlier turn that carries any (in a ``client.chats``
  conversation: the previous model turn's image, the one being edited), followed by the images
  attached to the last user turn. ``thought: true`` parts (a model's interim drafts) never count.
- Several images are answered as several **candidates**, one image each, as Gemini does for
  ``candidateCount`` > 1: ``response.parts`` (= ``candidates[0].content.parts``) then shows the first
  image, and a client that asked for more reads ``response.candidates``.
- Only images are made: text parts are never returned, and ``responseModalities`` without IMAGE is
  refused rather than answered with nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from plantain.dialects.gemini.protocol import (
    Blob,
    Candidate,
    Content,
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
from plantain.dialects.wire import decode_base64, encode_base64, load_json, validate
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidImageError, InvalidRequestError
from plantain.models import engine_for_model, served_models
from plantain.types import ImageRequest, ImageResult, InputImage

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
}

# Output tokens per image as Gemini bills them, by model family and imageSize.
# 2.5 Flash Image: 1290 at its one size. 3 Pro Image: 1120 at 1K/2K, 2000 at 4K (api-surfaces §1.8).
# 3.1 Flash Image: 2520 at 4K is §1.8's "up to 2520"; 1120 at 1K matches the $0.067 a 1K image costs
# at $60 per million output tokens; 747 (512) and 1680 (2K) follow Google's pricing page (not captured).
IMAGE_TOKENS: dict[str, dict[str, int]] = {
    "gemini-3-pro-image": {"512": 1120, "1K": 1120, "2K": 1120, "4K": 2000},
    "gemini-3.1-flash-image": {"512": 747, "1K": 1120, "2K": 1680, "4K": 2520},
}
DEFAULT_IMAGE_TOKENS = 1290  # gemini-2.5-flash-image*, nano-banana, engine names

# Prompt tokens are an estimate (no tokenizer runs): ~4 characters per text token, and Gemini's
# 258 tokens per input image (560 for 3 Pro Image, §1.8). Clients use them for display only.
CHARS_PER_TOKEN = 4
INPUT_IMAGE_TOKENS = 258
INPUT_IMAGE_TOKENS_3_PRO = 560


# --- request ----------------------------------------------------------------------------------


def parse_request(raw: bytes) -> GenerateContentRequest:
    """The request body, or InvalidRequestError naming what is malformed."""
    return validate(GenerateContentRequest, load_json(raw))


def to_image_request(body: GenerateContentRequest, *, engine: str) -> ImageRequest:
    """The core request a Gemini ``generateContent`` body asks for, to run on ``engine``."""
    config = body.generation_config or GenerationConfig()
    _check_modalities(config)
    _refuse_file_data(body.contents)
    turn = _last_user_turn(body.contents)
    return _create(
        prompt=_prompt(body.system_instruction, body.contents[turn], turn),
        images=_input_images(body.contents, turn),
        engine=engine,
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


def _refuse_file_data(contents: list[Content]) -> None:
    for turn, content in enumerate(contents):
        for index, part in enumerate(content.parts):
            if part.file_data is not None:
                field = f"contents[{turn}].parts[{index}].fileData"
                raise InvalidRequestError(
                    f"{field}: file references ({part.file_data.file_uri!r}) are not supported yet; "
                    "send the image bytes as inlineData",
                    field=field,
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


def _input_images(contents: list[Content], turn: int) -> tuple[InputImage, ...]:
    """The images being edited (latest earlier turn with any), then the last user turn's own."""
    earlier: list[InputImage] = []
    for previous in range(turn - 1, -1, -1):
        earlier = _images_of(contents[previous], previous)
        if earlier:
            break
    return (*earlier, *_images_of(contents[turn], turn))


def _images_of(content: Content, turn: int) -> list[InputImage]:
    return [
        _input_image(part.inline_data, f"contents[{turn}].parts[{index}].inlineData")
        for index, part in enumerate(content.parts)
        if part.inline_data is not None and not part.thought
    ]


def _input_image(blob: Blob, label: str) -> InputImage:
    mime_type = (blob.mime_type or "image/*").lower()
    if not mime_type.startswith("image/"):
        raise InvalidImageError(
            f"{label}.mimeType: {blob.mime_type!r} is not an image; send image/png, image/jpeg, "
            "image/webp or image/gif",
            field=label,
        )
    return InputImage(data=decode_base64(blob.data, f"{label}.data", field=label), label=label)


def _generation_fields(config: GenerationConfig) -> dict[str, Any]:
    image = config.image_config
    fields: dict[str, Any] = {
        "aspect_ratio": image.aspect_ratio if image else None,
        "size": image.image_size if image else None,
        "num_images": config.candidate_count,
        "seed": config.seed,
        "output_format": _output_format(image),
        "output_quality": _output_quality(image),
    }
    return {name: value for name, value in fields.items() if value is not None}


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
    """Token counts as Gemini reports them for ``model`` (see IMAGE_TOKENS; prompt is estimated)."""
    return usage_of(request.prompt, len(request.images), request.size, len(result.images), model)


def usage_of(prompt: str, input_images: int, size: str, output_images: int, model: str) -> UsageMetadata:
    """:func:`usage` from its parts: a stored task keeps how many input images it had, not them."""
    name = model_id(model)
    text_tokens = len(prompt) // CHARS_PER_TOKEN
    image_tokens = input_image_tokens(name) * input_images
    output_tokens = output_image_tokens(name, size) * output_images
    prompt_details = _prompt_details(text_tokens, image_tokens)
    return UsageMetadata(
        prompt_token_count=text_tokens + image_tokens,
        candidates_token_count=output_tokens,
        total_token_count=text_tokens + image_tokens + output_tokens,
        prompt_tokens_details=prompt_details,
        candidates_tokens_details=[ModalityTokenCount(modality="IMAGE", token_count=output_tokens)],
    )


def count_tokens_body(body: GenerateContentRequest, model: str) -> dict[str, Any]:
    """``countTokens``: the estimate ``usageMetadata`` makes of a prompt, over every turn and the
    system instruction (what a model that reads the whole conversation would be sent)."""
    contents = [*body.contents, *([body.system_instruction] if body.system_instruction else [])]
    parts = [part for content in contents for part in content.parts]
    text_tokens = sum(len(part.text or "") for part in parts) // CHARS_PER_TOKEN
    image_tokens = input_image_tokens(model) * sum(1 for part in parts if part.inline_data or part.file_data)
    details = [detail.wire() for detail in _prompt_details(text_tokens, image_tokens)]
    return {"totalTokens": text_tokens + image_tokens, "promptTokensDetails": details}


def _prompt_details(text_tokens: int, image_tokens: int) -> list[ModalityTokenCount]:
    details = [ModalityTokenCount(modality="TEXT", token_count=text_tokens)]
    if image_tokens:
        details.append(ModalityTokenCount(modality="IMAGE", token_count=image_tokens))
    return details


def input_image_tokens(model: str) -> int:
    """Tokens Gemini counts for one input image of ``model``."""
    return (
        INPUT_IMAGE_TOKENS_3_PRO if model_id(model).startswith("gemini-3-pro-image") else INPUT_IMAGE_TOKENS
    )


def output_image_tokens(model: str, size: str) -> int:
    """Tokens Gemini counts for one output image of ``model`` at ``size``."""
    for family, by_size in IMAGE_TOKENS.items():
        if model_id(model).startswith(family):
            return by_size[size]
    return DEFAULT_IMAGE_TOKENS


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


def list_models_body(registry: EngineRegistry) -> dict[str, Any]:
    """The body of ``GET /v1beta/models``: every name a caller may pass as ``model``."""
    models = [_model_entry(name, engine_for_model(registry, name)) for name in served_models(registry)]
    return ListModelsResponse(models=models).wire()


def get_model_body(registry: EngineRegistry, model: str) -> dict[str, Any]:
    """The body of ``GET /v1beta/models/{model}``; UnknownModelError (404) for a name not served."""
    name = model_id(model)
    return _model_entry(name, engine_for_model(registry, name)).wire()


def _model_entry(name: str, engine: str) -> Model:
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
