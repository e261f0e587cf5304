"""inference.sh's wire models: a run request and the input of their image apps (the Gemini image
apps' schema, docs/inference-sh.md).

The input is strict (an unknown field is a typo, refused naming it, as the task API does); the
run request accepts the SDK's optional fields, most of which have no meaning for one server and are
reported as ignored (``convert.IGNORED_RUN_FIELDS``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SafetyFilter = Literal["block_none", "block_low_and_above", "block_medium_and_above", "block_only_high"]
SafetyTolerance = Literal["BLOCK_NONE", "BLOCK_FEW", "BLOCK_SOME", "BLOCK_MOST"]


class VendorFields(BaseModel):
    """inference.sh's image-app fields that steer a language model, search or a remote provider,
    which the task API takes too (by the vendor's names, in its ranges): search is grounding,
    ``retry_count`` a provider's retries, the sampling fields are reported ignored."""

    enable_google_search: bool | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=1, le=1000)
    max_tokens: int | None = Field(default=None, ge=1, le=65536)
    retry_count: int | None = Field(default=None, ge=0, le=10)


class AppInput(VendorFields):
    """The image apps' input. Ranges the vendor documents are checked here, so a bad value is a 400
    naming the field, the value and the limit, even for the fields that are then ignored."""

    model_config = ConfigDict(extra="forbid")

    prompt: str
    images: list[str] = Field(default_factory=list)  # http(s) URLs, data: URIs or base64
    num_images: int | None = None  # 1-10 (ImageRequest checks it)
    aspect_ratio: str | None = None  # "auto": the first input's shape
    resolution: str | None = None  # 0.5K, 1K, 2K, 4K
    output_format: str | None = None  # png, jpeg, webp (avif: a Plantain extension)
    safety_filter: SafetyFilter | None = None
    safety_tolerance: SafetyTolerance | None = None
    seed: int | None = None  # a Plantain extension: the first image's seed


class RunRequest(BaseModel):
    """``POST /apps/run``: what the SDK's ``run`` sends, and the same body on the versioned path
    (where ``app`` comes from the path)."""

    model_config = ConfigDict(extra="forbid")

    app: str | None = None  # namespace/name[@version][:function]
    input: dict[str, Any]
    webhook: str | None = None
    wait: bool | None = None  # hold the answer until the task ends
    stream: bool | None = None  # answer with the task's updates as a stream
    # The SDK's other optional fields: scheduling on inference.sh's own fleet and sessions.
    setup: Any = None
    infra: Any = None
    workers: Any = None
    function: str | None = None
    session: Any = None
    session_timeout: Any = None
    run_at: Any = None
    metadata: Any = None
    app_id: Any = None
    version_id: Any = None
