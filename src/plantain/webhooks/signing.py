"""Standard Webhooks (spec v1) symmetric signatures, so receivers can verify with any of its libraries.

A message is signed as ``HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body)``, sent base64 in
``webhook-signature`` as ``v1,<signature>``; the key is the base64 part of a ``whsec_`` secret. The id
lets receivers drop duplicates and the timestamp lets them refuse replays; both are signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from plantain.storage.files import write_atomically

__all__ = ["check_secret", "generate_secret", "load_or_create_secret", "sign", "verify", "webhook_headers"]

_PREFIX = "whsec_"
_VERSION = "v1"


def generate_secret() -> str:
    """A fresh ``whsec_`` secret holding 32 random bytes, the size the spec recommends."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is ``whsec_`` (optional) and non-empty base64."""
    _key(secret)


def load_or_create_secret(path: Path) -> str:
    """The secret kept in ``path``, generated there (readable by its owner only) on first use, so
    receivers keep verifying across restarts without anyone configuring a secret."""
    if path.exists():
        secret = path.read_text().strip()
        try:
            check_secret(secret)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}; delete the file to generate a new secret") from None
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = generate_secret()
    write_atomically(path, f"{secret}\n".encode(), mode=0o600)
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message: ``v1,`` and the base64 HMAC-SHA256."""
    return f"{_VERSION}," + base64.b64encode(_digest(_key(secret), msg_id, timestamp, body)).decode("ascii")


def webhook_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers to send with a JSON ``body``, its signature included."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300, now: int | None = None
) -> None:
    """Raise ``ValueError`` unless ``headers`` carry a fresh timestamp and a ``v1`` signature of ``body``.

    Header names are matched case-insensitively; the signature header may list several space-separated
    signatures (as during a secret rotation), and one match is enough.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id, stamp, signatures = (_header(lowered, name) for name in _REQUIRED)
    timestamp = _timestamp(stamp)
    _check_fresh(timestamp, tolerance_s, int(time.time()) if now is None else now)
    expected = _digest(_key(secret), msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in _candidates(signatures)):
        raise ValueError(
            "webhook-signature: no v1 signature matches this body, webhook-id and webhook-timestamp "
            "under this secret; the body must be verified byte for byte as received"
        )


_REQUIRED = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _key(secret: str) -> bytes:
    """The HMAC key in ``secret``: base64 after an optional ``whsec_`` prefix, padding optional."""
    encoded = secret.removeprefix(_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"webhook secret is not base64 after the {_PREFIX!r} prefix ({exc})") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "")
    if not value:
        raise ValueError(f"{name}: header missing; Standard Webhooks needs {', '.join(_REQUIRED)}")
    return value


def _timestamp(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"webhook-timestamp: {value!r} is not whole seconds since the Unix epoch")
    return int(value)


def _check_fresh(timestamp: int, tolerance_s: int, now: int) -> None:
    """Refuse a timestamp more than ``tolerance_s`` from ``now`` either way, so old messages cannot be
    replayed and far-future ones cannot be stockpiled."""
    skew = now - timestamp
    if abs(skew) > tolerance_s:
        direction = "old" if skew > 0 else "in the future"
        raise ValueError(
            f"webhook-timestamp: {timestamp} is {abs(skew)} s {direction}, beyond the {tolerance_s} s "
            "tolerance; check both clocks, or this may be a replayed message"
        )


def _candidates(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures in a ``webhook-signature`` header; other versions and
    undecodable entries are skipped."""
    found: list[bytes] = []
    for entry in header.split():
        version, _, encoded = entry.partition(",")
        if version != _VERSION:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found
