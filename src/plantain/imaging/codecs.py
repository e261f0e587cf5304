"""Decoding input images and encoding outputs.

Inputs are recognised from their bytes (never a file name or a declared type) and opened only by
the decoders of the accepted formats (setting ``input_formats``). Their size in bytes and pixels
is checked before any pixel is decoded, so a decompression bomb costs no memory; only the first
frame of an animation is decoded. Then they are turned upright (EXIF orientation) and reduced to
plain RGB pixels, which drops every piece of metadata, GPS included, before an engine sees them.
"""

from __future__ import annotations

import io
import warnings

import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from plantain.errors import ImageTooLargeError, InvalidImageError
from plantain.imaging import png
from plantain.limits import DEFAULT_LIMITS, INPUT_FORMATS, InputFormat, Limits
from plantain.types import MEDIA_TYPES, InputImage, OutputFormat

# HEIC/HEIF through libheif, primary image only: thumbnails, depth and auxiliary images unread.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Pillow's name for each accepted format (its JPEG opener also reads MPO, a JPEG from a camera
# carrying a second picture).
PILLOW_FORMATS: dict[InputFormat, str] = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "gif": "GIF",
    "avif": "AVIF",
    "heic": "HEIF",
}
FORMAT_NAMES: dict[InputFormat, str] = {
    "png": "PNG",
    "jpeg": "JPEG",
    "webp": "WebP",
    "gif": "GIF",
    "avif": "AVIF",
    "heic": "HEIC/HEIF",
}
# Magic bytes of formats met in the wild, to name what was sent when it is not accepted.
_MAGIC: dict[bytes, str] = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"8BPS": "PSD",
    b"%PDF": "PDF",
    b"\x00\x00\x01\x00": "ICO",
    b"\xff\x0a": "JPEG XL",
    b"\x00\x00\x00\x0cJXL ": "JPEG XL",
    b"qoif": "QOI",
    b"<svg": "SVG",
    b"<?xml": "SVG/XML",
}
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

MAX_INPUT_PIXELS = DEFAULT_LIMITS.max_input_pixels

ENCODE_OPTIONS: dict[str, dict[str, object]] = {
    # Pillow's PNG writes only the modes plantain.imaging.png does not (palette, 1-bit, 16-bit)
    "png": {"format": "PNG", "compress_level": 4},  # level 4: near level 6's size, much faster
    "jpeg": {"format": "JPEG", "quality": 90},
    # method 0: a third of method 4's time for a 1K photo (~30 ms on one core), 12 % more bytes at
    # a PSNR as high (bench/postprocess.py --baseline).
    "webp": {"format": "WEBP", "quality": 90, "method": 0},
    # speed 9: a third of speed 8's time on one core (~80 ms for a 1K photo, ~280 ms at speed 8),
    # 8 % more bytes at the same PSNR; quality 75 is within 0.2 dB PSNR of JPEG 90 at about half
    # its bytes (bench/encode_formats.py).
    "avif": {"format": "AVIF", "quality": 75, "speed": 9},
}


