"""The task API's wire models: ``POST /v1/tasks`` bodies (strict: an unknown field is a typo).

Some vendors' field names are taken too (docs/tasks.md, "Vendors' field names"): a body written
for inference.sh's image apps runs as it is, its safety fields mapped to a level and the fields
with no meaning here reported as ignored, rather than refused one by one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from plantain.dialects.inference_sh.protocol import VendorFields
from plantain.dialects.wire import LoraList


class TaskInput(VendorFields):
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
    # 0 (strictest) to 6, as BFL and fal take it (convert.SAFETY_TOLERANCE); or inference.sh's
    # BLOCK_MOST … BLOCK_NONE, the same field name with their meaning (convert.safety_level).
    safety_tolerance: StrictInt | str | None = None
    # inference.sh's Gemini thresholds, block_low_and_above … block_none (convert.safety_level).
    safety_filter: str | None = None
    # false: no watermark / no content credentials on this task's images, where the server allows it.
    watermark: bool | None = None
    content_credentials: bool | None = None
    # The planner stage (docs/planner.md): false skips it for this task, true asks for it (refused
    # when the server has no planner); absent follows the server's ``planner`` setting.
    rewrite: bool | None = None
    # Search grounding (docs/grounding.md): true looks the request up first (refused when the
    # server has no search provider); inference.sh's enable_google_search is the same switch.
    grounding: bool | None = None
    # In-progress images (0-3, as OpenAI's partial_images) sent live on the task's event stream
    # as ``preview`` events, by an engine that makes them (GET /v1/engines says which).
    previews: int | None = None
    # LoRAs from the operator's allow-list for the engine, [{"name": ..., "scale": ...}], and a
    # named preset of the engine (docs/loras.md; GET /v1/engines lists both).
    loras: LoraList = None
    preset: str | None = None
    # Vendors' fields (inference.sh's image apps, VendorFields) are accepted so their bodies run
    # as they are, each checked against the vendor's range (VENDOR_RANGES) and reported in
    # input.ignored, but for retry_count, which sets a remote provider's retries, and
    # enable_google_search, which is ``grounding`` (inference_sh.convert.IGNORED_INPUT_FIELDS).


# What each ignored vendor field takes, in words, for the error that refuses a value outside it.
VENDOR_RANGES = {
    "enable_google_search": "true or false",
    "temperature": "a number between 0 and 2",
    "top_p": "a number between 0 and 1",
    "top_k": "a whole number between 1 and 1000",
    "max_tokens": "a whole number between 1 and 65536",
    "retry_count": "a whole number between 0 and 10",
}


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: TaskInput
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
