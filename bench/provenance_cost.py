"""Cost of provenance per 1K output image: the watermark and the content credentials together,
through the code the server's worker runs (``Stamper.finish``: mark, encode, sign).

    python bench/provenance_cost.py --repeats 20

A real photograph (scikit-image's astronaut, a dev dependency) scaled to 1024x1024 is marked,
encoded and signed in each output format, as a text-to-image result and as an edit of one input.
Pinned to one CPU core where the system allows it. Prints min/median/max milliseconds over the
repeats (after one warm-up) of the provenance time alone (what a task reports as
``usage.provenance_seconds``: marking plus signing, not encoding) and of the encode it wraps, with
the issue's target of 150 ms per 1K image on one core. Timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from PIL import Image

from plantain.generation import output_title
from plantain.imaging.codecs import encode_image, media_type
from plantain.provenance.policy import ProvenancePolicy
from plantain.settings import Settings
from plantain.types import ImageRequest, InputImage, OutputFormat

TARGET_MS = 150.0
FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp", "avif")


def photo(size: int = 1024) -> Image.Image:
    path = files("skimage") / "data" / "astronaut.png"
    return (
        Image.open(io.BytesIO(path.read_bytes()))
        .convert("RGB")
        .resize((size, size), Image.Resampling.LANCZOS)
    )


def provenance_ms(
    policy: ProvenancePolicy, request: ImageRequest, image: Image.Image, fmt: OutputFormat
) -> tuple[float, float]:
    """One image through ``Stamper.finish``: (provenance ms, encode ms)."""
    stamper = policy.stamper(request, model="gemini-2.5-flash-image", engine="flux2-klein-4b", serials=[7])
    encode_seconds = 0.0

    def encode(pixels: Image.Image) -> tuple[bytes, str]:
        nonlocal encode_seconds
        started = time.perf_counter()
        data = encode_image(pixels, fmt)
        encode_seconds += time.perf_counter() - started
        return data, media_type(fmt)

    stamper.finish(image, 0, encode, output_title(7, fmt))
    return stamper.seconds * 1000, encode_seconds * 1000


def spread(values: list[float]) -> str:
    return f"{min(values):7.1f} {statistics.median(values):7.1f} {max(values):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    image = photo()
    with tempfile.TemporaryDirectory() as data_dir:
        policy = ProvenancePolicy(Settings(data_dir=Path(data_dir)))
        edit_input = encode_image(photo(512), "jpeg")
        requests = {
            "created": ImageRequest.create(prompt="p"),
            "edited": ImageRequest.create(prompt="p", images=[InputImage(data=edit_input, label="x.jpg")]),
        }
        print(f"per 1024x1024 image, one core, {args.repeats} repeats; target {TARGET_MS:.0f} ms")
        heading = f"{'provenance ms (min med max)':>29}   {'encode ms (min med max)':>25}"
        print(f"{'format':6} {'request':8} {heading}")
        for fmt in args.formats:
            for name, request in requests.items():
                provenance_ms(policy, request, image, fmt)  # warm-up
                runs = [provenance_ms(policy, request, image, fmt) for _ in range(args.repeats)]
                marks, encodes = [run[0] for run in runs], [run[1] for run in runs]
                print(f"{fmt:6} {name:8} {spread(marks):>29}   {spread(encodes):>25}")


if __name__ == "__main__":
    main()
