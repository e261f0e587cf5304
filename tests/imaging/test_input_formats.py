"""Input image formats, recognised from the bytes, and the ways each dialect takes an image:
base64 in both alphabets, data URIs, multipart uploads, and URLs (task API ``images``, Gemini
``fileData``). HEIC and AVIF fixtures are made here (pillow-heif and Pillow save them)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image
from tests.callers import DIALECTS, GEMINI_MODEL, Call, Caller, gemini_refusal, task_outcome

from plantain.errors import InvalidImageError
from plantain.imaging.codecs import decode_image
from plantain.limits import Limits
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import FileHost, LiveServer
from plantain.types import InputImage

# Accepted format -> (Pillow's name to save it, media type).
FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
    "gif": ("GIF", "image/gif"),
    "avif": ("AVIF", "image/avif"),
    "heic": ("HEIF", "image/heic"),
}
RED, BLUE = (220, 20, 20), (20, 20, 220)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=FORMATS[fmt][0], **options)
    return buffer.getvalue()


def solid(fmt: str, size: tuple[int, int] = (48, 32), color: tuple[int, int, int] = RED) -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def close_to(pixel: Any, color: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=True))


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_recognised_from_its_bytes(fmt: str) -> None:
    decoded = decode_image(InputImage(data=solid(fmt), label="photo.txt"))
    assert (decoded.mode, decoded.size, decoded.info) == ("RGB", (48, 32), {})
    assert close_to(decoded.getpixel((10, 10)), RED)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif", "heic"])
def test_exif_orientation_is_applied_and_dropped(fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90° clockwise
    decoded = decode_image(InputImage(data=encode(Image.new("RGB", (48, 32), RED), fmt, exif=exif.tobytes())))
    assert decoded.size == (32, 48)
    assert not decoded.getexif()


@pytest.mark.parametrize("fmt", ["png", "webp", "avif", "heic"])
def test_transparent_pixels_become_white(fmt: str) -> None:
    decoded = decode_image(InputImage(data=encode(Image.new("RGBA", (16, 16), (255, 0, 0, 0)), fmt)))
    assert close_to(decoded.getpixel((8, 8)), (255, 255, 255))


@pytest.mark.parametrize(("fmt", "options"), [("gif", {}), ("png", {}), ("webp", {"lossless": True})])
def test_only_the_first_frame_of_an_animation_is_used(fmt: str, options: dict[str, Any]) -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in (RED, BLUE)]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **options)
    with Image.open(io.BytesIO(data)) as animation:
        assert animation.n_frames == 2  # the fixture is an animation
    assert close_to(decode_image(InputImage(data=data)).getpixel((8, 8)), RED)


def test_a_format_the_operator_dropped_is_refused_naming_the_setting() -> None:
    limits = Limits(input_formats=frozenset({"png", "jpeg", "webp"}))
    message = (
        "^photo is a HEIC/HEIF image; supported inputs are PNG, JPEG or WebP "
        r"\(input_formats\)$"
    )
    with pytest.raises(InvalidImageError, match=message):
        decode_image(InputImage(data=solid("heic"), label="photo"), limits)
    assert decode_image(InputImage(data=solid("webp")), limits).size == (48, 32)


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "BMP"), ("TIFF", "TIFF"), ("ICO", "ICO")])
def test_an_unsupported_format_is_named(fmt: str, name: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format=fmt)
    with pytest.raises(InvalidImageError, match=f"^x is a {name} image; supported inputs are PNG, JPEG"):
        decode_image(InputImage(data=buffer.getvalue(), label="x"))


# --- every format in every dialect ------------------------------------------------------------


@pytest.fixture(scope="module")
def host() -> Iterator[FileHost]:
    with FileHost() as served:
        yield served


@pytest.fixture(scope="module")
def url(server_settings: Callable[..., Settings], host: FileHost) -> Iterator[str]:
    settings = server_settings(allowed_hosts=[host.host_port], max_image_bytes=20_000)
    with LiveServer(create_app(settings)) as live:
        yield live.wait_ready()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_format_is_accepted_in_every_dialect(url: str, dialect: str) -> None:
    images = [(solid(fmt, (64, 48)), media_type) for fmt, (_, media_type) in FORMATS.items()]
    assert Caller(dialect, url).send(Call(images=images)) == 1


def generate(url: str, *parts: types.Part) -> int:
    """Images google-genai got back for ``parts`` and a prompt."""
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
    response = client.models.generate_content(
        model=GEMINI_MODEL,
        contents=[*parts, "make it night"],
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    return len(response.candidates or [])


def test_gemini_file_data_is_fetched_and_sniffed(url: str, host: FileHost) -> None:
    host.files["photo"] = solid("heic", (64, 48))  # no extension, declared as PNG: the bytes decide
    part = types.Part.from_uri(file_uri=f"{host.base}/photo", mime_type="image/png")
    assert generate(url, part) == 1


@pytest.mark.parametrize(
    ("uri", "status", "code", "text"),
    [
        ("gs://bucket/cat.png", 400, "invalid_request", "only http(s) URLs are fetched"),
        # A Files API address is looked up among this server's uploads (docs/gemini.md, "Files API").
        ("https://generativelanguage.googleapis.com/v1beta/files/abc123", 404, "not_found", "files/abc123"),
    ],
)
def test_gemini_file_uris_that_are_not_image_urls_are_refused(
    url: str, uri: str, status: int, code: str, text: str
) -> None:
    with pytest.raises(errors.ClientError) as caught:
        generate(url, types.Part.from_uri(file_uri=uri, mime_type="image/png"))
    refusal = gemini_refusal(caught.value)
    assert (refusal.status, refusal.code) == (status, code)
    assert refusal.field == "contents[0].parts[0].fileData.fileUri"
    assert text in refusal.message


def test_gemini_file_data_over_max_image_bytes_is_refused(url: str, host: FileHost) -> None:
    host.files["big"] = b"\0" * 30_000
    with pytest.raises(errors.ClientError) as caught:
        generate(url, types.Part.from_uri(file_uri=f"{host.base}/big", mime_type="image/png"))
    refusal = gemini_refusal(caught.value)
    assert (refusal.status, refusal.code, refusal.field) == (
        400,
        "image_too_large",
        "contents[0].parts[0].fileData",
    )
    assert refusal.message == (
        f"contents[0].parts[0].fileData: the image at {host.base}/big is 30000 bytes, over the limit of "
        "20000 bytes per input image (max_image_bytes)"
    )


def test_gemini_inline_data_in_every_base64_form(url: str) -> None:
    data = solid("webp", (64, 48))
    forms = [
        base64.b64encode(data).decode(),  # standard, as JavaScript and REST clients send
        base64.urlsafe_b64encode(data).decode().rstrip("="),  # as google-genai sends, unpadded
        "data:image/webp;base64," + base64.b64encode(data).decode(),
    ]
    parts: list[dict[str, Any]] = [{"inlineData": {"mimeType": "image/webp", "data": text}} for text in forms]
    body = {
        "contents": [{"role": "user", "parts": [*parts, {"text": "make it night"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }
    response = httpx.post(f"{url}/v1beta/models/{GEMINI_MODEL}:generateContent", json=body, timeout=180)
    assert response.status_code == 200, response.text
    assert len(response.json()["candidates"]) == 1


def test_task_images_by_data_uri_urlsafe_base64_and_url(url: str, host: FileHost) -> None:
    host.files["a.avif"] = solid("avif", (64, 48))
    gif = solid("gif", (64, 48))
    images = [
        "data:image/gif;base64," + base64.b64encode(gif).decode(),
        base64.urlsafe_b64encode(solid("jpeg", (64, 48))).decode().rstrip("="),
        f"{host.base}/a.avif",
    ]
    body = {"input": {"prompt": "make it night", "images": images, "resolution": "512"}}
    response = httpx.post(f"{url}/v1/tasks", json=body, headers={"Prefer": "wait=120"}, timeout=180)
    assert task_outcome(response) == 1 and response.json()["input"]["images"] == 3


@pytest.mark.parametrize("uri", ["file:///etc/passwd", "gs://bucket/cat.png", "ftp://example.com/cat.png"])
def test_task_image_urls_other_than_http_are_refused_without_reading(url: str, uri: str) -> None:
    body = {"input": {"prompt": "make it night", "images": [uri]}}
    response = httpx.post(f"{url}/v1/tasks", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "input.images[0]")
    assert "only http(s) URLs are fetched" in error["message"] and uri in error["message"]
