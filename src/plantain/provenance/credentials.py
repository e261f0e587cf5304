"""C2PA content credentials: sign a manifest into an output image, and read one back.

The manifest says who made the image (claim generator "Plantain" and its version), how (a
``c2pa.actions.v2`` assertion: ``c2pa.created`` from text, or ``c2pa.opened`` + ``c2pa.placed`` +
``c2pa.edited`` for an edit, with the IPTC digital source type and the engine as software agent)
and from what (each input image as an ingredient, its own manifest kept when it had one). The
prompt is never written: content credentials travel with the file to whoever receives it.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import c2pa
from cryptography import x509
from PIL import Image

from plantain.errors import ConfigurationError, PlantainError
from plantain.provenance.identity import SigningIdentity, fingerprint

__all__ = [
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "TRAINED_ALGORITHMIC_MEDIA",
    "Claim",
    "ContentCredentials",
    "CredentialReport",
    "Ingredient",
    "IngredientReport",
    "read_credentials",
]

_IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = _IPTC + "trainedAlgorithmicMedia"
# An edit keeps content of the caller's inputs (possibly camera captures) and adds generated
# content: IPTC's term for that mix, as for inpainting, whether one input was given or several.
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = _IPTC + "compositeWithTrainedAlgorithmicMedia"

ACTIONS_LABEL = "c2pa.actions.v2"
MODEL_PARAMETER = "plantain.model"
ENGINE_PARAMETER = "plantain.engine"

# Never fetch a remote manifest or an OCSP answer: an uploaded image must not make the server call
# a URL it names.
_NO_NETWORK: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# No thumbnail: 80-130 ms and up to hundreds of KB per image.
_SIGNING_SETTINGS: dict[str, Any] = {**_NO_NETWORK, "builder": {"thumbnail": {"enabled": False}}}
# The extended key usages a signing certificate may have (c2pa-rs's list). Given explicitly: left
# unset, c2pa-python 0.38 accepted emailProtection alone, refusing even C2PA's own claim-signing
# usage (tests/test_credentials.py covers three of them).
_SIGNING_USAGES = """\
// id-kp-emailProtection
1.3.6.1.5.5.7.3.4
// id-kp-documentSigning
1.3.6.1.5.5.7.3.36
// id-kp-timeStamping
1.3.6.1.5.5.7.3.8
// id-kp-OCSPSigning
1.3.6.1.5.5.7.3.9
// MS C2PA Signing
1.3.6.1.4.1.311.76.59.1.9
// c2pa-kp-claimSigning
1.3.6.1.4.1.62558.2.1
"""

State = Literal["trusted", "valid", "invalid", "absent"]


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


@dataclass(frozen=True)
class IngredientReport:
    title: str | None
    relationship: str | None  # parentOf, componentOf
    media_type: str | None
    has_manifest: bool  # the input carried content credentials of its own (kept in the store)
    claim_generator: str | None = None  # of the ingredient's own manifest
    action: str | None = None  # of the ingredient's own manifest (c2pa.created, c2pa.edited, ...)


@dataclass(frozen=True)
class CredentialReport:
    """What an image's content credentials say, and whether they hold."""

    state: State
    signer: str | None = None  # the signing certificate's subject, RFC 4514
    signer_fingerprint: str | None = None  # SHA-256 of the leaf certificate's DER
    claim_generator: str | None = None
    digital_source_type: str | None = None  # the IPTC URI
    action: str | None = None  # c2pa.created or c2pa.edited
    model: str | None = None
    ingredients: tuple[IngredientReport, ...] = ()
    signed_at: str | None = None  # the time-stamp authority's time, else the action's "when"
    problems: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict)


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
        settings = {**_SIGNING_SETTINGS, "trust": _trust(identity.trust_anchors_pem)}
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


# --- reading ---


def read_credentials(
    data: bytes, media_type: str | None = None, trust_anchors_pem: bytes | None = None
) -> CredentialReport:
    """The content credentials of ``data``: "trusted" when the signer chains to
    ``trust_anchors_pem``, "valid" when intact but not anchored, "invalid" when the image or the
    manifest changed after signing (``problems`` names the checks that failed), "absent" when
    there is none. Never raises for what the bytes contain."""
    try:
        with c2pa.Reader(media_type, io.BytesIO(data), context=_reading_context(trust_anchors_pem)) as reader:
            store = json.loads(reader.json())
    except c2pa.C2paError.ManifestNotFound:
        return CredentialReport(state="absent")
    except (c2pa.C2paError.NotSupported, c2pa.C2paError.Io, c2pa.C2paError.Other) as exc:
        return CredentialReport(
            state="absent", problems=(f"not readable as {media_type or 'an image'}: {exc}",)
        )
    except c2pa.C2paError as exc:  # a manifest is there, but broken
        return CredentialReport(state="invalid", problems=(str(exc),))
    return _report(store, data)


@lru_cache(maxsize=8)
def _reading_context(trust_anchors_pem: bytes | None) -> Any:
    """One Context per set of anchors, reused: c2pa lets several Readers share a Context."""
    settings = {**_NO_NETWORK, "trust": _trust(trust_anchors_pem)}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _trust(anchors_pem: bytes | None) -> dict[str, str]:
    trust = {"trust_config": _SIGNING_USAGES}
    if anchors_pem:
        trust["trust_anchors"] = anchors_pem.decode("ascii")
    return trust


