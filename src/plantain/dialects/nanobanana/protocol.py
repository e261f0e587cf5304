"""nanobananaapi.dev's ``POST /v1/images/generate`` body, as far as Plantain reads it
(docs/nanobananaapi.md says which parts were confirmed from its clients and which are assumed).

The body is strict: an unknown field is refused by name (a typo is not silently dropped), while
the vendor's scheduling field ``service_tier`` is accepted, checked and reported as ignored.
Values are checked by the converter, so each refusal names the field, the value and the limit in
the vendor's words (``num`` 1–9, ``ref_images`` at most 3).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_NUM = 9  # images one request makes, as the vendor allows
MAX_REF_IMAGES = 3  # reference images one request takes, as the vendor allows
HD_SUFFIX = "-hd"  # gemini-2.5-flash-image-hd: the same pixels with more detail (convert.HD_STEPS_SCALE)

# Accepted for the clients' sake, used by nothing here: reported in X-Plantain-Ignored-Parameters.
# `service_tier` picks the vendor's queue ("priority" costs more there); Plantain has one queue.
SERVICE_TIERS = ("default", "priority")
IGNORED_PARAMS = ("service_tier",)


class GenerateRequest(BaseModel):
    """The body of ``POST /v1/images/generate``. ``prompt`` and ``model`` are required, but
    declared optional so that their absence is refused by the converter in the vendor's words."""

    model_config = ConfigDict(extra="allow")  # refused by name in convert.parse_request

    prompt: str | None = None
    model: str | None = None  # gemini-2.5-flash-image, its -hd variant, or any served name
    num: int | None = Field(default=None, ge=1, le=MAX_NUM)  # absent: 1
    image_size: str | None = None  # an aspect ratio ("16:9") or "auto"; absent: square, or the first ref's
    # http(s) URLs (fetched safely by the front door) or data:image/…;base64 URIs; one may come bare.
    ref_images: list[str] | str | None = None
    service_tier: Literal["default", "priority"] | None = None  # ignored, reported
    # Plantain extensions: false opts out of a provenance mark, where the server allows it.
    watermark: bool | None = None
    content_credentials: bool | None = None

    def extra_params(self) -> dict[str, Any]:
        """Fields sent beyond the declared ones (each refused by name)."""
        return dict(self.model_extra or {})
