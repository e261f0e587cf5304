"""C2PA content credentials: sign a manifest into an output image.

The manifest says who made the image (claim generator "Plantain" and its version), how (a
``c2pa.actions.v2`` assertion: ``c2pa.created`` from text, or ``c2pa.opened`` + ``c2pa.placed`` +
``c2pa.edited`` for an edit, with the IPTC digital source type and the engine as software agent)
and from what (each input image as an ingredient, its own manifest kept when it had one). The
prompt is never written: content credentials travel with the file to whoever receives it.
Reading them back is in :mod:`plantain.provenance.manifests`.
"""

from __future__ import annotations

import datetime
import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import c2pa
from PIL import Image

from plantain.errors import ConfigurationError, PlantainError
from plantain.provenance.identity import SigningIdentity
from plantain.provenance.manifests import MODEL_PARAMETER, NO_NETWORK, read_credentials, trust_settings

__all__ = [
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "TRAINED_ALGORITHMIC_MEDIA",
    "Claim",
    "ContentCredentials",
    "Ingredient",
]

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = _IPTC + "trainedAlgorithmicMedia"
# An edit keeps content of the caller's inputs (possibly camera captures) and adds generated
# content: IPTC's term for that mix, as for inpainting, whether one input was given or several.
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = _IPTC + "compositeWithTrainedAlgorithmicMedia"

ACTIONS_LABEL = "c2pa.actions.v2"
ENGINE_PARAMETER = "plantain.engine"

# No thumbnail: 80-130 ms and up to hundreds of KB per image.
_SIGNING_SETTINGS: dict[str, Any] = {**NO_NETWORK, "builder": {"thumbnail": {"enabled": False}}}


@dataclass(frozen=True)
class Ingredient:
    """An input image of an edit, recorded as an ingredient of the output."""

    data: bytes  # the input image bytes as the caller sent them
    media_type: str  # image/png, image/jpeg, ...; bytes c2pa cannot parse are recorded without them
    title: str  # e.g. "input 1"


@dataclass(frozen=True)
class Claim:
    """What the manifest of one output image states."""

    title: str  # file title, e.g. "plantain-<seed>.png"
    model: str  # the model name the caller asked for
    engine: str  # the engine that ran it
    generator_version: str  # plantain.__version__
    ingredients: Sequence[Ingredient] = ()  # empty: created; otherwise edited, the first is the parent


class ContentCredentials:
    """Signs manifests with one identity; safe to share between threads. c2pa-python guards each
    native handle itself (calls that only use a Context or Signer may overlap, mutating ones are
    exclusive) and concurrent signing and reading ran clean, but signing is still serialised: it
    takes a few milliseconds, the server signs from one worker thread, and c2pa makes no promise
    about the time-stamp client under one Signer."""

    MEDIA_TYPES: frozenset[str] = frozenset({"image/png", "image/jpeg", "image/webp", "image/avif"})

    def __init__(self, identity: SigningIdentity, *, tsa_url: str | None = None) -> None:
        self.identity = identity
        self.tsa_url = tsa_url
        # With the anchors, an ingredient from a trusted signer is recorded as trusted.
        settings = {**_SIGNING_SETTINGS, "trust": trust_settings(identity.trust_anchors_pem)}
        self._context = c2pa.Context(c2pa.Settings.from_dict(settings))
        self._lock = threading.Lock()
        self._probe()  # a certificate c2pa refuses fails at start, not on the first image
        self._signer = self._new_signer(tsa_url)

    def sign(self, data: bytes, media_type: str, claim: Claim) -> bytes:
        """``data`` with a signed manifest for ``claim`` embedded; a ``PlantainError`` when c2pa
        cannot sign it (a time-stamp authority that does not answer, say)."""
        if media_type not in self.MEDIA_TYPES:
            raise ValueError(f"cannot sign {media_type}; one of {sorted(self.MEDIA_TYPES)}")
        try:
            return self._sign(self._signer, data, media_type, claim)
        except c2pa.C2paError as exc:
            where = f" (time-stamp authority c2pa_tsa_url={self.tsa_url})" if self.tsa_url else ""
            raise PlantainError(
                f"content credentials: cannot sign the {media_type} output{where}: {exc}"
            ) from exc

    def _sign(self, signer: Any, data: bytes, media_type: str, claim: Claim) -> bytes:
        unparsable: set[int] = set()
        while True:
            builder = c2pa.Builder(_definition(claim, media_type, unparsable), context=self._context)
            failed = _add_ingredients(builder, claim.ingredients, unparsable)
            if failed is None:
                break
            builder.close()
            # Recorded by title and type alone, on a fresh builder (listed before the others).
            unparsable.add(failed)
        output = io.BytesIO()
        with self._lock:
            builder.sign(signer, media_type, io.BytesIO(data), output)
        return output.getvalue()

    def _new_signer(self, tsa_url: str | None) -> Any:
        identity = self.identity
        info = c2pa.C2paSignerInfo(identity.algorithm, identity.chain_pem, identity.key_pem, tsa_url)
        try:
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise ConfigurationError(f"c2pa_cert: c2pa refuses the certificate or key: {exc}") from exc

    def _probe(self) -> None:
        probe = Claim(title="probe.png", model="probe", engine="probe", generator_version="0")
        signer = self._new_signer(None)  # without the time-stamp authority: no network at start
        try:
            signed = self._sign(signer, _one_pixel_png(), "image/png", probe)
        except c2pa.C2paError as exc:
            raise ConfigurationError(
                f"c2pa_cert: c2pa cannot sign with this certificate ({exc}); {_PROFILE}"
            ) from exc
        finally:
            signer.close()
        report = read_credentials(signed, "image/png")
        if report.state == "invalid":
            raise ConfigurationError(
                f"c2pa_cert: c2pa signs, but rejects the result: {'; '.join(report.problems)}"
            )


