"""What provenance the server puts on its images, and the keys it does it with.

:class:`ProvenancePolicy` is built once from the settings (loading or generating the C2PA signing
identity and the watermark tag); :meth:`ProvenancePolicy.stamper` gives one request's
:class:`Stamper`, which marks each output image's pixels (the watermark, before encoding) and
signs its bytes (content credentials, after encoding), timing both for the task's usage.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from plantain import __version__
from plantain.errors import ConfigurationError, InvalidRequestError
from plantain.imaging.codecs import sniff_media_type
from plantain.provenance import watermark
from plantain.provenance.credentials import Claim, ContentCredentials, Ingredient
from plantain.provenance.identity import SigningIdentity, load_identity
from plantain.settings import Settings
from plantain.storage.files import write_atomically
from plantain.types import ImageRequest, Provenance, ProvenanceChoice

if TYPE_CHECKING:
    from plantain.engines.base import PreviewCallback  # not at run time: it imports torch

WATERMARK_TAG_FILE = Path("provenance") / "watermark-tag"

Encoder = Callable[[Image.Image], tuple[bytes, str]]  # an image -> its bytes and media type


@dataclass(frozen=True)
class Applied:
    """The marks one request's images get."""

    watermark: bool
    content_credentials: bool


class ProvenancePolicy:
    """The operator's choices (settings ``watermark``, ``content_credentials``,
    ``provenance_opt_out``) with the watermark tag and the signing identity they need."""

    def __init__(self, settings: Settings) -> None:
        self.watermark = settings.watermark
        self.content_credentials = settings.content_credentials
        self.opt_out = settings.provenance_opt_out
        self.tag = watermark_tag(settings)
        self.identity = signing_identity(settings)
        self.credentials = ContentCredentials(self.identity, tsa_url=settings.c2pa_tsa_url)

    def applied(self, choice: ProvenanceChoice) -> Applied:
        """What a request gets: the server's marks less what it opted out of (when allowed).
        A refused opt-out is an error naming the caller's field and the setting."""
        return Applied(
            watermark=self._one("watermark", self.watermark, choice.watermark, choice.watermark_field),
            content_credentials=self._one(
                "content_credentials",
                self.content_credentials,
                choice.content_credentials,
                choice.content_credentials_field,
            ),
        )

    def _one(self, setting: str, on: bool, asked: bool | None, field: str) -> bool:
        """One mark for a request: ``setting`` is the server's switch for it, ``on`` its value."""
        what = setting.replace("_", " ")
        if asked is None or asked == on:
            return on
        if asked and not on:
            raise InvalidRequestError(
                f"{field}: this server does not add {what} (setting {setting} is off); leave the field out",
                field=field,
            )
        if not self.opt_out:
            raise InvalidRequestError(
                f"{field}: false is not allowed: this server adds {what} to every image and does "
                "not let a request leave it out (setting provenance_opt_out is false); leave the "
                "field out",
                field=field,
            )
        return False

    def stamper(self, request: ImageRequest, *, model: str, engine: str, serials: Sequence[int]) -> Stamper:
        """The marks for ``request``'s images; ``serials``: one watermark serial per image."""
        applied = self.applied(request.provenance)
        claim = None
        if applied.content_credentials:
            claim = Claim(
                title="",  # set per image
                model=model,
                engine=engine,
                generator_version=__version__,
                ingredients=ingredients_of(request),
            )
        return Stamper(
            tag=self.tag if applied.watermark else None,
            serials=tuple(serials),
            credentials=self.credentials if claim is not None else None,
            claim=claim,
        )

    def describe(self) -> dict[str, Any]:
        """What every image gets, for the model listings (``/v1/models``)."""
        return {
            "watermark": {
                "applied": self.watermark,
                "method": "dwtDctSvd",
                "payload_bits": watermark.PAYLOAD_BITS,
            },
            "content_credentials": {
                "applied": self.content_credentials,
                "standard": "C2PA",
                "media_types": sorted(self.credentials.MEDIA_TYPES),
            },
            "opt_out_allowed": self.opt_out,
        }


class Stamper:
    """One request's provenance: the same claim on every image, a serial per image. Used by one
    worker thread; ``seconds`` adds up the time spent marking and signing."""

    def __init__(
        self,
        *,
        tag: int | None,
        serials: tuple[int, ...],
        credentials: ContentCredentials | None,
        claim: Claim | None,
    ) -> None:
        self._tag = tag
        self._serials = serials
        self._credentials = credentials
        self._claim = claim
        self.seconds = 0.0

    def pixels(self, image: Image.Image, index: int) -> tuple[Image.Image, bool]:
        """``image`` with the watermark for image ``index``, and whether it carries one (an image
        too small to carry it robustly is left as it is)."""
        if self._tag is None or not watermark.can_carry(image.width, image.height):
            return image, False
        started = time.perf_counter()
        marked = watermark.embed(image, watermark.Mark(server=self._tag, serial=self._serials[index]))
        self.seconds += time.perf_counter() - started
        return marked, True

    def marked_previews(self, callback: PreviewCallback) -> PreviewCallback:
        """``callback`` handed each preview (of the first image) with the first image's watermark.
        Previews get no content credentials: they are stand-ins, not results."""

        def marked(index: int, image: Image.Image) -> None:
            callback(index, self.pixels(image, 0)[0])

        return marked

    def sign(self, data: bytes, media_type: str, title: str) -> tuple[bytes, bool]:
        """``data`` with content credentials (when asked for and the format can hold them)."""
        credentials, claim = self._credentials, self._claim
        if credentials is None or claim is None or media_type not in credentials.MEDIA_TYPES:
            return data, False
        started = time.perf_counter()
        signed = credentials.sign(data, media_type, replace(claim, title=title))
        self.seconds += time.perf_counter() - started
        return signed, True

    def finish(self, image: Image.Image, index: int, encode: Encoder, title: str) -> tuple[bytes, Provenance]:
        """Mark, encode (``encode``: image -> bytes and media type) and sign image ``index``."""
        marked, carries_mark = self.pixels(image, index)
        data, media_type = encode(marked)
        signed, carries_credentials = self.sign(data, media_type, title)
        return signed, Provenance(watermark=carries_mark, content_credentials=carries_credentials)


def ingredients_of(request: ImageRequest) -> tuple[Ingredient, ...]:
    """An edit's input images as the caller sent them, for the manifest's ingredient list. Titled
    by place, never by the caller's file name: the manifest is public, file names may not be."""
    return tuple(
        Ingredient(data=image.data, media_type=sniff_media_type(image.data) or "", title=f"input {index}")
        for index, image in enumerate(request.images, start=1)
    )


def watermark_tag(settings: Settings) -> int:
    """The setting, else the tag generated into the data directory on first start."""
    if settings.watermark_tag is not None:
        return settings.watermark_tag
    path = settings.data_dir / WATERMARK_TAG_FILE
    if path.is_file():
        text = path.read_text().strip()
        if not text.isdigit() or int(text) > 0xFFFF:
            raise ConfigurationError(
                f"{path} should hold the watermark tag, a number from 0 to 65535; fix or delete it "
                "(a new tag means earlier images no longer read as this server's), or set watermark_tag"
            )
        return int(text)
    tag = secrets.randbelow(0x10000)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, f"{tag}\n".encode())
    return tag


def signing_identity(settings: Settings) -> SigningIdentity:
    """The configured certificate and key (both or neither), else the generated local ones."""
    return load_identity(
        settings.data_dir,
        cert=settings.c2pa_cert,
        key=settings.c2pa_key,
        trust_anchors=settings.c2pa_trust_anchors,
    )
