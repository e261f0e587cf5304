"""The task API's wire models: ``POST /v1/tasks`` bodies (strict: an unknown field is a typo)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    images: list[str] = Field(default_factory=list)  # base64 or data: URIs
    aspect_ratio: str | None = None  # "auto": the first input's
    resolution: str | None = None  # 512, 1K, 2K, 4K
    num_images: int | None = None
    output_format: str | None = None
    output_quality: int | None = None
    background: str | None = None  # auto, opaque, transparent (png, webp or avif)
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    # 0 (strictest) to 6, as BFL and fal take it; mapped to a level in convert.SAFETY_TOLERANCE.
    safety_tolerance: int | None = Field(default=None, ge=0, le=6)
    # false: no watermark / no content credentials on this task's images, where the server allows it.
    watermark: bool | None = None
    content_credentials: bool | None = None


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: TaskInput
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
