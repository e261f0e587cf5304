"""The OpenAI Images API wire format (``openai`` SDK 1.x-3.x), as far as Plantain reads it.

One model serves both endpoints: generations send JSON, edits send multipart form fields that are
all strings (``n="2"``, ``stream="true"``), which pydantic's lax mode turns into numbers and booleans.
Enums match case-insensitively. Unknown parameters are refused so a typo is not silently ignored;
parameters of newer OpenAI models that Plantain has no use for are listed and accepted.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from plantain.dialects.wire import LoraList


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _format(value: Any) -> Any:
    value = _lower(value)
    return "jpeg" if value == "jpg" else value


Quality = Literal["auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"]
Background = Literal["auto", "opaque", "transparent"]
OutputFormat = Literal["png", "jpeg", "webp", "avif"]  # avif: a Plantain extension


class ImageParams(BaseModel):
    """Parameters of ``POST /v1/images/generations`` and the non-file fields of ``/v1/images/edits``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: Annotated[Quality | None, BeforeValidator(_lower)] = None
    background: Annotated[Background | None, BeforeValidator(_lower)] = None
    output_format: Annotated[OutputFormat | None, BeforeValidator(_format)] = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    moderation: Annotated[Literal["auto", "low"] | None, BeforeValidator(_lower)] = None
    response_format: Annotated[Literal["b64_json", "url"] | None, BeforeValidator(_lower)] = None
    style: Annotated[Literal["vivid", "natural"] | None, BeforeValidator(_lower)] = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=3)
    user: str | None = None
    # Gateway extensions (Lumenfall's, sent with extra_body): the Gemini table's ratio and tier.
    aspect_ratio: str | None = None
    resolution: str | None = None
    # Plantain extension (send with the SDK's extra_body): a seed makes the output reproducible.
    seed: int | None = None
    # Plantain extensions (extra_body): false opts out of a provenance mark, where the server allows it.
    watermark: bool | None = None
    content_credentials: bool | None = None
    # Plantain extension (extra_body): false skips the planner stage (docs/planner.md), true asks
    # for it; absent follows the server's ``planner`` setting. Its rewrite is ``revised_prompt``.
    rewrite_prompt: bool | None = None
    # Plantain extension (extra_body): true looks the request up with the server's search provider
    # first (docs/grounding.md); the answer's ``grounding`` says what was found.
    grounding: bool | None = None
    # Plantain extensions (extra_body; in an edit's form, loras as JSON text): LoRAs from the
    # operator's allow-list and a named preset of the engine (docs/loras.md).
    loras: LoraList = None
    preset: str | None = None
    # Accepted and ignored: they steer OpenAI's own models and have no meaning here.
    input_fidelity: Any = None
    safety_identifier: Any = None
    complexity: Any = None
    frame_count: Any = None
    frame_duration_ms: Any = None
    markup: Any = None
    svg: Any = None


class VariationParams(BaseModel):
    """The non-file fields of ``POST /v1/images/variations`` (dall-e-2's): no prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    n: int | None = None
    size: str | None = None
    response_format: Annotated[Literal["b64_json", "url"] | None, BeforeValidator(_lower)] = None
    user: str | None = None
    # Plantain extensions, as on the other two endpoints.
    output_format: Annotated[OutputFormat | None, BeforeValidator(_format)] = None
    seed: int | None = None
    watermark: bool | None = None
    content_credentials: bool | None = None
