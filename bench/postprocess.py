"""Everything but the engine, per 1K image: each stage on its own and the whole chain per format.

    python bench/postprocess.py --repeats 10
    python bench/postprocess.py --image noise --formats png --baseline

Stages, through the code the server runs: an edit's input (base64 decode, image decode from a
PNG, JPEG and WebP upload, a Gemini body parsed and validated), then per output image the
watermark, the encoding in each output format at the server's settings, the C2PA signature,
base64, the Gemini and OpenAI JSON bodies (rendered as the routes render them) and the result
file written with and without fsync. ``total`` runs the chain a text-to-image answer goes
through: mark, encode, sign (``generation.encode_output``), the Gemini body and the durable write.

Images: ``photo`` is scikit-image's astronaut (a dev dependency) scaled to 1024x1024; ``noise``
is what the tiny engine paints, the worst case for every codec. Each stage runs pinned to one
core and then on all cores; prints min/median/max milliseconds over the repeats (after one
warm-up), the encoded size, PSNR against the source for lossy formats, and ``OVER`` where the
one-core median is past the 50 ms budget. ``--baseline`` adds the encoder settings used before
(Pillow PNG level 4, WebP method 4, AVIF speed 8) for comparison. Timings on shared machines are
noisy: compare figures from one run. ``--json`` writes every figure for the records.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

from plantain.dialects.gemini import convert as gemini
from plantain.dialects.gemini import render as gemini_render
from plantain.dialects.openai import convert as openai
from plantain.dialects.openai.protocol import ImageParams
from plantain.dialects.wire import ImageAnswer, decode_base64, encode_base64
from plantain.generation import encode_output, output_title
from plantain.imaging import png
from plantain.imaging.codecs import decode_image, encode_image, media_type
from plantain.provenance import watermark
from plantain.provenance.policy import ProvenancePolicy
from plantain.settings import Settings
from plantain.storage.files import write_durably
from plantain.types import GeneratedImage, ImageRequest, ImageResult, InputImage, OutputFormat, TokenUsage

BUDGET_MS = 50.0
FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp", "avif")
BASELINE: dict[str, dict[str, object]] = {  # the settings before issue 7
    "png": {"format": "PNG", "compress_level": 4},
    "webp": {"format": "WEBP", "quality": 90, "method": 4},
    "avif": {"format": "AVIF", "quality": 75, "speed": 8},
}
MODEL = "gemini-2.5-flash-image"


@dataclass
class Row:
    stage: str
    one_core: list[float] = field(default_factory=list)
    all_cores: list[float] = field(default_factory=list)
    kib: float | None = None
    psnr: float | None = None


def photo(size: int = 1024) -> Image.Image:
    path = files("skimage") / "data" / "astronaut.png"
    with Image.open(io.BytesIO(path.read_bytes())) as opened:
        return opened.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def noise(size: int = 1024) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


def psnr(source: Image.Image, data: bytes) -> float:
    with Image.open(io.BytesIO(data)) as decoded:
        error = np.asarray(source, np.float64) - np.asarray(decoded.convert("RGB"), np.float64)
    return float(10 * np.log10(255**2 / max(np.mean(error * error), 1e-12)))


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


@contextmanager
def pinned() -> Iterator[None]:
    """One core (the lowest allowed), as a busy server's post-processing thread gets."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def measure(stage: str, run: Callable[[], object], repeats: int) -> Row:
    row = Row(stage)
    with pinned():
        row.one_core = timed(run, repeats)
    row.all_cores = timed(run, repeats)
    return row


def input_stages(image: Image.Image, repeats: int) -> Iterator[Row]:
    """An edit's input as it arrives: base64 in a JSON body, then decoded to pixels."""
    for fmt, options in (("png", {}), ("jpeg", {"quality": 90}), ("webp", {"quality": 90})):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt.upper(), **options)  # type: ignore[arg-type]
        upload = InputImage(data=buffer.getvalue(), label="input image 1")
        row = measure(f"input decode {fmt}", lambda upload=upload: decode_image(upload), repeats)
        row.kib = len(upload.data) / 1024
        yield row
    text = encode_base64(upload.data)
    yield measure("input base64 decode (webp)", lambda: decode_base64(text, "data"), repeats)
    raw = json.dumps(
        {"contents": [{"parts": [{"text": "p"}, {"inlineData": {"mimeType": "image/webp", "data": text}}]}]}
    )
    body = raw.encode()
    yield measure("Gemini body parse + validation (webp)", lambda: parsed(body), repeats)


def parsed(body: bytes) -> ImageRequest:
    return gemini.to_image_request(gemini.parse_request(body), engine="tiny")


def output_stages(
    image: Image.Image, policy: ProvenancePolicy, store: Path, args: argparse.Namespace
) -> Iterator[Row]:
    marked = watermark.embed(image, watermark.Mark(server=1, serial=7))
    yield measure(
        "watermark embed", lambda: watermark.embed(image, watermark.Mark(server=1, serial=7)), args.repeats
    )
    for fmt in args.formats:
        yield from format_stages(marked, fmt, policy, store, args.repeats)
        if args.baseline and fmt in BASELINE:
            yield encode_row(
                f"encode {fmt} (before: {BASELINE[fmt]})",
                marked,
                lambda fmt=fmt: pillow(marked, BASELINE[fmt]),
                args.repeats,
            )
    data = encode_image(marked, "png")
    yield measure("store write", lambda: (store / "plain").write_bytes(data), args.repeats)
    yield measure("store write + fsync", lambda: write_durably(store / "durable", data), args.repeats)