def decode_image(image: InputImage, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """Bytes -> upright RGB image (the first frame), or InvalidImageError naming the input."""
    limits.check_image_bytes(len(image.data), image.label, field="images")
    try:
        with warnings.catch_warnings():
            # Pillow warns about corrupt EXIF/TIFF tags: metadata that is dropped below anyway.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = _open(image, limits)
            _check_pixels(opened, image.label, limits)
            opened.load()  # the first frame only: later frames are never read
            upright = ImageOps.exif_transpose(opened)
            return _without_metadata(_to_rgb(upright))
    except (InvalidImageError, MemoryError):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        # Pillow's own check fires inside Image.open, before _check_pixels sees the size, for
        # images past its fixed limit (89 Mpx warns, made an error above; 179 Mpx raises)
        raise _too_many_pixels(image.label, _header_size(image, limits), limits) from None
    except Exception as exc:  # decoders raise more than their documented errors (Pillow #9814)
        raise InvalidImageError(
            f"{image.label} is not a readable image (corrupt or truncated: {_reason(exc)}); "
            f"send {accepted_formats(limits)} bytes",
            field="images",
        ) from None


def accepted_formats(limits: Limits = DEFAULT_LIMITS) -> str:
    """``"PNG, JPEG, WebP, GIF, AVIF or HEIC/HEIF"`` for the formats ``limits`` accepts."""
    names = [FORMAT_NAMES[fmt] for fmt in INPUT_FORMATS if fmt in limits.input_formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _open(image: InputImage, limits: Limits) -> Image.Image:
    """The image opened (its header read) by an accepted format's decoder only."""
    allowed = [PILLOW_FORMATS[fmt] for fmt in INPUT_FORMATS if fmt in limits.input_formats]
    try:
        return Image.open(io.BytesIO(image.data), formats=allowed)
    except UnidentifiedImageError:
        pass
    sniffed = sniff_format(image.data)
    if sniffed is None or sniffed in {FORMAT_NAMES[fmt] for fmt in limits.input_formats}:
        why = "unrecognised or unsupported format" if sniffed is None else f"a corrupt {sniffed} header"
        raise InvalidImageError(
            f"{image.label} is not a readable image ({why}); send {accepted_formats(limits)} bytes",
            field="images",
        )
    raise InvalidImageError(
        f"{image.label} is a {sniffed} image; supported inputs are {accepted_formats(limits)} "
        "(input_formats)",
        field="images",
    )


def sniff_format(data: bytes) -> str | None:
    """The format ``data`` starts like (magic bytes), for errors; None when not recognised."""
    if data[4:8] == b"ftyp":  # ISO-BMFF: the brand tells AVIF from HEIC
        return "AVIF" if data[8:12] in _AVIF_BRANDS else "HEIC/HEIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)


SNIFFED_MEDIA_TYPES = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WebP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
    "HEIC/HEIF": "image/heic",
}


def sniff_media_type(data: bytes) -> str | None:
    """The media type of an image format Plantain reads, from ``data``'s magic bytes."""
    sniffed = sniff_format(data)
    return SNIFFED_MEDIA_TYPES.get(sniffed) if sniffed else None


def _check_pixels(opened: Image.Image, label: str, limits: Limits) -> None:
    width, height = opened.size
    if width * height > limits.max_input_pixels:
        raise _too_many_pixels(label, opened.size, limits)


def _too_many_pixels(label: str, size: tuple[int, int] | None, limits: Limits) -> ImageTooLargeError:
    """The refusal of an image over the pixel limit, naming its size when its header gave one."""
    limit, setting = limits.max_input_pixels, "max_input_pixels"
    cap = Image.MAX_IMAGE_PIXELS  # Pillow's decompression-bomb check: its warning is an error here
    if cap is not None and cap < limit:
        limit, setting = cap, "max_input_pixels, capped at Pillow's decompression-bomb limit"
    what = "too large to decode" if size is None else f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels"
    return ImageTooLargeError(
        f"{label} is {what}; the limit is {limit} pixels per input image ({setting})", field="images"
    )


def _header_size(image: InputImage, limits: Limits) -> tuple[int, int] | None:
    """The size in ``image``'s header, read by an accepted format's opener without Pillow's
    decompression-bomb check (which Image.open runs right after it); None if none reads it."""
    Image.init()  # every opener registered (cheap: the Image.open that refused it did this)
    prefix = image.data[:16]
    for fmt in INPUT_FORMATS:
        if fmt not in limits.input_formats or PILLOW_FORMATS[fmt] not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[PILLOW_FORMATS[fmt]]
        try:
            if accept is None or accept(prefix) is True:  # a str is Pillow's "almost" (a warning)
                with factory(io.BytesIO(image.data), "") as header:
                    return header.size
        except Exception:  # a header its opener cannot read: the next format may
            continue
    return None


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
    return str(exc) or type(exc).__name__


def encode_image(image: Image.Image, output_format: OutputFormat, quality: int | None = None) -> bytes:
    """Encode without metadata, so the same pixels always give the same bytes.

    ``quality`` (0-100) overrides the JPEG/WebP/AVIF default; PNG is lossless and ignores it.
    An RGBA image keeps its alpha channel (PNG, WebP, AVIF; JPEG has none: requests that want
    transparency in JPEG are refused before they run; ``generation.encode_output`` flattens one
    an engine made transparent on its own).
    """
    if output_format == "png" and png.can_encode(image):
        return png.encode_png(image)  # ~6x faster than Pillow's PNG encoder (plantain.imaging.png)
    options = dict(ENCODE_OPTIONS[output_format], icc_profile=None)  # PNG would copy info's ICC
    if quality is not None and output_format != "png":
        options["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def media_type(output_format: OutputFormat) -> str:
    return MEDIA_TYPES[output_format]


def has_alpha(data: bytes) -> bool:
    """Whether encoded output ``data`` has an alpha channel (read from its header, not decoded)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.mode in {"RGBA", "LA", "PA"} or "transparency" in image.info
