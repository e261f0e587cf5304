"""The certificate and key that sign content credentials, configured or generated.

An operator configures a real certificate chain (``c2pa_cert``, leaf first) and its key
(``c2pa_key``). Without them a small private CA and a signing certificate under it are generated
into ``<data_dir>/provenance/`` on first use and reused on every later start, so a restart keeps the
identity (and its fingerprint). The CA's private key is thrown away once the signing certificate is
issued: reading the data directory cannot mint other certificates under the local CA. The local CA
is this server's trust anchor only; every other C2PA tool reports such images as untrusted.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from c2pa import C2paSigningAlg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from plantain.errors import ConfigurationError
from plantain.storage.files import write_atomically

__all__ = ["SigningIdentity", "fingerprint", "generate", "load_identity", "load_trust_anchors"]

# Generated files, under <data_dir>/provenance/. The chain is written last: its presence means the
# set is complete, so a crash mid-generation is simply generated again at the next start.
CA_FILE = "c2pa-ca.pem"
KEY_FILE = "c2pa-signer.key"
CHAIN_FILE = "c2pa-signer.pem"

_GENERATED_YEARS = 10  # no time-stamp authority offline: a manifest reads valid while its leaf is
_CLOCK_SKEW = datetime.timedelta(minutes=5)  # a reader whose clock lags a little still sees it valid

_CURVES: dict[str, C2paSigningAlg] = {
    "secp256r1": C2paSigningAlg.ES256,
    "secp384r1": C2paSigningAlg.ES384,
    "secp521r1": C2paSigningAlg.ES512,
}
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SigningIdentity:
    """Who signs: the PEM chain (leaf first), its key, and what readers compare it by."""

    chain_pem: bytes
    key_pem: bytes
    algorithm: C2paSigningAlg
    trust_anchors_pem: bytes | None  # configured anchors, plus the local CA when it was generated
    generated: bool
    fingerprint: str  # SHA-256 hex of the leaf certificate's DER
    subject: str  # the leaf's subject, RFC 4514 ("CN=...,O=...")
    not_after: datetime.datetime


def load_identity(
    data_dir: Path, cert: Path | None = None, key: Path | None = None, trust_anchors: Path | None = None
) -> SigningIdentity:
    """The configured identity when ``cert`` and ``key`` are given, else the generated one (made
    on first use). Raises ``ConfigurationError`` naming the setting at fault."""
    if (cert is None) != (key is None):
        missing = "c2pa_key" if key is None else "c2pa_cert"
        given = "c2pa_cert" if key is None else "c2pa_key"
        raise ConfigurationError(f"{missing}: not set, but {given} is; set both or neither")
    anchors = load_trust_anchors(trust_anchors) if trust_anchors is not None else None
    if cert is not None and key is not None:
        chain = _read(cert, "c2pa_cert")
        return _identity(chain, _read(key, "c2pa_key"), anchors, generated=False)
    directory = data_dir / "provenance"
    try:
        chain_pem, key_pem, ca_pem = _generated_files(directory)
        return _identity(chain_pem, key_pem, (anchors or b"") + ca_pem, generated=True)
    except (OSError, ValueError, ConfigurationError) as exc:
        raise ConfigurationError(
            f"c2pa_cert: not set, and the signing identity generated in {directory} is damaged ({exc}); "
            f"delete {CHAIN_FILE}, {KEY_FILE} and {CA_FILE} there to generate a new one, or set c2pa_cert "
            "and c2pa_key"
        ) from exc


def load_trust_anchors(path: Path) -> bytes:
    """The PEM certificates in ``path``, checked to hold at least one."""
    data = _read(path, "c2pa_trust_anchors")
    _certificates(data, "c2pa_trust_anchors", path)
    return data if data.endswith(b"\n") else data + b"\n"


def _identity(chain_pem: bytes, key_pem: bytes, anchors: bytes | None, *, generated: bool) -> SigningIdentity:
    chain = _certificates(chain_pem, "c2pa_cert")
    leaf = chain[0]
    key = _private_key(key_pem)
    _check_pair(leaf, key)
    _check_dates(chain)
    return SigningIdentity(
        chain_pem=chain_pem,
        key_pem=_pkcs8(key),  # c2pa reads PKCS#8 only; "BEGIN EC/RSA PRIVATE KEY" files are common
        algorithm=_algorithm(key),
        trust_anchors_pem=anchors,
        generated=generated,
        fingerprint=fingerprint(leaf),
        subject=leaf.subject.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
    )


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 hex of a certificate's DER, the form ``SigningIdentity.fingerprint`` uses."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path} ({exc.strerror or exc})") from exc


def _certificates(data: bytes, setting: str, path: Path | None = None) -> list[x509.Certificate]:
    where = f" in {path}" if path is not None else ""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigurationError(f"{setting}: no PEM certificate{where} ({exc})") from exc
    if not certificates:  # pragma: no cover - cryptography raises for an empty file already
        raise ConfigurationError(f"{setting}: no PEM certificate{where}")
    return certificates


def _private_key(data: bytes) -> _PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise ConfigurationError("c2pa_key: the key is encrypted; give it without a password") from exc
    except ValueError as exc:
        raise ConfigurationError(f"c2pa_key: not a PEM private key ({exc})") from exc
    if not isinstance(key, _PrivateKey):
        raise ConfigurationError(
            f"c2pa_key: a {type(key).__name__} cannot sign content credentials; "
            "use an EC (P-256, P-384, P-521), RSA (2048 bits or more) or Ed25519 key"
        )
    return key


def _pkcs8(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _algorithm(key: _PrivateKey) -> C2paSigningAlg:
    """The C2PA signing algorithm a key implies (RSA signs with PSS, as C2PA requires)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return C2paSigningAlg.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigurationError(f"c2pa_key: an RSA key of {key.key_size} bits; at least 2048 are needed")
        return C2paSigningAlg.PS256
    algorithm = _CURVES.get(key.curve.name)
    if algorithm is None:
        raise ConfigurationError(
            f"c2pa_key: EC curve {key.curve.name} is not supported; use P-256, P-384 or P-521"
        )
    return algorithm


