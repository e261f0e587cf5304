"""C2PA content credentials: the signing identity, signing outputs, and reading them back with c2pa."""

from __future__ import annotations

import datetime
import io
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image, ImageDraw

from plantain import __version__
from plantain.errors import ConfigurationError
from plantain.provenance.credentials import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    Claim,
    ContentCredentials,
    Ingredient,
)
from plantain.provenance.identity import SigningIdentity, load_identity
from plantain.provenance.manifests import read_credentials

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP", "image/avif": "AVIF"}
# Where each format's compressed pixels start: a byte well past it is image data, not manifest.
PIXEL_DATA = {"image/png": b"IDAT", "image/jpeg": b"\xff\xda", "image/webp": b"VP8", "image/avif": b"mdat"}
CREATED = Claim("plantain-7.png", "gemini-2.5-flash-image", "tiny", __version__)
C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def picture(media_type: str = "image/png", seed: int = 0, size: int = 96) -> bytes:
    """Noise with a few flat shapes, encoded as ``media_type``."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(0, size // 2, 2))
        draw.ellipse((x, y, x + size // 3, y + size // 3), fill=(200, 40, 90))
    buffer = io.BytesIO()
    image.save(buffer, FORMATS[media_type])
    return buffer.getvalue()


def certificate_chain(
    key: PrivateKey,
    *,
    usage: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.EMAIL_PROTECTION,
    days: float = 365,
) -> tuple[bytes, bytes, bytes]:
    """(chain PEM, key PEM, CA PEM): a signing certificate for ``key`` under a fresh test CA."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test signer")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if usage is not None:
        leaf = leaf.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    signed = leaf.sign(ca_key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _pem(signed) + _pem(ca), key_pem, _pem(ca)


def _usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature, False, False, False, False, key_cert_sign, key_cert_sign, False, False
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_configured(directory: Path, key: PrivateKey, **options: object) -> tuple[Path, Path, Path]:
    chain, key_pem, ca = certificate_chain(key, **options)  # type: ignore[arg-type]
    paths = directory / "signer.pem", directory / "signer.key", directory / "anchors.pem"
    for path, data in zip(paths, (chain, key_pem, ca), strict=True):
        path.write_bytes(data)
    return paths


def flip_pixel_byte(data: bytes, media_type: str) -> bytes:
    """``data`` with one byte of its compressed pixels inverted; the manifest left as it was."""
    index = data.index(PIXEL_DATA[media_type]) + 64
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> SigningIdentity:
    return load_identity(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def credentials(identity: SigningIdentity) -> ContentCredentials:
    return ContentCredentials(identity)


# --- the signing identity ---


def test_generated_identity_is_kept_and_reused_with_a_private_key(tmp_path: Path) -> None:
    first = load_identity(tmp_path)
    again = load_identity(tmp_path)
    key_file = tmp_path / "provenance" / "c2pa-signer.key"
    assert first.generated and again == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "O=Plantain" in first.subject
    assert first.not_after > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)
    ca = x509.load_pem_x509_certificate(first.trust_anchors_pem or b"")
    assert x509.load_pem_x509_certificates(first.chain_pem)[1] == ca  # the local CA anchors the chain


def test_damaged_generated_identity_says_what_to_delete(tmp_path: Path) -> None:
    load_identity(tmp_path)
    (tmp_path / "provenance" / "c2pa-signer.key").unlink()
    with pytest.raises(
        ConfigurationError, match=r"^c2pa_cert: not set, and the signing identity .* is damaged"
    ):
        load_identity(tmp_path)


def test_generated_certificate_past_its_end_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "provenance").mkdir()
    write_configured(tmp_path / "provenance", ec.generate_private_key(ec.SECP256R1()), days=-0.5)
    for name, generated in [
        ("signer.pem", "c2pa-signer.pem"),
        ("signer.key", "c2pa-signer.key"),
        ("anchors.pem", "c2pa-ca.pem"),
    ]:
        (tmp_path / "provenance" / name).rename(tmp_path / "provenance" / generated)
    identity = load_identity(tmp_path)
    assert identity.not_after > datetime.datetime.now(datetime.UTC) and "Plantain" in identity.subject


