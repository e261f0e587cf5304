"""Base64 of images on the wire (dialects/wire.py): every form a client sends decodes to the same
bytes, through pybase64's fast path and through the standard library where it is missing."""

from __future__ import annotations

import base64
import os
import textwrap

import pytest

from plantain.dialects import wire
from plantain.errors import InvalidImageError
from plantain.limits import Limits

DATA = bytes([0xFF, 0xD8, 0xFF, 0xFE, 0xFB, 0xEF]) + os.urandom(3001)  # encodes to both +/ and -_


@pytest.fixture(params=["pybase64", "stdlib"])
def codec(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib":
        monkeypatch.setattr(wire, "pybase64", None)  # a platform without pybase64's wheel
    return str(request.param)


def forms(data: bytes) -> dict[str, str]:
    standard, url_safe = base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()
    return {
        "standard": standard,
        "url-safe": url_safe,
        "url-safe unpadded": url_safe.rstrip("="),
        "standard unpadded": standard.rstrip("="),
        "wrapped at 76 columns": "\n".join(textwrap.wrap(standard, 76)),
        "mixed alphabets": url_safe[:8] + standard[8:],
        "data URI": f"data:image/jpeg;base64,{url_safe}",
    }


@pytest.mark.parametrize("form", list(forms(b"")))
def test_every_form_clients_send_decodes_to_the_same_bytes(codec: str, form: str) -> None:
    assert wire.decode_base64(forms(DATA)[form], "data") == DATA


def test_images_are_answered_in_standard_padded_base64(codec: str) -> None:
    assert wire.encode_base64(DATA) == base64.b64encode(DATA).decode("ascii")
    assert wire.encode_base64(b"") == ""


@pytest.mark.parametrize("text", ["", "not base64!", "YWJj\u00e9", "YWJjZ"])
def test_text_that_is_not_base64_is_refused_naming_the_field(codec: str, text: str) -> None:
    with pytest.raises(InvalidImageError, match=r"^inlineData\.data is not (valid )?base64") as caught:
        wire.decode_base64(text, "inlineData.data")
    assert caught.value.field == "inlineData.data"


@pytest.mark.parametrize("form", ["standard", "wrapped at 76 columns"])
def test_an_image_over_the_limit_is_refused_from_its_length(codec: str, form: str) -> None:
    limits = Limits(max_image_bytes=len(DATA) - 1)
    with pytest.raises(InvalidImageError, match=f"is {len(DATA)} bytes, over the limit of {len(DATA) - 1}"):
        wire.decode_base64(forms(DATA)[form], "data", limits=limits, label="input image 1")
    assert wire.decode_base64(forms(DATA)[form], "data", limits=Limits(max_image_bytes=len(DATA))) == DATA
