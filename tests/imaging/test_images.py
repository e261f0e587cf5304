"""Input decoding and output encoding."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from plantain.errors import InvalidImageError
from plantain.imaging.codecs import MAX_INPUT_PIXELS, decode_image, encode_image
from plantain.testing import make_input
from plantain.types import InputImage

SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def encoded(image: Image.Image, fmt: str, **options: object) -> InputImage:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return InputImage(data=buffer.getvalue(), label="input image 1")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_formats_are_recognised_from_the_bytes(fmt: str) -> None:
    image = decode_image(make_input(40, 30, fmt=fmt, label="misleading-name.txt"))
    assert (image.mode, image.size) == ("RGB", (40, 30))


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise for display
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS latitude
    source = encoded(Image.new("RGB", (40, 30), (10, 20, 30)), "JPEG", exif=exif, icc_profile=SRGB_PROFILE)
    decoded = decode_image(source)
    assert decoded.size == (30, 40)
    assert not decoded.getexif() and "exif" not in decoded.info
    assert decoded.info == {}  # the ICC profile too


def test_transparent_areas_become_white() -> None:
    decoded = decode_image(encoded(Image.new("RGBA", (8, 8), (255, 0, 0, 0)), "PNG"))
    assert decoded.getpixel((0, 0)) == (255, 255, 255)


def test_truncated_image_names_the_input() -> None:
    data = make_input(64, 64, fmt="JPEG").data[:150]
    with pytest.raises(InvalidImageError, match=r"b\.jpg is not a readable image \(corrupt or truncated"):
        decode_image(InputImage(data=data, label="b.jpg"))


def test_unsupported_format_is_named() -> None:
    with pytest.raises(InvalidImageError, match="input image 1 is a BMP image; supported inputs are PNG"):
        decode_image(encoded(Image.new("RGB", (4, 4)), "BMP"))


def test_not_an_image() -> None:
    with pytest.raises(InvalidImageError, match="unrecognised or unsupported format"):
        decode_image(InputImage(data=b"hello", label="input image 1"))


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = encoded(Image.new("1", (9000, 9000)), "PNG")  # 81 megapixels in a few kilobytes
    assert len(bomb.data) < 100_000
    expected = f"9000x9000 = 81000000 pixels; the limit is {MAX_INPUT_PIXELS}"
    with pytest.raises(InvalidImageError, match=expected):
        decode_image(bomb)


@pytest.mark.parametrize(("fmt", "name"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_encoding_is_deterministic_and_carries_no_metadata(fmt: str, name: str) -> None:
    image = Image.effect_noise((64, 48), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS latitude
    image.info.update(exif=exif.tobytes(), icc_profile=SRGB_PROFILE)  # what an opened file carries
    first = encode_image(image, fmt)  # type: ignore[arg-type]
    assert first == encode_image(image, fmt)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(first)) as reopened:
        assert reopened.format == name and reopened.size == (64, 48)
        assert not reopened.getexif()
        assert "icc_profile" not in reopened.info and "exif" not in reopened.info
