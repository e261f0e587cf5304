"""The chat completions wire format as image apps send it to OpenRouter, as far as Plantain reads it.

Messages are read permissively (clients attach ``name``, ``tool_calls``, ``reasoning``…, and
``content`` may be a string, a list of parts or null), since a conversation is sent back as the
client received it. The request's own parameters are strict: an unknown one is refused so a typo
is not silently ignored, while the many chat parameters that steer a text model are listed,
accepted and reported as ignored (``X-Plantain-Ignored-Parameters``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from plantain.dialects.wire import LoraList

MAX_CHOICES = 10  # the most images one request makes (types.MAX_IMAGES_PER_REQUEST)


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    detail: str | None = None  # a vision model's hint: meaningless for an image input here


class ContentPart(BaseModel):
    """``{"type": "text", "text"}`` or ``{"type": "image_url", "image_url": {"url"}}`` (an
    assistant's ``images`` entry has the same shape); other part types are refused by the converter."""

    model_config = ConfigDict(extra="ignore")

    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None  # some clients send the URL bare


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[ContentPart] | None = None
    images: list[ContentPart] | None = None  # an assistant's images, as this server answered them


class ImageConfig(BaseModel):
    """OpenRouter's ``image_config``; ``aspect_ratio`` and ``image_size`` are checked by the core
    request, so their errors list what is allowed."""

    model_config = ConfigDict(extra="forbid")

    aspect_ratio: str | None = None
    image_size: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = None  # usage is always in the last chunk, as OpenRouter sends it


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# OpenAI's and OpenRouter's reasoning efforts; "none" turns reasoning off.
Effort = Annotated[
    Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None, BeforeValidator(_lower)
]


class Reasoning(BaseModel):
    """OpenRouter's ``reasoning``. The planner stage (docs/planner.md) is this server's reasoning,
    so turning reasoning off skips it (convert.plan_choice); the other settings have no effect."""

    model_config = ConfigDict(extra="ignore")  # OpenRouter adds settings; none of them matter here

    enabled: bool | None = None
    effort: Effort = None
    max_tokens: int | None = Field(default=None, ge=0)
    exclude: bool | None = None


# Chat parameters that steer a text model or a router: accepted, unused, reported back.
IGNORED_PARAMS = (
    *("temperature", "top_p", "top_k", "min_p", "top_a", "max_tokens", "max_completion_tokens"),
    *("frequency_penalty", "presence_penalty", "repetition_penalty", "stop", "logprobs"),
    *("top_logprobs", "logit_bias", "response_format", "tools", "tool_choice", "parallel_tool_calls"),
    *("user", "metadata", "store", "service_tier", "verbosity"),
    *("prediction", "audio", "provider", "transforms", "models", "route", "usage"),
    *("safety_identifier", "prompt_cache_key", "functions", "function_call"),
)


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")  # the ignored parameters; others refused by name

    model: str | None = None
    messages: list[Message]
    modalities: list[str] | None = None
    image_config: ImageConfig | None = None
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    seed: int | None = None
    # Plantain extensions: false opts out of a provenance mark, where the server allows it.
    watermark: bool | None = None
    content_credentials: bool | None = None
    # The planner stage (docs/planner.md): Plantain's extension ``rewrite_prompt`` (false skips it,
    # true asks for it), or reasoning turned off, which skips it (convert.plan_choice).
    rewrite_prompt: bool | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: Effort = None  # OpenAI's spelling of reasoning.effort
    # Search grounding (docs/grounding.md): OpenRouter's web plugin (``[{"id": "web"}]``, or the
    # model's ``:online`` suffix) and OpenAI's ``web_search_options`` ask for it (convert.py).
    plugins: list[dict[str, Any]] | None = None
    web_search_options: dict[str, Any] | None = None
    # Plantain extensions: LoRAs from the operator's allow-list and a named preset (docs/loras.md).
    loras: LoraList = None
    preset: str | None = None

    def extra_params(self) -> dict[str, Any]:
        """Parameters sent beyond the declared fields."""
        return dict(self.model_extra or {})
