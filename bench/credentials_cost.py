"""Cost of C2PA content credentials per 1K output image: signing time, reading time, bytes added.

    python bench/credentials_cost.py --repeats 20

Signs a 1024x1024 picture in each output format (encoded as the server encodes it) with a freshly
generated identity, as a text-to-image result ("created") and as an edit of one signed 1K JPEG
input ("edited": the input and its manifest become an ingredient), then reads it back. Runs pinned
to one CPU core where the system allows it. Prints min/median/max milliseconds over the repeats
(after one warm-up) and the bytes the manifest added. Timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from plantain import __version__
from plantain.imaging.codecs import ENCODE_OPTIONS, MEDIA_TYPES
from plantain.provenance.credentials import Claim, ContentCredentials, Ingredient
from plantain.provenance.identity import load_identity
from plantain.provenance.manifests import read_credentials


def picture(size: int = 1024, seed: int = 0) -> Image.Image:
    """Smooth gradients, a few shapes and a little grain: roughly how a photo compresses."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    base = np.stack(
        [np.add.outer(ramp, ramp) / 2, np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size))], -1
    )
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, size - 200, 2))
        draw.ellipse((x, y, x + 180, y + 180), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def encode(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **ENCODE_OPTIONS[output_format])  # type: ignore[arg-type]
    return buffer.getvalue()


def timed(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def row(label: str, times: list[float], added: int | None = None) -> str:
    spread = f"{min(times):7.2f} {statistics.median(times):7.2f} {max(times):7.2f}"
    return f"{label:22} {spread}" + (f"   +{added:,} B" if added is not None else "")


def measure(
    credentials: ContentCredentials, output_format: str, claims: tuple[tuple[str, Claim], ...], repeats: int
) -> list[str]:
    data, media_type = encode(picture(), output_format), MEDIA_TYPES[output_format]
    lines = []
    for name, claim in claims:
        signed = credentials.sign(data, media_type, claim)
        times = timed(lambda claim=claim: credentials.sign(data, media_type, claim), repeats)
        lines.append(row(f"sign {output_format} {name}", times, len(signed) - len(data)))
    anchors = credentials.identity.trust_anchors_pem
    lines.append(
        row(f"read {output_format}", timed(lambda: read_credentials(signed, media_type, anchors), repeats))
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--formats", nargs="+", default=["png", "jpeg", "webp", "avif"])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory() as data_dir:
        credentials = ContentCredentials(load_identity(Path(data_dir)))
        created = Claim("plantain-1.png", "gemini-2.5-flash-image", "flux2-klein-4b", __version__)
        parent = credentials.sign(encode(picture(seed=1), "jpeg"), "image/jpeg", created)
        edited = Claim(
            "plantain-2.png",
            created.model,
            created.engine,
            __version__,
            (Ingredient(parent, "image/jpeg", "input 1"),),
        )
        print(f"{'ms per 1024x1024 image':22} {'min':>7} {'median':>7} {'max':>7}")
        for output_format in args.formats:
            for line in measure(
                credentials, output_format, (("created", created), ("edited", edited)), args.repeats
            ):
                print(line)


if __name__ == "__main__":
    main()
