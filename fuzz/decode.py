"""Fuzz the input-image decode path: arbitrary and mutated image bytes -> decode_image.

The property (Pillow's own oss-fuzz harness asks the same of Pillow): for *any* bytes, decoding
either gives a plain RGB image within the pixel limit or raises a PlantainError (a 400 in every
dialect). Any other exception, a case slower than ``--case-seconds`` or a resident-memory rise
over ``--max-rss-mib`` is a finding.

Inputs are real images in every accepted format (the seeds) with bytes overwritten, truncated,
spliced together or headers rewritten, plus raw random bytes. Run it for a while with

    .venv/bin/python -m fuzz.decode --examples 20000

and it prints the executions run, the findings (with a reproducer file each) and the peak RSS.
tests/test_fuzz.py runs the same property with fewer examples on every test run.
"""

from __future__ import annotations

import argparse
import io
import resource
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from plantain.errors import PlantainError
from plantain.imaging.codecs import decode_image
from plantain.types import InputImage

SEED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "AVIF", "HEIF")


def _seed(fmt: str) -> bytes:
    """A small image in ``fmt`` with the features decoders branch on: alpha, EXIF, frames."""
    image = Image.new("RGBA" if fmt in {"PNG", "WEBP", "AVIF"} else "RGB", (24, 16), (200, 30, 30))
    image.paste((20, 90, 200), (4, 4, 12, 12))
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if fmt == "JPEG":
        exif = Image.Exif()
        exif[0x0112] = 6  # orientation: rotate
        options["exif"] = exif
    if fmt == "GIF":
        options.update(save_all=True, append_images=[image.rotate(90)], duration=50, loop=0)
    if fmt == "HEIF":
        import pillow_heif  # registers the HEIF opener and saver

        pillow_heif.register_heif_opener()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header (and one tiny IDAT) claiming ``width`` x ``height``: a bomb's shape."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def seeds() -> list[bytes]:
    return [_seed(fmt) for fmt in SEED_FORMATS] + [_bomb_png(60_000, 60_000), _bomb_png(1, 200_000)]


@st.composite
def image_bytes(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    """Raw random bytes, or a seed mutated: bytes overwritten, cut short, or spliced with another."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=512))
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        other = draw(st.sampled_from(corpus))
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + other[draw(st.integers(0, len(other))) :]
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@dataclass
class Findings:
    """What a run found: unexpected exceptions, slow cases, and how many cases ran."""

    case_seconds: float
    executions: int = 0
    accepted: int = 0
    slowest: float = 0.0
    crashes: list[tuple[bytes, str]] = field(default_factory=list)
    slow: list[tuple[bytes, float]] = field(default_factory=list)

    def check(self, data: bytes) -> None:
        """Decode ``data`` once and record what happened."""
        self.executions += 1
        started = time.perf_counter()
        try:
            image = decode_image(InputImage(data=data, label="fuzz input"))
        except PlantainError:
            pass
        except Exception as exc:  # a finding: it would have been a 500
            self.crashes.append((data, f"{type(exc).__name__}: {exc}"))
        else:
            self.accepted += 1
            if image.mode != "RGB":
                self.crashes.append((data, f"decoded to mode {image.mode}, not RGB"))
        elapsed = time.perf_counter() - started
        self.slowest = max(self.slowest, elapsed)
        if elapsed > self.case_seconds:
            self.slow.append((data, elapsed))


def run(examples: int, findings: Findings, seed: int | None = None) -> None:
    """Run ``examples`` generated cases through ``findings.check``."""
    corpus = seeds()
    for data in corpus:
        findings.check(data)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(image_bytes(corpus))
    def case(data: bytes) -> None:
        findings.check(data)

    runner: Callable[[], None] = case
    if seed is not None:
        from hypothesis import seed as with_seed

        runner = with_seed(seed)(case)
    runner()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="generated cases to run")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: derandomized)")
    parser.add_argument("--case-seconds", type=float, default=2.0, help="slowest acceptable case")
    parser.add_argument("--max-rss-mib", type=float, default=1024.0, help="largest acceptable peak RSS")
    parser.add_argument("--out", type=Path, default=Path("fuzz-findings"), help="where reproducers go")
    args = parser.parse_args(argv)

    findings = Findings(case_seconds=args.case_seconds)
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    run(args.examples, findings, args.seed)
    seconds = time.perf_counter() - started
    rss = peak_rss_mib()
    refused = findings.executions - findings.accepted - len(findings.crashes)
    print(
        f"executions {findings.executions} in {seconds:.1f} s ({findings.executions / seconds:.0f}/s); "
        f"decoded {findings.accepted}, refused {refused}"
    )
    print(
        f"slowest case {findings.slowest * 1000:.1f} ms; peak RSS {rss:.0f} MiB (at start {rss_before:.0f})"
    )
    print(f"findings: {len(findings.crashes)} unexpected exceptions, {len(findings.slow)} slow cases")
    _save(args.out, findings)
    return 1 if findings.crashes or findings.slow or rss > args.max_rss_mib else 0


def _save(out: Path, findings: Findings) -> None:
    for index, (data, reason) in enumerate(findings.crashes + [(d, f"{s:.2f} s") for d, s in findings.slow]):
        out.mkdir(parents=True, exist_ok=True)
        (out / f"finding-{index}.bin").write_bytes(data)
        print(f"  finding-{index}.bin: {reason}")


if __name__ == "__main__":
    sys.exit(main())
