"""A conversation -> the prompt and input images of one image request.

The last user message is the instruction: its text parts are the prompt, its images are new
inputs. Conversational editing works as in the Gemini dialect: the newest earlier message that
carries images (normally the assistant's last answer, sent back as the client received it in
``images``) gives the images being edited, placed before the user's own. System and developer
messages are prepended to the prompt as an instruction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from plantain.dialects.chat.protocol import ContentPart, Message
from plantain.dialects.conversation import EarlierTurn, conversation_fields
from plantain.dialects.wire import image_url
from plantain.errors import InvalidRequestError
from plantain.limits import Limits
from plantain.types import InputImage

INSTRUCTION_ROLES = frozenset({"system", "developer"})
SKIPPED_PART_TYPES = frozenset({"reasoning", "thinking"})  # a model's thoughts, sent back: no input


@dataclass(frozen=True)
class ImagePart:
    """An image somewhere in the conversation and how errors name it."""

    label: str  # messages[2].images[0].image_url
    url: str


@dataclass(frozen=True)
class Conversation:
    prompt: str
    images: tuple[InputImage, ...]
    # The earlier turns for the planner to resolve an edit against (dialects/conversation.py):
    # ImageRequest's history, earlier and from_history, or nothing when there is no choice.
    history: dict[str, Any] = field(default_factory=dict)


def read_conversation(messages: list[Message], limits: Limits) -> Conversation:
    """The prompt and input images ``messages`` ask for; a bad part is a 400 naming it."""
    turn = last_user_turn(messages)
    context = _edit_context(messages, turn)
    parts = [*context, *_images_of(messages[turn], turn)]
    limits.check_input_count(len(parts), field="messages")  # before any base64 is decoded
    images = tuple(_input_image(part, limits) for part in parts)
    chosen = images[: len(context)]
    return Conversation(_prompt(messages, turn), images, _history(messages, turn, chosen, limits))


def _history(
    messages: list[Message], turn: int, chosen: tuple[InputImage, ...], limits: Limits
) -> dict[str, Any]:
    """The user and assistant messages before ``turn`` as earlier turns (instructions are not);
    ``chosen`` are the earlier images the rule took, already read."""
    earlier = [
        EarlierTurn(
            role="model" if message.role.strip().lower() == "assistant" else "user",
            text=_text_of(message, index),
            images=[(part.label, partial(_input_image, part, limits)) for part in _images_of(message, index)],
        )
        for index, message in enumerate(messages[:turn])
        if message.role.strip().lower() in {"user", "assistant"}
    ]
    return conversation_fields(earlier, chosen, len(chosen), limits.max_input_images)


def last_user_turn(messages: list[Message]) -> int:
    for turn in range(len(messages) - 1, -1, -1):
        if messages[turn].role.strip().lower() == "user":
            return turn
    raise InvalidRequestError(
        "messages: no user message; send at least one message with role 'user' whose content "
        "describes the image",
        field="messages",
    )


def _prompt(messages: list[Message], turn: int) -> str:
    text = _text_of(messages[turn], turn)
    if not text:
        raise InvalidRequestError(
            f"messages[{turn}].content: the last user message has no text; send the instruction "
            "for the image as its content (a string or a text part)",
            field=f"messages[{turn}].content",
        )
    instructions = [
        _text_of(message, index)
        for index, message in enumerate(messages[:turn])
        if message.role.strip().lower() in INSTRUCTION_ROLES
    ]
    instruction = "\n".join(text for text in instructions if text)
    return f"{instruction}\n\n{text}" if instruction else text


def _text_of(message: Message, turn: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content.strip()
    texts = [part.text.strip() for part in _parts(content, turn) if part.type == "text" and part.text]
    return "\n".join(text for text in texts if text)


def _parts(content: list[ContentPart], turn: int) -> list[ContentPart]:
    """The text and image parts of a message; another kind (audio, file…) is refused."""
    for index, part in enumerate(content):
        if part.type not in {"text", "image_url", *SKIPPED_PART_TYPES}:
            raise InvalidRequestError(
                f"messages[{turn}].content[{index}].type: {part.type!r} is not supported; this "
                "server reads text and image_url parts",
                field=f"messages[{turn}].content[{index}].type",
            )
    return content


def _edit_context(messages: list[Message], turn: int) -> list[ImagePart]:
    """The images of the newest message before ``turn`` that has any: the ones being edited."""
    for previous in range(turn - 1, -1, -1):
        found = _images_of(messages[previous], previous)
        if found:
            return found
    return []


def _images_of(message: Message, turn: int) -> list[ImagePart]:
    found: list[ImagePart] = []
    if isinstance(message.content, list):
        for index, part in enumerate(_parts(message.content, turn)):
            if part.type == "image_url":
                found.append(_image_part(part, f"messages[{turn}].content[{index}].image_url"))
    for index, part in enumerate(message.images or []):
        found.append(_image_part(part, f"messages[{turn}].images[{index}].image_url"))
    return found


def _image_part(part: ContentPart, label: str) -> ImagePart:
    image_url = part.image_url
    url = image_url if isinstance(image_url, str) else image_url.url if image_url else ""
    if not url.strip():
        raise InvalidRequestError(f"{label}.url is required: a data URL or an http(s) URL", field=label)
    return ImagePart(label, url.strip())


def _input_image(part: ImagePart, limits: Limits) -> InputImage:
    """A data URL decoded now; an http(s) URL left for the front door's safe fetcher."""
    return image_url(part.url, part.label, f"{part.label}.url", limits=limits)
