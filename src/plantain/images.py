"""Decoding input images and encoding outputs.

Inputs are recognised from their bytes (never a file name or a declared type), checked for size
before their pixels are decoded, turned upright (EXIF orientation) and reduced to plain RGB pixels
— which drops every piece of metadata, GPS included, before an engine sees them.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from plantain.errors import InvalidImageError
from plantain.types import MEDIA_TYPES, InputImage, OutputFormat

# Formats accepted as input, by Pillow's name for what it sniffed from the bytes.
INPUT_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP", "GIF"})

MAX_INPUT_PIXELS = 64 * 1024 * 1024  # a decompression bomb is refused from its header

ENCODE_OPTIONS: dict[str, dict[str, object]] = {
    "png": {"format": "PNG", "compress_level": 4},  # level 4: near level 6's size, much faster
    "jpeg": {"format": "JPEG", "quality": 90},
    "webp": {"format": "WEBP", "quality": 90, "method": 4},
}


def decode_image(image: InputImage) -> Image.Image:
    """Bytes -> upright RGB image, or InvalidImageError naming the input."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(image.data))
            _check_header(opened, image.label)
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            return _without_metadata(_to_rgb(upright))
    except InvalidImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(
            f"{image.label} is not a readable image ({_reason(exc)}); send PNG, JPEG, WebP or GIF bytes",
            field="images",
        ) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise InvalidImageError(
            f"{image.label} is too large to decode; the limit is {MAX_INPUT_PIXELS} pixels",
            field="images",
        ) from None


def _check_header(opened: Image.Image, label: str) -> None:
    if opened.format not in INPUT_FORMATS:
        raise InvalidImageError(
            f"{label} is a {opened.format} image; supported inputs are PNG, JPEG, WebP and GIF",
            field="images",
        )
    width, height = opened.size
    if width * height > MAX_INPUT_PIXELS:
        raise InvalidImageError(
            f"{label} is {width}x{height} = {width * height} pixels; "
            f"the limit is {MAX_INPUT_PIXELS} pixels per input image",
            field="images",
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Plain RGB pixels; transparent areas become white (what editors show behind them)."""
    if image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _without_metadata(image: Image.Image) -> Image.Image:
    """``image`` with no EXIF, GPS, ICC or text chunks left: a Pillow image keeps them all in
    ``info``, and ``_to_rgb`` always returns a new image, so its ``info`` is ours to empty (no
    second copy of the pixels)."""
    image.info.clear()
    return image


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "unrecognised or unsupported format"
    text = str(exc) or type(exc).__name__
    return f"corrupt or truncated: {text}"


def encode_image(image: Image.Image, output_format: OutputFormat, quality: int | None = None) -> bytes:
    """Encode without metadata, so the same pixels always give the same bytes.

    ``quality`` (0-100) overrides the JPEG/WebP default; PNG is lossless and ignores it.
    """
    options = dict(ENCODE_OPTIONS[output_format], icc_profile=None)  # PNG would copy info's ICC
    if quality is not None and output_format != "png":
        options["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def media_type(output_format: OutputFormat) -> str:
    return MEDIA_TYPES[output_format]
