"""Every request limit, refused in each dialect with an error naming the field and the limit, and
the server serving on afterwards (docs/limits.md).

One live server with tight limits serves all three dialects; each case is sent by the client its
users use (google-genai, openai, the task API over HTTP) through :mod:`callers`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image
from tests.callers import DIALECTS, Call, Caller, Refusal, envelope

from plantain.dialects.wire import decode_base64
from plantain.errors import ImageTooLargeError, InvalidImageError
from plantain.imaging.codecs import decode_image
from plantain.limits import DEFAULT_LIMITS, Limits, base64_size
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input
from plantain.types import InputImage

LIMITS = {
    "max_body_bytes": 256 * 1024,
    "max_image_bytes": 40_000,
    "max_input_images": 2,
    "max_input_pixels": 1_000_000,
    "max_prompt_chars": 200,
    "max_output_pixels": 512 * 512,
}
PNG = "image/png"
ROUTES = {
    "gemini": "/v1beta/models/gemini-2.5-flash-image:generateContent",
    "openai": "/v1/images/generations",
    "tasks": "/v1/tasks",
}

# The field each dialect names, per core field.
FIELDS = {
    "prompt": {"gemini": "contents", "openai": "prompt", "tasks": "input.prompt"},
    "images": {"gemini": "contents", "openai": "image", "tasks": "input.images"},
    "size": {
        "gemini": "generationConfig.imageConfig.imageSize",
        "openai": "size",
        "tasks": "input.resolution",
    },
    "count": {"gemini": "generationConfig.candidateCount", "openai": "n", "tasks": "input.num_images"},
    "image 0": {"gemini": "contents[0].parts[0].inlineData", "openai": "image", "tasks": "input.images[0]"},
}


@pytest.fixture(scope="module")
def url(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(**LIMITS))) as live:
        yield live.wait_ready()


@pytest.fixture(params=DIALECTS)
def caller(request: pytest.FixtureRequest, url: str) -> Caller:
    return Caller(request.param, url)


def refused(caller: Caller, call: Call) -> Refusal:
    outcome = caller.send(call)
    assert isinstance(outcome, Refusal), outcome
    return outcome


def noise_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A real, complete PNG of ``width`` x ``height`` black pixels: tiny, huge once decoded."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def claimed_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no pixel data behind it: past
    Pillow's own decompression-bomb limit, yet under 100 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


# --- each limit in each dialect ---------------------------------------------------------------


def test_a_prompt_over_max_prompt_chars(caller: Caller) -> None:
    outcome = refused(caller, Call(prompt="a" * 201))
    field = FIELDS["prompt"][caller.dialect]
    assert (outcome.status, outcome.code, outcome.field) == (400, "invalid_request", field)
    assert (
        outcome.message
        == f"{field}: 201 characters is over the limit of 200 (max_prompt_chars); shorten the prompt"
    )


def test_a_control_character_in_the_prompt(caller: Caller) -> None:
    outcome = refused(caller, Call(prompt="a red\x00 cube"))
    assert (outcome.status, outcome.field) == (400, FIELDS["prompt"][caller.dialect])
    assert (
        "control character U+0000 at position 5; only line feed, carriage return and tab" in outcome.message
    )


def test_more_input_images_than_max_input_images(caller: Caller) -> None:
    image = (make_input(32, 32).data, PNG)
    outcome = refused(caller, Call(images=[image] * 3))
    field = FIELDS["images"][caller.dialect]
    assert (outcome.status, outcome.code, outcome.field) == (400, "too_many_images", field)
    assert "3 input images is over the limit of 2 per request (max_input_images)" in outcome.message


def test_an_image_over_max_image_bytes(caller: Caller) -> None:
    data = noise_png(150)
    assert 40_000 < len(data) < 100_000
    outcome = refused(caller, Call(images=[(data, PNG)]))
    assert (outcome.status, outcome.code, outcome.field) == (
        400,
        "image_too_large",
        FIELDS["image 0"][caller.dialect],
    )
    label = {
        "gemini": "contents[0].parts[0].inlineData",
        "openai": "image (input-1)",
        "tasks": "input.images[0]",
    }
    assert outcome.message.startswith(
        f"{label[caller.dialect]} is {len(data)} bytes, over the limit of 40000"
    )
    assert "(max_image_bytes)" in outcome.message


def test_a_decompression_bomb_over_max_input_pixels(caller: Caller) -> None:
    bomb = bomb_png(9000, 9000)
    assert len(bomb) < 40_000  # 81 megapixels in a few kilobytes: only the header can stop it
    outcome = refused(caller, Call(images=[(bomb, PNG)]))
    assert (outcome.status, outcome.code, outcome.field) == (
        400,
        "image_too_large",
        FIELDS["images"][caller.dialect],
    )
    assert "is 9000x9000 = 81000000 pixels; the limit is 1000000 pixels per input image" in outcome.message
    assert "(max_input_pixels)" in outcome.message


def test_a_bomb_over_pillows_own_limit_is_refused_naming_its_dimensions(caller: Caller) -> None:
    outcome = refused(caller, Call(images=[(claimed_png(100_000, 100_000), PNG)]))
    assert (outcome.status, outcome.code, outcome.field) == (
        400,
        "image_too_large",
        FIELDS["images"][caller.dialect],
    )
    label = {"gemini": "contents[0].parts[0].inlineData", "openai": "image", "tasks": "input.images[0]"}
    assert outcome.message.startswith(label[caller.dialect])
    assert (
        "is 100000x100000 = 10000000000 pixels; the limit is 1000000 pixels per input image "
        "(max_input_pixels)" in outcome.message
    )


def test_an_output_over_max_output_pixels(caller: Caller) -> None:
    outcome = refused(caller, Call(size="1K"))
    assert (outcome.status, outcome.code, outcome.field) == (
        400,
        "unsupported_size",
        FIELDS["size"][caller.dialect],
    )
    assert outcome.message.startswith(
        "this server (max_output_pixels) makes at most 0.3 megapixels (262144 pixels)"
    )


def test_more_outputs_than_ten(caller: Caller) -> None:
    outcome = refused(caller, Call(count=11))
    field = FIELDS["count"][caller.dialect]
    assert (outcome.status, outcome.field) == (400, field)
    assert outcome.message.startswith(f"{field}: 11 is not allowed; must be between 1 and 10")


def test_a_truncated_image_is_named(caller: Caller) -> None:
    data = make_input(64, 64).data[:-40]
    outcome = refused(caller, Call(images=[(make_input(32, 32).data, PNG), (data, PNG)]))
    assert (outcome.status, outcome.code, outcome.field) == (
        400,
        "invalid_image",
        FIELDS["images"][caller.dialect],
    )
    label = {
        "gemini": "contents[0].parts[1].inlineData",
        "openai": "image 2 (input-2)",
        "tasks": "input.images[1]",
    }
    assert outcome.message.startswith(
        f"{label[caller.dialect]} is not a readable image (corrupt or truncated"
    )


def test_a_body_over_max_body_bytes_is_refused_from_its_content_length(caller: Caller) -> None:
    outcome = refused(caller, Call(images=[(os.urandom(300_000), PNG)]))
    assert (outcome.status, outcome.code) == (413, "payload_too_large")
    assert "over the limit of 262144 bytes (max_body_bytes)" in outcome.message


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_chunked_body_is_stopped_once_it_passes_max_body_bytes(url: str, dialect: str) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:  # a JSON body with no Content-Length, 1 MiB in 64 KiB chunks
        nonlocal sent
        yield b'{"prompt": "'
        for _ in range(16):
            sent += 1
            yield b"a" * 65536
        yield b'"}'

    response = httpx.post(
        f"{url}{ROUTES[dialect]}", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    kind = {"gemini": ("status", "INVALID_ARGUMENT"), "openai": ("type", "invalid_request_error")}
    if dialect in kind:  # the 413 in the dialect's own words
        name, value = kind[dialect]
        assert response.json()["error"][name] == value
    outcome = envelope(dialect, response)
    assert (response.status_code, outcome.status, outcome.code) == (413, 413, "payload_too_large")
    assert outcome.message.startswith("the request body was stopped once it passed the limit of 262144 bytes")


def test_a_large_base64_image_is_refused_before_it_is_decoded() -> None:
    text = base64.b64encode(b"\0" * 40_001).decode()
    assert base64_size(text) == 40_001 and base64_size(text[:-4] + "AA==") == 40_000
    with pytest.raises(
        ImageTooLargeError, match=r"^input\.images\[0\] is 40001 bytes, over the limit of 40000"
    ):
        decode_base64(text, "input.images[0]", limits=Limits(max_image_bytes=40_000))


def test_after_every_refusal_the_server_still_makes_images(caller: Caller) -> None:
    """Runs after the refusals above, on the same server: line breaks and tabs are allowed."""
    call = Call(prompt="a red cube\r\n\ton a table", images=[(make_input(64, 64).data, PNG)] * 2)
    assert caller.send(call) == 1


# --- the decode path on its own ---------------------------------------------------------------


def test_a_bomb_over_pillows_own_limit_is_refused_at_open_with_warnings_as_errors() -> None:
    bomb = bomb_png(12000, 12000)  # 144 megapixels: over Pillow's 89M, so its warning fires first
    assert len(bomb) < 40_000
    with pytest.raises(
        ImageTooLargeError,
        match=r"^bomb\.png is 12000x12000 = 144000000 pixels; the limit is 50000000 pixels per input "
        r"image \(max_input_pixels\)$",
    ):
        decode_image(InputImage(data=bomb, label="bomb.png"))


def test_a_max_input_pixels_above_pillows_limit_is_named_as_capped() -> None:
    bomb = claimed_png(12000, 12000)  # under the setting, over Pillow's 89,478,485
    with pytest.raises(
        ImageTooLargeError,
        match=r"^bomb\.png is 12000x12000 = 144000000 pixels; the limit is 89478485 pixels per input "
        r"image \(max_input_pixels, capped at Pillow's decompression-bomb limit\)$",
    ):
        decode_image(InputImage(data=bomb, label="bomb.png"), Limits(max_input_pixels=200_000_000))


def test_the_limit_defaults_are_the_settings_defaults() -> None:
    assert Limits.from_settings(Settings()) == DEFAULT_LIMITS


def test_an_image_file_over_max_image_bytes_is_refused_by_the_decoder() -> None:
    data = noise_png(32)
    with pytest.raises(
        ImageTooLargeError, match=rf"^a\.png is {len(data)} bytes, over the limit of 1024 bytes"
    ):
        decode_image(InputImage(data=data, label="a.png"), Limits(max_image_bytes=1024))


def test_a_malformed_data_uri_is_named() -> None:
    with pytest.raises(InvalidImageError, match=r"^input\.images\[0\]: a data URI must hold base64"):
        decode_base64("data:image/png,%89PNG", "input.images[0]")


def test_a_json_body_under_the_limit_is_not_refused(url: str) -> None:
    body = json.dumps(
        {"input": {"prompt": "a" * 150_000}}
    ).encode()  # under 256 KiB: the prompt limit answers
    response = httpx.post(f"{url}/v1/tasks", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "max_prompt_chars" in response.json()["error"]["message"]
