"""Reading an image's provenance back: its C2PA manifest and its watermark.

Used by ``POST /v1/provenance/verify`` and ``plantain verify``. The manifest is read from the file
as it is; the watermark from its pixels (decoded with the same limits as any input image), so a
re-saved or resized copy, which has lost its manifest, is still recognised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from plantain.imaging.codecs import decode_image, sniff_media_type
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.provenance import watermark
from plantain.provenance.manifests import CredentialReport, read_credentials
from plantain.provenance.policy import ProvenancePolicy
from plantain.storage.marks import MarkRecord
from plantain.types import InputImage

MarkLookup = Callable[[int], MarkRecord | None]  # serial -> where this server issued it


@dataclass(frozen=True)
class WatermarkReport:
    present: bool
    confidence: float
    this_server: bool  # the mark carries this server's tag
    server_tag: int | None  # None: present, but the payload could not be read whole
    serial: int | None
    task_id: str | None  # only for this server's marks whose serial it issued
    image: int | None  # the image's place among the task's outputs, from 1
    read_at: tuple[int, int] | None  # the generation size the mark was read at (None: its own, or none)


@dataclass(frozen=True)
class VerifyReport:
    media_type: str | None
    width: int
    height: int
    credentials: CredentialReport
    signed_by_this_server: bool
    watermark: WatermarkReport

    @property
    def verdict(self) -> str:
        """One line for people: who made the image, as far as the marks tell."""
        mark, state = self.watermark, self.credentials.state
        if mark.this_server and mark.task_id:
            return f"made by this server (task {mark.task_id}, image {mark.image})"
        if mark.this_server or (self.signed_by_this_server and state in {"valid", "trusted"}):
            return "made by this server"
        if mark.present and mark.server_tag is not None:
            return f"made by another Plantain server (watermark tag {mark.server_tag})"
        if mark.present:
            return "carries a Plantain watermark whose payload could not be read whole"
        if state in {"valid", "trusted"}:
            return (
                f"carries {state} content credentials from {self.credentials.signer or 'an unnamed signer'}"
            )
        if state == "invalid":
            return "carries content credentials that no longer match the image"
        return "no provenance found"

    def to_json(self) -> dict[str, Any]:
        credentials = asdict(self.credentials)
        credentials["signed_by_this_server"] = self.signed_by_this_server
        return {
            "verdict": self.verdict,
            "media_type": self.media_type,
            "width": self.width,
            "height": self.height,
            "content_credentials": credentials,
            "watermark": asdict(self.watermark),
        }


def verify(
    data: bytes,
    policy: ProvenancePolicy,
    lookup: MarkLookup,
    *,
    limits: Limits = DEFAULT_LIMITS,
    label: str = "file",
) -> VerifyReport:
    """``data``'s manifest and watermark, as this server (its trust anchors, tag and serials)
    sees them. An image that cannot be decoded raises InvalidImageError naming ``label``."""
    image = decode_image(InputImage(data=data, label=label), limits)
    media_type = sniff_media_type(data)
    credentials = read_credentials(data, media_type, policy.identity.trust_anchors_pem)
    return VerifyReport(
        media_type=media_type,
        width=image.width,
        height=image.height,
        credentials=credentials,
        signed_by_this_server=credentials.signer_fingerprint == policy.identity.fingerprint,
        watermark=_watermark_report(watermark.detect(image), policy.tag, lookup),
    )


def _watermark_report(found: watermark.Detection, tag: int, lookup: MarkLookup) -> WatermarkReport:
    mark = found.mark
    this_server = mark is not None and mark.server == tag
    record = lookup(mark.serial) if mark is not None and this_server else None
    return WatermarkReport(
        present=found.present,
        confidence=round(found.confidence, 4),
        this_server=this_server,
        server_tag=mark.server if mark else None,
        serial=mark.serial if mark else None,
        task_id=record.task_id if record else None,
        image=record.position + 1 if record else None,
        # without a mark, size_tried is only the likeliest of the sizes tried: nothing was read there
        read_at=found.size_tried if found.present else None,
    )