_PROFILE = (
    "C2PA requires of a signing certificate: not a CA, key usage digitalSignature, an extended key "
    "usage such as emailProtection or documentSigning, and an authority key identifier unless self-signed"
)


def _definition(claim: Claim, media_type: str, unparsable: set[int]) -> dict[str, Any]:
    return {
        "claim_generator_info": [{"name": "Plantain", "version": claim.generator_version}],
        "title": claim.title,
        "format": media_type,
        "ingredients": [_ingredient_json(claim.ingredients[i], i) for i in sorted(unparsable)],
        "assertions": [{"label": ACTIONS_LABEL, "data": {"actions": _actions(claim)}}],
    }


def _actions(claim: Claim) -> list[dict[str, Any]]:
    made: dict[str, Any] = {
        "softwareAgent": {"name": claim.engine},
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "parameters": {MODEL_PARAMETER: claim.model, ENGINE_PARAMETER: claim.engine},
    }
    if not claim.ingredients:
        description = f"Generated by {claim.engine} (model {claim.model})"
        return [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "description": description,
                **made,
            }
        ]
    labels = [_label(i) for i in range(len(claim.ingredients))]
    actions: list[dict[str, Any]] = [{"action": "c2pa.opened", "parameters": {"ingredientIds": labels[:1]}}]
    if len(labels) > 1:
        actions.append({"action": "c2pa.placed", "parameters": {"ingredientIds": labels[1:]}})
    description = f"Edited by {claim.engine} (model {claim.model})"
    edited = {
        "action": "c2pa.edited",
        "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
        "description": description,
        **made,
    }
    return [*actions, edited]


def _label(index: int) -> str:
    return f"input-{index + 1}"


def _ingredient_json(ingredient: Ingredient, index: int) -> dict[str, Any]:
    described: dict[str, Any] = {
        "title": ingredient.title,
        "relationship": "parentOf" if index == 0 else "componentOf",
        "label": _label(index),
    }
    if ingredient.media_type:
        described["format"] = ingredient.media_type
    return described


def _add_ingredients(builder: Any, ingredients: Sequence[Ingredient], skip: set[int]) -> int | None:
    """Add each ingredient with its bytes (c2pa keeps the manifest it carries); the index of the
    first one c2pa cannot parse, or None when all went in."""
    for index, ingredient in enumerate(ingredients):
        if index in skip:
            continue
        if not ingredient.media_type:
            return index
        try:
            builder.add_ingredient(
                _ingredient_json(ingredient, index), ingredient.media_type, io.BytesIO(ingredient.data)
            )
        except c2pa.C2paError:
            return index
    return None


def _one_pixel_png() -> bytes:
    """A one-pixel PNG, signed once at start to check that c2pa takes the certificate."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    return buffer.getvalue()
