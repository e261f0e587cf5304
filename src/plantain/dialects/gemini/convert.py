"""Gemini requests -> Plantain's core :class:`~plantain.types.ImageRequest` (pure conversions).

The way back, results -> Gemini responses, usage and model listings, is :mod:`render`'s.

- The prompt is the text of the **last user turn**, with the ``systemInstruction`` text (if any)
  prepended and separated by a blank line, so a standing instruction ("You are an image editor")
  reaches the engine ahead of the request itself. Earlier user turns are not part of the prompt.
- Input images are those of the most recent earlier turn that carries any (in a ``client.chats``
  conversation: the previous model turn's image, the one being edited), followed by the images
  attached to the last user turn. ``thought: true`` parts (a model's interim drafts) never count.
  An image is ``inlineData`` (base64 in either alphabet) or ``fileData`` with an http(s)
  ``fileUri``, which becomes an input the scheduler fetches once the request has passed every
  other check (a batch refuses it: :mod:`batch_convert`), or with a Files API file (``files/ID``
  or the file's ``uri``, :func:`uploaded_file_id`), kept as its name for the route to read from
  the caller's uploads (:mod:`files_api`), never fetched over HTTP.
- Images are what is made: ``responseModalities`` without IMAGE is refused rather than answered
  with nothing. Text comes back only from the planner stage (docs/planner.md), which
  ``thinkingConfig`` steers (:func:`plan_choice`, :func:`include_thoughts`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from plantain.dialects.conversation import EarlierTurn, conversation_fields
from plantain.dialects.gemini.protocol import (
    Blob,
    Content,
    FileData,
    GenerateContentRequest,
    GenerationConfig,
    ImageConfig,
    Part,
)
from plantain.dialects.gemini.safety import safety_level
from plantain.dialects.report import ignored
from plantain.dialects.wire import decode_base64, load_json, validate
from plantain.errors import InvalidImageError, InvalidRequestError
from plantain.imaging.codecs import accepted_formats
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.types import ImageRequest, InputImage, ProvenanceChoice

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
    "grounding": "tools",
    "loras": "generationConfig.imageConfig.loras",
    "preset": "generationConfig.imageConfig.preset",
    "options.preset": "generationConfig.imageConfig.preset",
}

# The tools that ask for Google Search grounding, in either casing (googleSearchRetrieval is the
# Gemini 1.5 name); any other tool (code execution, functions, URL context) is reported ignored.
SEARCH_TOOLS = frozenset(
    {"googleSearch", "google_search", "googleSearchRetrieval", "google_search_retrieval"}
)

# generationConfig fields of a language model, accepted and reported as ignored (docs/parameters.md).
IGNORED_CONFIG = (
    *("temperature", "top_p", "top_k", "max_output_tokens", "presence_penalty", "frequency_penalty"),
    *("stop_sequences", "response_mime_type", "media_resolution"),
)

FILES_API_HOST = "generativelanguage.googleapis.com"  # its file URIs need Google's credentials
_FILE_ID = r"([a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?)"  # a Files API file id, as Google allows them
FILE_NAME = re.compile(rf"files/{_FILE_ID}")
FILE_PATH = re.compile(rf"/(?:v1|v1beta|v1alpha)/files/{_FILE_ID}")


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
    images = _input_images(body.contents, turn, limits)
    return _create(
        prompt=_prompt(body.system_instruction, body.contents[turn], turn),
        images=images,
        engine=engine,
        safety=safety_level(body.safety_settings),
        **_generation_fields(config, body.tools),
        **_conversation(body.contents, turn, images, limits),
    )


def _conversation(
    contents: list[Content], turn: int, images: tuple[InputImage, ...], limits: Limits
) -> dict[str, Any]:
    """The earlier turns for the planner to resolve an edit against (dialects/conversation.py);
    ``images`` are the request's, the earlier turn's (the rule's choice) first."""
    earlier = [
        EarlierTurn(
            role="model" if (content.role or "user").lower() == "model" else "user",
            text=_text_of(content),
            images=[
                (label, partial(_input_image, label, part, limits))
                for label, part in _image_parts(content, index)
            ],
        )
        for index, content in enumerate(contents[:turn])
    ]
    from_history = len(images) - len(_image_parts(contents[turn], turn))
    return conversation_fields(earlier, images[:from_history], from_history, limits.max_input_images)


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


def uploaded_file_id(uri: str, origins: Collection[str] = ()) -> str | None:
    """The id of the Files API file ``uri`` names: ``files/ID``, or a file's ``uri`` on Google's
    Files API host or on one of ``origins`` (this server's own ``host:port``); else None."""
    uri = uri.strip()
    named = FILE_NAME.fullmatch(uri)
    if named is not None:
        return named.group(1)
    parsed = urlsplit(uri)
    ours = (parsed.hostname or "").lower() == FILES_API_HOST or parsed.netloc.lower() in origins
    if parsed.scheme.lower() not in {"http", "https"} or not ours:
        return None
    path = FILE_PATH.fullmatch(parsed.path)
    return path.group(1) if path is not None else None


def _file_uri(file: FileData | None, label: str) -> str:
    """``fileUri`` if it is an http(s) URL this server can fetch, or a Files API file's name or
    URI (read from the caller's uploads by the route, :mod:`files_api`)."""
    uri = (file.file_uri if file else "").strip()
    if uploaded_file_id(uri) is not None:
        return uri
    parsed = urlsplit(uri)
    field = f"{label}.fileUri"
    if parsed.scheme.lower() not in {"http", "https"} or not parsed.hostname:
        raise InvalidRequestError(
            f"{field}: {uri!r} cannot be fetched; only http(s) URLs are fetched (not gs://): send a "
            "public image URL, a Files API name (files/ID), or the bytes as inlineData",
            field=field,
        )
    if parsed.hostname.lower() == FILES_API_HOST:
        raise InvalidRequestError(
            f"{field}: {uri!r} is not a Gemini Files API file's URI (…/files/ID); upload the image "
            "with client.files.upload and send that file, or the bytes as inlineData",
            field=field,
        )
    return uri


def _generation_fields(config: GenerationConfig, tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
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
        "ignored": (*_ignored(config), *ignored_tools(tools)),
        "plan": plan_choice(config),
        "grounding": grounding_choice(tools),
        "loras": image.loras if image else None,
        "options": {"preset": image.preset} if image and image.preset else None,
    }
    return {name: value for name, value in fields.items() if value is not None}


def grounding_choice(tools: Sequence[dict[str, Any]]) -> bool:
    """Whether ``tools`` asks for Google Search grounding (``[{"googleSearch": {}}]``)."""
    return any(SEARCH_TOOLS & tool.keys() for tool in tools)


def ignored_tools(tools: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """The tools other than search, as ``tools.codeExecution``: accepted, reported ignored."""
    return tuple(f"tools.{name}" for tool in tools for name in tool if name not in SEARCH_TOOLS)


def plan_choice(config: GenerationConfig) -> bool | None:
    """``ImageRequest.plan`` from ``thinkingConfig``: the planner stage is this server's thinking,
    so a client that turns thinking off (``thinkingBudget: 0``) gets none (False); any other
    setting leaves it to the server's ``planner`` setting (None), since Gemini clients send a
    budget or ``includeThoughts`` by habit, and neither can ask for a planner the server lacks."""
    thinking = config.thinking_config
    return False if thinking is not None and thinking.thinking_budget == 0 else None


def include_thoughts(body: GenerateContentRequest) -> bool:
    """Whether the answer carries the planner's revised prompt as a thought part
    (``thinkingConfig.includeThoughts``, how Gemini asks for thought summaries)."""
    config = body.generation_config
    thinking = config.thinking_config if config else None
    return bool(thinking and thinking.include_thoughts)


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


__all__ = [
    "decode_base64",
    "include_thoughts",
    "parse_request",
    "plan_choice",
    "to_image_request",
    "uploaded_file_id",
]