def _report(store: Mapping[str, Any], data: bytes) -> CredentialReport:
    manifest = cast(dict[str, Any], store.get("manifests", {}).get(store.get("active_manifest"), {}))
    state = _STATES.get(str(store.get("validation_state")), "invalid")
    failures = store.get("validation_results", {}).get("activeManifest", {}).get("failure", [])
    action = _main_action(manifest)
    signature = manifest.get("signature_info", {})
    certificate = _leaf(data, signature.get("cert_serial_number"))
    return CredentialReport(
        state=state,
        signer=certificate.subject.rfc4514_string() if certificate else _signer_name(signature),
        signer_fingerprint=fingerprint(certificate) if certificate else None,
        claim_generator=_claim_generator(manifest),
        digital_source_type=action.get("digitalSourceType"),
        action=action.get("action"),
        model=_model(action),
        ingredients=tuple(_ingredient(item, store) for item in manifest.get("ingredients", [])),
        signed_at=signature.get("time") or action.get("when"),
        problems=_problems(failures) if state == "invalid" else (),
        manifest=manifest,
    )


_STATES: dict[str, State] = {"Trusted": "trusted", "Valid": "valid", "Invalid": "invalid"}
_MAIN_ACTIONS = ("c2pa.created", "c2pa.edited")


def _actions_of(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            return cast(list[dict[str, Any]], assertion.get("data", {}).get("actions", []))
    return []


def _main_action(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The action that made the image: created or edited, else the first one recorded."""
    actions = _actions_of(manifest)
    made = [action for action in actions if action.get("action") in _MAIN_ACTIONS]
    return (made or actions or [{}])[0]


def _model(action: Mapping[str, Any]) -> str | None:
    parameters = action.get("parameters") or {}
    agent = action.get("softwareAgent")
    name = agent.get("name") if isinstance(agent, dict) else agent
    return cast(str | None, parameters.get(MODEL_PARAMETER) or name)


def _claim_generator(manifest: Mapping[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info") or []
    if info:
        return " ".join(str(info[0][key]) for key in ("name", "version") if info[0].get(key))
    return cast(str | None, manifest.get("claim_generator"))


def _signer_name(signature: Mapping[str, Any]) -> str | None:
    parts = [f"CN={signature['common_name']}"] if signature.get("common_name") else []
    parts += [f"O={signature['issuer']}"] if signature.get("issuer") else []  # c2pa's "issuer" is the O
    return ",".join(parts) or None


def _ingredient(item: Mapping[str, Any], store: Mapping[str, Any]) -> IngredientReport:
    own = store.get("manifests", {}).get(item.get("active_manifest"))
    return IngredientReport(
        title=item.get("title"),
        relationship=item.get("relationship"),
        media_type=item.get("format"),
        has_manifest=own is not None,
        claim_generator=_claim_generator(own) if own else None,
        action=_main_action(own).get("action") if own else None,
    )


def _problems(failures: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    # Not being anchored is what "valid" means, not a problem with the image.
    return tuple(
        f"{item.get('code')}: {item.get('explanation')}"
        for item in failures
        if item.get("code") != "signingCredential.untrusted"
    )


def _leaf(data: bytes, serial: object) -> x509.Certificate | None:
    """The signing certificate, found in the embedded manifest by its serial number: c2pa reports
    the serial, not the certificate, and the fingerprint needs the DER. None when not found (a
    manifest split across JPEG segments, say)."""
    try:
        number = int(str(serial))
    except ValueError:
        return None
    for certificate in _certificates_with_serial(data, number):
        return certificate
    return None


def _certificates_with_serial(data: bytes, serial: int) -> Iterator[x509.Certificate]:
    encoded = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER INTEGER: a leading 0 if needed
    needle = bytes([0x02, len(encoded)]) + encoded
    position = data.find(needle)
    while position != -1:
        # Certificate and TBSCertificate headers (2 to 5 bytes each) and the version [0] (5 bytes)
        # come before the serial.
        for back in range(9, 16):
            certificate = _der_certificate(data, position - back)
            if certificate is not None and certificate.serial_number == serial:
                yield certificate
        position = data.find(needle, position + 1)


def _der_certificate(data: bytes, start: int) -> x509.Certificate | None:
    if start < 0 or data[start] != 0x30:
        return None
    size = _der_size(data, start)
    if size is None:
        return None
    try:
        return x509.load_der_x509_certificate(data[start : start + size])
    except ValueError:
        return None


def _der_size(data: bytes, start: int) -> int | None:
    """The length of the DER element at ``start``, header included (long form lengths only)."""
    first = data[start + 1]
    count = first & 0x7F
    if not first & 0x80 or not 1 <= count <= 3:
        return None
    length = int.from_bytes(data[start + 2 : start + 2 + count], "big")
    return 2 + count + length


def _one_pixel_png() -> bytes:
    """A one-pixel PNG, signed once at start to check that c2pa takes the certificate."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    return buffer.getvalue()