def test_generated_identity_trusts_configured_anchors_too(tmp_path: Path) -> None:
    _, _, anchors = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    identity = load_identity(tmp_path, trust_anchors=anchors)
    assert identity.generated
    assert len(x509.load_pem_x509_certificates(identity.trust_anchors_pem or b"")) == 2


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (rsa.generate_private_key(65537, 2048), "PS256"),
        (ed25519.Ed25519PrivateKey.generate(), "ED25519"),
    ],
    ids=["p256", "p384", "rsa", "ed25519"],
)
def test_configured_certificate_signs_and_reads_trusted(
    tmp_path: Path, key: PrivateKey, algorithm: str
) -> None:
    cert, key_file, anchors = write_configured(tmp_path, key)
    identity = load_identity(tmp_path, cert, key_file, anchors)
    assert not identity.generated and identity.algorithm.name == algorithm
    assert not (tmp_path / "provenance").exists()  # nothing generated
    signed = ContentCredentials(identity).sign(picture(), "image/png", CREATED)
    report = read_credentials(signed, trust_anchors_pem=identity.trust_anchors_pem)
    assert report.state == "trusted"
    assert (report.signer, report.signer_fingerprint) == ("CN=Test signer", identity.fingerprint)


@pytest.mark.parametrize(
    "usage",
    [ExtendedKeyUsageOID.EMAIL_PROTECTION, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"), C2PA_CLAIM_SIGNING],
    ids=["emailProtection", "documentSigning", "c2pa-claimSigning"],
)
def test_certificate_with_any_usage_c2pa_allows_reads_trusted(
    tmp_path: Path, usage: x509.ObjectIdentifier
) -> None:
    cert, key, anchors = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()), usage=usage)
    identity = load_identity(tmp_path, cert, key, anchors)
    signed = ContentCredentials(identity).sign(picture(), "image/png", CREATED)
    assert read_credentials(signed, trust_anchors_pem=identity.trust_anchors_pem).state == "trusted"
    assert read_credentials(signed).state == "valid"


def test_key_in_traditional_pem_is_accepted(tmp_path: Path) -> None:
    key = rsa.generate_private_key(65537, 2048)
    cert, key_file, _ = write_configured(tmp_path, key)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    signed = ContentCredentials(load_identity(tmp_path, cert, key_file)).sign(picture(), "image/png", CREATED)
    assert read_credentials(signed).state == "valid"


def test_key_of_another_certificate_names_c2pa_key(tmp_path: Path) -> None:
    cert, _, _ = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    other = tmp_path / "other"
    other.mkdir()
    _, other_key, _ = write_configured(other, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(
        ConfigurationError, match=r"^c2pa_key: does not match the first certificate of c2pa_cert"
    ):
        load_identity(tmp_path, cert, other_key)


@pytest.mark.parametrize("missing", ["c2pa_cert", "c2pa_key", "c2pa_trust_anchors"])
def test_missing_file_names_its_setting(tmp_path: Path, missing: str) -> None:
    paths = dict(
        zip(
            ["c2pa_cert", "c2pa_key", "c2pa_trust_anchors"],
            write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1())),
            strict=True,
        )
    )
    paths[missing].unlink()
    with pytest.raises(ConfigurationError, match=rf"^{missing}: cannot read .*{paths[missing].name}"):
        load_identity(tmp_path, paths["c2pa_cert"], paths["c2pa_key"], paths["c2pa_trust_anchors"])


def test_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert, _, _ = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ConfigurationError, match=r"^c2pa_key: not set, but c2pa_cert is"):
        load_identity(tmp_path, cert=cert)


def test_expired_certificate_names_c2pa_cert(tmp_path: Path) -> None:
    cert, key, _ = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()), days=-0.5)
    with pytest.raises(ConfigurationError, match=r"^c2pa_cert: certificate CN=Test signer expired on"):
        load_identity(tmp_path, cert, key)


def test_certificate_c2pa_refuses_fails_at_start(tmp_path: Path) -> None:
    cert, key, _ = write_configured(tmp_path, ec.generate_private_key(ec.SECP256R1()), usage=None)
    identity = load_identity(tmp_path, cert, key)  # a well-formed pair: only c2pa knows its rules
    with pytest.raises(
        ConfigurationError, match=r"^c2pa_cert: c2pa cannot sign with this certificate.*extended key"
    ):
        ContentCredentials(identity)


# --- signing and reading ---


@pytest.mark.parametrize("media_type", sorted(FORMATS))
def test_signed_output_reads_trusted_with_our_anchors_and_valid_without(
    credentials: ContentCredentials, identity: SigningIdentity, media_type: str
) -> None:
    assert media_type in ContentCredentials.MEDIA_TYPES
    signed = credentials.sign(picture(media_type), media_type, CREATED)
    report = read_credentials(signed, trust_anchors_pem=identity.trust_anchors_pem)  # type sniffed
    assert report.state == "trusted" and report.problems == ()
    assert report.action == "c2pa.created"
    assert report.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert report.model == "gemini-2.5-flash-image"
    assert report.claim_generator == f"Plantain {__version__}"
    assert (report.signer, report.signer_fingerprint) == (identity.subject, identity.fingerprint)
    assert report.signed_at is not None and report.ingredients == ()
    assert report.manifest["title"] == "plantain-7.png"
    untrusted = read_credentials(signed, media_type)
    assert (untrusted.state, untrusted.problems) == ("valid", ())


