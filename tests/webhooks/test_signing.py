"""Our Standard Webhooks signatures interoperate with the spec's reference Python library."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from plantain.webhooks.signing import generate_secret, sign, verify, webhook_headers

MSG_ID = "msg_2mN8x4q7Vb3cP1"
BODY = json.dumps({"type": "task.completed", "data": {"id": "task_1", "images": 2}}).encode()

# The example published with the Standard Webhooks specification and used by its libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def _reference_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode())


def _flip_bit(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert first != second


def test_reference_library_verifies_our_headers(secret: str) -> None:
    headers = webhook_headers(secret, MSG_ID, int(time.time()), BODY)
    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_headers_carry_id_timestamp_signature_and_content_type(secret: str) -> None:
    headers = webhook_headers(secret, MSG_ID, 1_700_000_000, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1700000000",
        "webhook-signature": sign(secret, MSG_ID, 1_700_000_000, BODY),
        "content-type": "application/json",
    }


def test_we_verify_the_reference_librarys_signature(secret: str) -> None:
    timestamp = int(time.time())
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": _reference_sign(secret, MSG_ID, timestamp, BODY),
    }
    verify(secret, headers, BODY)


def test_signature_matches_a_vector_computed_by_the_reference_library() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    expected = _reference_sign(secret, "msg_vector", 1_700_000_000, b'{"ok":true}')
    assert sign(secret, "msg_vector", 1_700_000_000, b'{"ok":true}') == expected


def test_signature_matches_the_specs_published_example() -> None:
    assert _reference_sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    verify(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TIMESTAMP)


def test_secret_without_prefix_or_padding_is_accepted() -> None:
    bare = SPEC_SECRET.removeprefix("whsec_")
    assert sign(bare, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    unpadded = "whsec_" + base64.b64encode(bytes(range(32))).decode().rstrip("=")
    assert sign(unpadded, MSG_ID, 1, BODY) == _reference_sign(unpadded, MSG_ID, 1, BODY)


def _headers(secret: str, timestamp: int) -> dict[str, str]:
    return webhook_headers(secret, MSG_ID, timestamp, BODY)


def test_a_flipped_bit_in_the_body_fails(secret: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    for index in (0, len(BODY) // 2, len(BODY) - 1):
        with pytest.raises(ValueError, match="no v1 signature matches"):
            verify(secret, headers, _flip_bit(BODY, index), now=now)


def test_a_flipped_bit_in_the_id_fails(secret: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    headers["webhook-id"] = _flip_bit(MSG_ID.encode(), len(MSG_ID) - 1).decode()
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(secret, headers, BODY, now=now)


def test_a_flipped_bit_in_the_timestamp_fails(secret: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    headers["webhook-timestamp"] = str(now ^ 1)
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(secret, headers, BODY, now=now)


def test_a_flipped_bit_in_the_signature_fails(secret: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    raw = base64.b64decode(headers["webhook-signature"].removeprefix("v1,"))
    headers["webhook-signature"] = "v1," + base64.b64encode(_flip_bit(raw, 5)).decode()
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(secret, headers, BODY, now=now)


def test_another_secret_fails(secret: str) -> None:
    now = int(time.time())
    with pytest.raises(ValueError, match="no v1 signature matches"):
        verify(generate_secret(), _headers(secret, now), BODY, now=now)


@pytest.mark.parametrize(("skew", "words"), [(301, "301 s old"), (-301, "301 s in the future")])
def test_timestamp_outside_the_tolerance_fails(secret: str, skew: int, words: str) -> None:
    signed_at = 1_700_000_000
    headers = _headers(secret, signed_at)
    verify(secret, headers, BODY, now=signed_at + 300)
    verify(secret, headers, BODY, now=signed_at - 300)
    with pytest.raises(ValueError, match=words):
        verify(secret, headers, BODY, now=signed_at + skew)


def test_stale_timestamp_fails_against_the_clock(secret: str) -> None:
    headers = _headers(secret, int(time.time()) - 3600)
    with pytest.raises(ValueError, match="beyond the 300 s tolerance"):
        verify(secret, headers, BODY)
    verify(secret, headers, BODY, tolerance_s=7200)


def test_one_matching_entry_among_several_is_enough(secret: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    stale = sign(generate_secret(), MSG_ID, now, BODY)
    headers["webhook-signature"] = f"v2,abc {stale} v1,!!notbase64 {headers['webhook-signature']}"
    verify(secret, headers, BODY, now=now)


def test_header_names_are_case_insensitive(secret: str) -> None:
    now = int(time.time())
    headers = {name.title(): value for name, value in _headers(secret, now).items()}
    verify(secret, headers, BODY, now=now)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails_naming_it(secret: str, missing: str) -> None:
    now = int(time.time())
    headers = _headers(secret, now)
    del headers[missing]
    with pytest.raises(ValueError, match=f"{missing}: header missing"):
        verify(secret, headers, BODY, now=now)


@pytest.mark.parametrize("stamp", ["1700000000.5", "-1", "soon", "１７"])
def test_non_integer_timestamp_fails(secret: str, stamp: str) -> None:
    headers = _headers(secret, 1_700_000_000)
    headers["webhook-timestamp"] = stamp
    with pytest.raises(ValueError, match="not whole seconds"):
        verify(secret, headers, BODY, now=1_700_000_000)


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!", ""])
def test_invalid_secret_fails(bad: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        sign(bad, MSG_ID, 1, BODY)
