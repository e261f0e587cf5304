"""A provider's image handed out honestly: its own bytes, none of this server's marks.

This server did not make the image, so it neither watermarks it as its own nor signs content
credentials for it. The provider's bytes go out unchanged, which keeps the provider's own C2PA
manifest (Gemini's, OpenAI's, another Plantain's) intact; the output's provenance names the
provider. Only an image with no manifest to lose is re-encoded when the caller asked for
another format than the provider sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PIL import Image

from plantain.imaging.codecs import encode_image, media_type
from plantain.provenance.manifests import read_credentials
from plantain.providers.base import RemoteEngine, origin_of
from plantain.providers.routing import RoutedEngine
from plantain.types import GeneratedImage, ImageRequest, Provenance

if TYPE_CHECKING:
    from plantain.engines.base import Engine


def remote_output(image: Image.Image, seed: int, request: ImageRequest) -> GeneratedImage | None:
    """``image`` as a provider made it, or None when this server made it."""
    origin = origin_of(image)
    if origin is None:
        return None
    has_manifest = read_credentials(origin.data, origin.media_type).state != "absent"
    asked = media_type(request.output_format)
    data, sent_type = origin.data, origin.media_type
    if sent_type != asked and not has_manifest:
        data, sent_type = encode_image(_plain(image), request.output_format, request.output_quality), asked
    return GeneratedImage(
        data=data,
        media_type=sent_type,
        width=image.width,
        height=image.height,
        seed=seed,
        provenance=Provenance(watermark=False, content_credentials=has_manifest, provider=origin.engine),
    )


def _plain(image: Image.Image) -> Image.Image:
    """The decoded pixels without the origin record PIL would otherwise carry along."""
    copy = image.copy()
    copy.info = {}
    return copy


def listed_provenance(engine: Engine, server: dict[str, Any]) -> dict[str, Any]:
    """What the model listings (``/v1/models``) say ``engine``'s images carry: ``server``'s marks
    (ProvenancePolicy.describe) for a local engine; none of this server's for a provider, whose
    images keep their own; a route with providers among its members names them, since the marks
    depend on which member serves."""
    if isinstance(engine, RemoteEngine):
        return {
            **server,
            "watermark": {**server["watermark"], "applied": False},
            "content_credentials": {**server["content_credentials"], "applied": False},
            "provider": engine.name,  # its images are handed out as it sent them
        }
    if isinstance(engine, RoutedEngine):
        remote = [member.name for member in engine.members if isinstance(member, RemoteEngine)]
        if remote:
            return {**server, "providers": remote}  # images they serve carry no mark of ours
    return server
