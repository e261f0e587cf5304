"""Encode time and size of one 1K image per output format and setting (how ENCODE_OPTIONS and
plantain.imaging.png's settings were chosen; bench/postprocess.py times every other stage around them).

    python bench/encode_formats.py --repeats 7
    python bench/encode_formats.py --image noise --only avif

The default image is a synthetic picture (smooth gradients, shapes, a little grain: roughly how a
photo compresses); ``--image noise`` is the tiny engine's kind of output, the worst case for every
codec. ``--alpha`` adds a transparent border, as a transparent-background request gives. Prints
min/median/max milliseconds over the repeats (after one warm-up) and the encoded size. Timings on
shared machines are noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from plantain.imaging.codecs import ENCODE_OPTIONS
from plantain.imaging.png import encode_png

PLANTAIN_PNG: dict[str, object] = {"format": "PNG", "writer": "plantain.imaging.png"}

# (label, Pillow save options): the defaults in use, and the neighbours they were picked from.
CANDIDATES: list[tuple[str, dict[str, object]]] = [
    ("png plantain.imaging.png", PLANTAIN_PNG),  # what RGB/RGBA outputs use; Pillow's levels for comparison
    ("png level 1", {"format": "PNG", "compress_level": 1}),
    ("png level 4", {"format": "PNG", "compress_level": 4}),
    ("png level 6", {"format": "PNG", "compress_level": 6}),
    ("png level 9", {"format": "PNG", "compress_level": 9}),
    ("jpeg q75", {"format": "JPEG", "quality": 75}),
    ("jpeg q90", {"format": "JPEG", "quality": 90}),
    ("webp q90 method 0", {"format": "WEBP", "quality": 90, "method": 0}),
    ("webp q90 method 1", {"format": "WEBP", "quality": 90, "method": 1}),
    ("webp q90 method 2", {"format": "WEBP", "quality": 90, "method": 2}),
    ("webp q90 method 4", {"format": "WEBP", "quality": 90, "method": 4}),
    ("webp q90 method 6", {"format": "WEBP", "quality": 90, "method": 6}),
    ("avif q75 speed 4", {"format": "AVIF", "quality": 75, "speed": 4}),
    ("avif q75 speed 6", {"format": "AVIF", "quality": 75, "speed": 6}),
    ("avif q75 speed 8", {"format": "AVIF", "quality": 75, "speed": 8}),
    ("avif q75 speed 9", {"format": "AVIF", "quality": 75, "speed": 9}),
    ("avif q75 speed 10", {"format": "AVIF", "quality": 75, "speed": 10}),
    ("avif q90 speed 9", {"format": "AVIF", "quality": 90, "speed": 9}),
]


def picture(size: int = 1024) -> Image.Image:
    """Gradients, a few soft shapes and grain: compresses roughly like a photograph."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rgb = np.stack([x * 200 + 30, y * 160 + 60, (1 - x) * 120 + y * 80], axis=-1)
    image = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for index in range(12):
        left, top = (index * 83) % (size - 200), (index * 157) % (size - 200)
        draw.ellipse((left, top, left + 180, top + 140), fill=(40 + index * 17, 200 - index * 11, 90))
    image = image.filter(ImageFilter.GaussianBlur(3))
    grain = np.random.default_rng(0).normal(0, 4, (size, size, 3))
    return Image.fromarray((np.asarray(image) + grain).clip(0, 255).astype(np.uint8))


def noise(size: int = 1024) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def with_alpha(image: Image.Image) -> Image.Image:
    """A transparent border a quarter of the side deep, as a keyed-out background leaves."""
    alpha = Image.new("L", image.size, 0)
    quarter = image.width // 4
    ImageDraw.Draw(alpha).ellipse((quarter, quarter, image.width - quarter, image.height - quarter), 255)
    rgba = image.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def measure(image: Image.Image, options: dict[str, object], repeats: int) -> tuple[list[float], int]:
    times, size = [], 0
    for attempt in range(repeats + 1):
        buffer = io.BytesIO()
        started = time.perf_counter()
        if options is PLANTAIN_PNG:
            buffer.write(encode_png(image))
        else:
            image.save(buffer, **options)  # type: ignore[arg-type]
        if attempt:  # the first is a warm-up
            times.append((time.perf_counter() - started) * 1000)
        size = buffer.tell()
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", choices=["picture", "noise"], default="picture")
    parser.add_argument("--alpha", action="store_true", help="RGBA with a transparent border")
    parser.add_argument("--only", help="formats to run, comma-separated (png,jpeg,webp,avif)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    image = picture() if args.image == "picture" else noise()
    if args.alpha:
        image = with_alpha(image)
    only = set(args.only.split(",")) if args.only else None
    in_use = {str(options["format"]): options for options in ENCODE_OPTIONS.values()}
    in_use["PNG"] = PLANTAIN_PNG
    print(f"{args.image} {image.width}x{image.height} {image.mode}, {args.repeats} repeats")
    print(f"{'setting':<22}{'min ms':>9}{'median':>9}{'max':>9}{'KiB':>9}")
    for label, options in CANDIDATES:
        if (only and label.split()[0] not in only) or (args.alpha and options["format"] == "JPEG"):
            continue
        times, size = measure(image, options, args.repeats)
        marker = "  <- default" if in_use.get(str(options["format"])) == options else ""
        print(
            f"{label:<22}{min(times):>9.1f}{statistics.median(times):>9.1f}{max(times):>9.1f}"
            f"{size / 1024:>9.0f}{marker}"
        )


if __name__ == "__main__":
    main()
