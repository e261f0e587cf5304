"""How well the invisible watermark survives re-saving, resizing and cropping, how often unmarked
images are reported marked, and what embedding and detection cost (docs/watermark.md).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/watermark_robustness.py
    python bench/watermark_robustness.py --images 8 --negatives 100   # a quick look
    python bench/watermark_robustness.py --source tiny --negatives 100   # the tiny engine's noise

Marked images are the photographs that ship inside scikit-image (read from the installed
package, no download), cropped at random and scaled to generation sizes, each with a random
payload. Unmarked images are the same photographs and greyscale ones, fitted the same way, as they
are, mirrored, or rescaled and JPEG-compressed, plus synthetic noise, flat colours, gradients,
stripes and checkerboards. ``--source tiny`` takes the tiny engine's images instead (random
weights: noise, what the demo and the tests make), generated at the same sizes, a seed each, for
the marked and the unmarked images (no synthetic ones then), and skips the timings.

Prints markdown tables: per attack the bit accuracy (mean, min), the fraction whose payload was
recovered exactly and the fraction reported present; false positives; PSNR; timings on one thread
(process CPU time beside wall time). Images are spread over ``--jobs`` processes; timings are
taken afterwards, in this process alone.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from plantain.engines import tiny
from plantain.engines.base import Engine
from plantain.engines.registry import EngineRegistry
from plantain.generation import prepare
from plantain.provenance import watermark
from plantain.settings import Settings
from plantain.testing import build_once
from plantain.types import ImageRequest

Attack = Callable[[Image.Image, np.random.Generator], Image.Image]
Tally = dict[str, tuple[int, int, int, float]]
SIZES = [(1024, 1024), (1344, 768), (832, 1248), (512, 512)]
# The tiny engine's (aspect ratio, tier) for each of SIZES.
TINY_REQUESTS = {
    (1024, 1024): ("1:1", "1K"),
    (1344, 768): ("16:9", "1K"),
    (832, 1248): ("2:3", "1K"),
    (512, 512): ("1:1", "512"),
}
COLOUR = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
]
GREY = ["camera.png", "moon.png", "coins.png", "brick.png", "grass.png", "gravel.png", "cell.png", "page.png"]


def photo(name: str) -> Image.Image:
    path = resources.files("skimage") / "data" / name
    with path.open("rb") as handle, Image.open(handle) as image:
        return image.convert("RGB")


@functools.cache
def tiny_engine(checkpoint: str) -> Engine:
    """The tiny engine, loaded once per process from the checkpoint ``main`` built (so that the
    worker processes do not race to build it)."""
    settings = Settings(data_dir=Path(checkpoint).parent, weights={"tiny": Path(checkpoint)})
    engine = EngineRegistry(settings).get("tiny")
    engine.load()
    return engine


def tiny_image(checkpoint: str, seed: int, index: int) -> Image.Image:
    """What the tiny engine makes for image ``index`` (its own seed) at size ``SIZES[index]``."""
    size = SIZES[index % len(SIZES)]
    aspect_ratio, tier = TINY_REQUESTS[size]
    request = ImageRequest.create(
        prompt=f"image {index}", aspect_ratio=aspect_ratio, size=tier, seed=seed * 100_000 + index
    )
    engine = tiny_engine(checkpoint)
    image = engine.run([prepare(request, engine)])[0][0]
    assert image.size == size, (image.size, size)
    return image


def fitted(image: Image.Image, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A random crop of ``image`` with ``size``'s aspect ratio (at least 70 % of the largest),
    scaled to ``size``."""
    width, height = size
    scale = min(image.width / width, image.height / height) * rng.uniform(0.7, 1.0)
    crop_w, crop_h = width * scale, height * scale
    left = rng.uniform(0, image.width - crop_w)
    top = rng.uniform(0, image.height - crop_h)
    return image.resize(size, Image.Resampling.LANCZOS, box=(left, top, left + crop_w, top + crop_h))