def _check_pair(leaf: x509.Certificate, key: _PrivateKey) -> None:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ConfigurationError(
            "c2pa_key: does not match the first certificate of c2pa_cert "
            f"({leaf.subject.rfc4514_string()}); the chain must start with the key's certificate"
        )


def _check_dates(chain: Sequence[x509.Certificate]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    for certificate in chain:
        name = certificate.subject.rfc4514_string()
        if certificate.not_valid_after_utc < now:
            raise ConfigurationError(
                f"c2pa_cert: certificate {name} expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
            )
        if certificate.not_valid_before_utc > now:
            raise ConfigurationError(
                f"c2pa_cert: certificate {name} is not valid before "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )


# --- the generated identity ---


def _generated_files(directory: Path) -> tuple[bytes, bytes, bytes]:
    """(chain, key, CA) PEMs from ``directory``, generated there first when absent or expired."""
    chain_path = directory / CHAIN_FILE
    if chain_path.exists() and not _expired(chain_path.read_bytes()):  # a ValueError when damaged
        return (
            chain_path.read_bytes(),
            (directory / KEY_FILE).read_bytes(),
            (directory / CA_FILE).read_bytes(),
        )
    chain_pem, key_pem, ca_pem = generate()
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory / KEY_FILE, key_pem, mode=0o600)
    write_atomically(directory / CA_FILE, ca_pem, mode=0o644)
    write_atomically(chain_path, chain_pem, mode=0o644)  # last: the set is complete
    return chain_pem, key_pem, ca_pem


def _expired(chain_pem: bytes) -> bool:
    """A generated leaf past its end (or within a day of it) is replaced rather than refused."""
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    return leaf.not_valid_after_utc < datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)


def generate() -> tuple[bytes, bytes, bytes]:
    """A fresh (chain, key, CA) in PEM: a self-signed CA and an ES256 signing certificate under it
    with the extensions C2PA requires of a signer (not a CA, digitalSignature, an allowed EKU)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, now)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf_certificate(key, ca, ca_key, now)
    return _pem(leaf) + _pem(ca), _pkcs8(key), _pem(ca)


def _name(common_name: str) -> x509.Name:
    # The random suffix tells two installations apart; nothing about the host goes into a certificate.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Plantain"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} {secrets.token_hex(4)}"),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=365 * _GENERATED_YEARS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime.datetime) -> x509.Certificate:
    name = _name("Plantain local CA")
    return (
        _builder(name, name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def _leaf_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
) -> x509.Certificate:
    return (
        _builder(_name("Plantain content credentials"), ca.subject, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