def format_stages(
    marked: Image.Image, fmt: OutputFormat, policy: ProvenancePolicy, store: Path, repeats: int
) -> Iterator[Row]:
    yield encode_row(f"encode {fmt}", marked, lambda: encode_image(marked, fmt), repeats)
    data = encode_image(marked, fmt)
    stamper = policy.stamper(ImageRequest.create(prompt="p"), model=MODEL, engine="tiny", serials=[7])
    yield measure(
        f"C2PA sign {fmt}", lambda: stamper.sign(data, media_type(fmt), output_title(7, fmt)), repeats
    )
    signed = stamper.sign(data, media_type(fmt), output_title(7, fmt))[0]
    yield measure(f"base64 {fmt}", lambda: encode_base64(signed), repeats)
    result = one_image_result(signed, fmt, marked)
    yield measure(f"Gemini body {fmt}", lambda: gemini_body(result), repeats)
    yield measure(f"OpenAI body {fmt}", lambda: openai_body(result), repeats)
    yield measure(f"total {fmt}", lambda: answer(marked, fmt, policy, store), repeats)


def encode_row(stage: str, source: Image.Image, run: Callable[[], bytes], repeats: int) -> Row:
    row = measure(stage, run, repeats)
    data = run()
    row.kib = len(data) / 1024
    if not stage.startswith("encode png"):
        row.psnr = psnr(source, data)
    return row


def pillow(image: Image.Image, options: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def one_image_result(data: bytes, fmt: OutputFormat, image: Image.Image) -> ImageResult:
    generated = GeneratedImage(
        data=data, media_type=media_type(fmt), width=image.width, height=image.height, seed=7
    )
    return ImageResult(engine="tiny", images=(generated,), steps=4, guidance=0.0, seconds=0.3)


def gemini_body(result: ImageResult) -> bytes:
    request = ImageRequest.create(prompt="p")
    return ImageAnswer(gemini_render.to_response(result, request, MODEL, "id").wire()).body


def openai_body(result: ImageResult) -> bytes:
    counted = TokenUsage(input_text=1, input_image=0, output=1290)
    body = openai.response_body(result, ImageParams(prompt="p"), 0, counted=counted)
    return ImageAnswer(body).body


def answer(image: Image.Image, fmt: OutputFormat, policy: ProvenancePolicy, store: Path) -> None:
    """A text-to-image answer after the engine: mark, encode, sign, store, the Gemini body."""
    request = ImageRequest.create(prompt="p", output_format=fmt)
    stamper = policy.stamper(request, model=MODEL, engine="tiny", serials=[7])
    generated = encode_output(image, 7, request, stamper)
    write_durably(store / "answer", generated.data)
    gemini_body(ImageResult(engine="tiny", images=(generated,), steps=4, guidance=0.0, seconds=0.3))


def spread(values: list[float]) -> str:
    return f"{min(values):8.1f}{statistics.median(values):8.1f}{max(values):8.1f}"


def show(row: Row) -> None:
    size = f"{row.kib:8.0f}" if row.kib is not None else " " * 8
    quality = f"{row.psnr:7.2f}" if row.psnr is not None else " " * 7
    over = "  OVER" if statistics.median(row.one_core) > BUDGET_MS else ""
    print(
        f"{row.stage[:44]:<44}{spread(row.one_core)}  {spread(row.all_cores)}{size}{quality}{over}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", choices=["photo", "noise"], default="photo")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--baseline", action="store_true", help="also time the encoders used before")
    parser.add_argument("--no-inputs", action="store_true", help="skip the input (edit) stages")
    parser.add_argument("--store-dir", type=Path, help="where result files are written (default: temp)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    image = photo() if args.image == "photo" else noise()
    cores = len(os.sched_getaffinity(0))
    print(f"{args.image} 1024x1024, {args.repeats} repeats, {cores} cores, PNG deflate: {png.DEFLATE}")
    heading = f"{'1 core: min':>12}{'med':>8}{'max':>8}  {'all: min':>8}{'med':>8}{'max':>8}"
    print(f"{'stage':<44}{heading}{'KiB':>8}{'PSNR':>7}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as data_dir, tempfile.TemporaryDirectory(dir=args.store_dir) as store:
        policy = ProvenancePolicy(Settings(data_dir=Path(data_dir)))
        inputs = iter(()) if args.no_inputs else input_stages(image, args.repeats)
        for row in itertools.chain(inputs, output_stages(image, policy, Path(store), args)):
            show(row)
            rows.append(row)
    if args.json:
        args.json.write_text(
            json.dumps({"image": args.image, "rows": [asdict(row) for row in rows]}, indent=1)
        )


if __name__ == "__main__":
    main()