def encoded(image: Image.Image, fmt: str, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return decoded.convert("RGB")


def resized(image: Image.Image, factor: float) -> Image.Image:
    size = (round(image.width * factor), round(image.height * factor))
    method = Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC
    return image.resize(size, method)


def cropped(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """10 % of each side's length cut away, split at random between the two ends."""
    cut_w, cut_h = image.width // 10, image.height // 10
    left, top = int(rng.integers(0, cut_w + 1)), int(rng.integers(0, cut_h + 1))
    return image.crop((left, top, left + image.width - cut_w, top + image.height - cut_h))


ATTACKS: dict[str, Attack] = {
    "none": lambda image, rng: image,
    "JPEG q95": lambda image, rng: encoded(image, "JPEG", 95),
    "JPEG q85": lambda image, rng: encoded(image, "JPEG", 85),
    "JPEG q70": lambda image, rng: encoded(image, "JPEG", 70),
    "JPEG q50": lambda image, rng: encoded(image, "JPEG", 50),
    "WebP q80": lambda image, rng: encoded(image, "WEBP", 80),
    "resize 50 %": lambda image, rng: resized(image, 0.5),
    "resize 25 %": lambda image, rng: resized(image, 0.25),
    "resize 200 %": lambda image, rng: resized(image, 2.0),
    "crop 10 %": cropped,
    "JPEG q70, then resize 50 %": lambda image, rng: resized(encoded(image, "JPEG", 70), 0.5),
    "resize 50 %, then JPEG q70": lambda image, rng: encoded(resized(image, 0.5), "JPEG", 70),
    "resize 50 %, then JPEG q50": lambda image, rng: encoded(resized(image, 0.5), "JPEG", 50),
    "crop 10 %, then JPEG q85": lambda image, rng: encoded(cropped(image, rng), "JPEG", 85),
    "crop 10 %, then resize 50 % (not handled)": lambda image, rng: resized(cropped(image, rng), 0.5),
    "rotate 1°": lambda image, rng: image.rotate(1.0, Image.Resampling.BICUBIC),
    "rotate 3° (not handled)": lambda image, rng: image.rotate(3.0, Image.Resampling.BICUBIC),
}


@dataclass
class Marked:
    """What detect made of one marked image after each attack."""

    accuracy: dict[str, float]
    exact: dict[str, bool]
    present: dict[str, bool]
    psnr: float
    largest_change: int


def marked_case(seed: int, index: int, checkpoint: str | None = None) -> Marked:
    """Image ``index``: a photo fitted to a generation size (with a tiny ``checkpoint``: the tiny
    engine's image), marked with a random payload and attacked every way."""
    rng = np.random.default_rng([seed, index])
    if checkpoint is None:
        original = fitted(photo(COLOUR[index % len(COLOUR)]), SIZES[index % len(SIZES)], rng)
    else:
        original = tiny_image(checkpoint, seed, index)
    mark = watermark.Mark(int(rng.integers(0, 1 << 16)), int(rng.integers(0, 1 << 32)))
    marked = watermark.embed(original, mark)
    change = np.asarray(marked, dtype=np.float64) - np.asarray(original, dtype=np.float64)
    psnr = float(10 * np.log10(255**2 / max(float(np.mean(change**2)), 1e-12)))
    result = Marked({}, {}, {}, psnr, int(np.abs(change).max()))
    expected = watermark.codeword(mark)
    for name, attack in ATTACKS.items():
        found = watermark.detect(attack(marked, rng))
        result.accuracy[name] = float(np.mean(np.array(found.bits, dtype=bool) == expected))
        result.exact[name] = found.mark == mark
        result.present[name] = found.present
    return result


def synthetic(index: int, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Noise, a flat colour, a gradient, stripes or a checkerboard (periods 2 to 512 px)."""
    width, height = size
    kind = index % 5
    y, x = np.mgrid[0:height, 0:width]
    if kind == 0:
        pixels = rng.integers(0, 256, (height, width, 3))
    elif kind == 1:
        pixels = np.broadcast_to(rng.integers(0, 256, 3), (height, width, 3))
    elif kind == 2:
        start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = (x * rng.uniform(0, 1) + y * rng.uniform(0, 1)) / (width + height)
        pixels = start + ramp[..., None] * (end - start)
    else:
        period = int(2 ** rng.integers(1, 10))
        colours = rng.integers(0, 256, (2, 3))
        on = (x // period) % 2 if kind == 3 else ((x // period) + (y // period)) % 2
        pixels = colours[on]
    return Image.fromarray(np.asarray(pixels).clip(0, 255).astype(np.uint8), "RGB")


def unmarked(seed: int, index: int, checkpoint: str | None = None) -> tuple[str, Image.Image]:
    """Unmarked image ``index``: every 4th synthetic, the others photos (colour and grey)
    fitted to a generation size; with a tiny ``checkpoint``, the tiny engine's images (seeds the
    marked ones do not use); as they are, mirrored, or rescaled and JPEG-compressed."""
    rng = np.random.default_rng([seed, index, 1])
    size = SIZES[index % len(SIZES)]
    if checkpoint is not None:
        kind, image = "tiny engine", tiny_image(checkpoint, seed, 50_000 + index)
    elif index % 4 == 3:
        return "synthetic", synthetic(index // 4, size, rng)
    else:
        sources = COLOUR + GREY
        kind, image = "photo", fitted(photo(sources[index % len(sources)]), size, rng)
    if index % 3 == 1:
        image = ImageOps.mirror(image)
    elif index % 3 == 2:
        image = encoded(resized(image, float(rng.uniform(0.4, 1.6))), "JPEG", int(rng.integers(60, 96)))
    return kind, image


def unmarked_case(seed: int, index: int, checkpoint: str | None = None) -> tuple[str, bool, bool, float]:
    """(kind, reported present, reported with a payload, confidence) of unmarked image ``index``."""
    kind, image = unmarked(seed, index, checkpoint)
    found = watermark.detect(image)
    return kind, found.present, found.mark is not None, found.confidence


def false_positives(cases: list[tuple[str, bool, bool, float]]) -> Tally:
    """Per kind of unmarked image: (reported present, reported with a payload, total, highest
    confidence)."""
    tally: Tally = {}
    for kind, present, with_mark, confidence in cases:
        old = tally.get(kind, (0, 0, 0, 0.0))
        tally[kind] = (old[0] + present, old[1] + with_mark, old[2] + 1, max(old[3], confidence))
    return tally


def timed(action: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU milliseconds of ``repeats`` runs, after one warm-up."""
    action()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return walls, cpus


def spread(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def print_robustness(cases: list[Marked]) -> None:
    print("| attack | bit accuracy, mean | bit accuracy, min | payload exact | present |")
    print("|---|---|---|---|---|")
    for name in ATTACKS:
        accuracy = [case.accuracy[name] for case in cases]
        exact = np.mean([case.exact[name] for case in cases])
        present = np.mean([case.present[name] for case in cases])
        print(f"| {name} | {np.mean(accuracy):.3f} | {min(accuracy):.3f} | {exact:.2f} | {present:.2f} |")


def print_by_size(cases: list[Marked]) -> None:
    sizes = [SIZES[index % len(SIZES)] for index in range(len(cases))]
    labels = sorted(set(sizes), key=SIZES.index)
    print("| payload exact, by size | " + " | ".join(f"{w}x{h}" for w, h in labels) + " |")
    print("|---" * (len(labels) + 1) + "|")
    for name in ATTACKS:
        cells = [
            np.mean([case.exact[name] for case, s in zip(cases, sizes, strict=True) if s == size])
            for size in labels
        ]
        print(f"| {name} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")


def print_false_positives(tally: Tally) -> None:
    print("| unmarked images | false positives (present) | false positives (payload) | highest confidence |")
    print("|---|---|---|---|")
    values = list(tally.values())
    total = (
        sum(v[0] for v in values),
        sum(v[1] for v in values),
        sum(v[2] for v in values),
        max(v[3] for v in values),
    )
    for kind, (present, with_mark, count, highest) in [*tally.items(), ("all", total)]:
        print(f"| {kind} | {present} / {count} | {with_mark} / {count} | {highest:.3f} |")


def print_timings(repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = fitted(photo("astronaut.png"), (1024, 1024), rng)
    mark = watermark.Mark(1, 2)
    marked = watermark.embed(image, mark)
    half, crop = resized(marked, 0.5), encoded(cropped(marked, rng), "JPEG", 85)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("embed", lambda: watermark.embed(image, mark)),
        ("detect, marked, as given", lambda: watermark.detect(marked)),
        ("detect, marked, resized 50 %", lambda: watermark.detect(half)),
        ("detect, marked, cropped 10 % (crop search)", lambda: watermark.detect(crop)),
        ("detect, unmarked (every hypothesis)", lambda: watermark.detect(image)),
    ]
    print("| 1024x1024, one thread | wall ms min / median / max | CPU ms min / median / max |")
    print("|---|---|---|")
    for name, action in cases:
        walls, cpus = timed(action, repeats)
        print(f"| {name} | {spread(walls)} | {spread(cpus)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source",
        choices=["photos", "tiny"],
        default="photos",
        help="photos (default), or the tiny engine's noise images",
    )
    parser.add_argument("--images", type=int, default=36, help="marked images (default 36)")
    parser.add_argument("--negatives", type=int, default=600, help="unmarked images (default 600)")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats (default 7)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes (default: CPUs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plantain-bench-") as scratch:
        checkpoint = None
        if args.source == "tiny":
            checkpoint = str(build_once(tiny.build_checkpoint, Path(scratch) / tiny.CHECKPOINT_DIR_NAME))
        marked, negatives = run_cases(args, checkpoint)
    sizes = ", ".join(f"{w}x{h}" for w, h in SIZES)
    what = "photos" if checkpoint is None else "tiny-engine images"
    print(f"scale {watermark.SCALE:g}, {watermark.PAYLOAD_BITS} payload bits, seed {args.seed}; ", end="")
    print(f"{args.images} marked {what} at {sizes}\n")
    print_robustness(marked)
    print()
    print_by_size(marked)
    psnrs = [case.psnr for case in marked]
    print(f"\nPSNR of marked images: min {min(psnrs):.1f} dB, mean {np.mean(psnrs):.1f} dB; ", end="")
    print(f"largest change of a pixel value: {max(case.largest_change for case in marked)}\n")
    print_false_positives(false_positives(negatives))
    if checkpoint is None:  # the cost does not depend on the picture: measured on a photo only
        print()
        print_timings(args.repeats, args.seed)


def run_cases(
    args: argparse.Namespace, checkpoint: str | None
) -> tuple[list[Marked], list[tuple[str, bool, bool, float]]]:
    """The marked and the unmarked cases, spread over ``args.jobs`` processes."""
    count = max(args.images, args.negatives)
    seeds, checkpoints = [args.seed] * count, [checkpoint] * count
    with ProcessPoolExecutor(args.jobs) as pool:
        marked = list(pool.map(marked_case, seeds[: args.images], range(args.images), checkpoints))
        negatives = list(pool.map(unmarked_case, seeds[: args.negatives], range(args.negatives), checkpoints))
    return marked, negatives


if __name__ == "__main__":
    main()
