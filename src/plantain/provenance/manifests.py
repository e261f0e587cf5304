"""Reading C2PA content credentials back: :func:`read_credentials` and the report it gives (who
signed, how the image was made, from which ingredients, whether the manifest holds), and the c2pa
settings that signing shares: no network access, and which certificates are accepted and trusted.
Signing is in :mod:`plantain.provenance.credentials`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import c2pa
from cryptography import x509

from plantain.provenance.identity import fingerprint

__all__ = [
    "MODEL_PARAMETER",
    "NO_NETWORK",
    "CredentialReport",
    "IngredientReport",
    "read_credentials",
    "trust_settings",
]

MODEL_PARAMETER = "plantain.model"  # the action parameter naming the model the caller asked for

# Never fetch a remote manifest or an OCSP answer: an uploaded image must not make the server call
# a URL it names.
NO_NETWORK: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# The extended key usages a signing certificate may have (c2pa-rs's list). Given explicitly: left
# unset, c2pa-python 0.38 accepted emailProtection alone, refusing even C2PA's own claim-signing
# usage (tests/provenance/test_credentials.py covers three of them).
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
    settings = {**NO_NETWORK, "trust": trust_settings(trust_anchors_pem)}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def trust_settings(anchors_pem: bytes | None) -> dict[str, str]:
    """c2pa's ``trust`` settings: the signing usages accepted, and ``anchors_pem`` trusted."""
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