def test_edit_lists_its_inputs_as_parent_and_component(
    credentials: ContentCredentials, identity: SigningIdentity
) -> None:
    inputs = (
        Ingredient(picture("image/jpeg", 1), "image/jpeg", "input 1"),
        Ingredient(picture("image/webp", 2), "image/webp", "input 2"),
    )
    claim = Claim("plantain-8.png", "gpt-image-1", "tiny", __version__, inputs)
    report = read_credentials(
        credentials.sign(picture(), "image/png", claim), None, identity.trust_anchors_pem
    )
    assert report.state == "trusted"
    assert (report.action, report.model) == ("c2pa.edited", "gpt-image-1")
    assert report.digital_source_type == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    described = [
        (item.title, item.relationship, item.media_type, item.has_manifest) for item in report.ingredients
    ]
    assert described == [
        ("input 1", "parentOf", "image/jpeg", False),
        ("input 2", "componentOf", "image/webp", False),
    ]


def test_editing_a_signed_image_keeps_its_manifest_in_the_chain(
    credentials: ContentCredentials, identity: SigningIdentity
) -> None:
    first = credentials.sign(picture("image/jpeg"), "image/jpeg", CREATED)
    claim = Claim(
        "plantain-9.webp",
        "gemini-2.5-flash-image",
        "tiny",
        __version__,
        (Ingredient(first, "image/jpeg", "input 1"),),
    )
    report = read_credentials(
        credentials.sign(picture("image/webp"), "image/webp", claim), None, identity.trust_anchors_pem
    )
    assert report.state == "trusted" and report.action == "c2pa.edited"
    [parent] = report.ingredients
    assert (parent.relationship, parent.has_manifest) == ("parentOf", True)
    assert (parent.claim_generator, parent.action) == (f"Plantain {__version__}", "c2pa.created")


def test_input_c2pa_cannot_parse_is_recorded_without_its_bytes(credentials: ContentCredentials) -> None:
    claim = Claim(
        "plantain-10.png",
        "m",
        "tiny",
        __version__,
        (Ingredient(b"\x89PNG not really", "image/png", "input 1"),),
    )
    report = read_credentials(credentials.sign(picture(), "image/png", claim))
    assert report.state == "valid"
    assert [(item.title, item.relationship, item.media_type) for item in report.ingredients] == [
        ("input 1", "parentOf", "image/png")
    ]


def test_reencoded_image_has_no_credentials(credentials: ContentCredentials) -> None:
    signed = credentials.sign(picture("image/jpeg"), "image/jpeg", CREATED)
    buffer = io.BytesIO()
    Image.open(io.BytesIO(signed)).save(buffer, "JPEG", quality=85)
    assert read_credentials(buffer.getvalue()).state == "absent"


@pytest.mark.parametrize("media_type", sorted(FORMATS))
def test_changed_pixels_read_invalid(
    credentials: ContentCredentials, identity: SigningIdentity, media_type: str
) -> None:
    signed = credentials.sign(picture(media_type), media_type, CREATED)
    report = read_credentials(flip_pixel_byte(signed, media_type), media_type, identity.trust_anchors_pem)
    assert report.state == "invalid"
    assert any("Hash.mismatch" in problem for problem in report.problems), report.problems
    assert report.action == "c2pa.created"  # what the manifest claims is still shown


@pytest.mark.parametrize("media_type", sorted(FORMATS))
def test_unsigned_image_reads_absent(media_type: str) -> None:
    report = read_credentials(picture(media_type))
    assert (report.state, report.problems, report.signer) == ("absent", (), None)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n truncated"])
def test_bytes_that_are_no_image_read_absent_with_a_reason(data: bytes) -> None:
    report = read_credentials(data)
    assert report.state == "absent" and len(report.problems) == 1


def test_signing_and_reading_from_several_threads(
    credentials: ContentCredentials, identity: SigningIdentity
) -> None:
    sources = {media_type: picture(media_type) for media_type in ("image/png", "image/jpeg", "image/webp")}
    states: list[str] = []

    def work() -> None:
        for media_type, data in sources.items():
            signed = credentials.sign(data, media_type, CREATED)
            states.append(read_credentials(signed, media_type, identity.trust_anchors_pem).state)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states == ["trusted"] * 12


def test_signing_a_type_it_cannot_sign_is_a_programming_error(credentials: ContentCredentials) -> None:
    with pytest.raises(ValueError, match="cannot sign image/bmp"):
        credentials.sign(b"BM", "image/bmp", CREATED)
