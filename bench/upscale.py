"""How long the upscaler takes to make 4K from an engine's largest native 16:9 size: 1344x768 →
5376x3072 (one 4x pass, no resize), with a tiny random-weight checkpoint built in a temporary
directory (``plantain.upscale.tiny``), at two tile sizes.

    .venv/bin/python bench/upscale.py                        # tiny ESRGAN, tiles 256 and 512
    .venv/bin/python bench/upscale.py --architecture compact --tiles 512 1024 --repeats 5
    .venv/bin/python bench/upscale.py --checkpoint RealESRGAN_x4plus.pth --device cuda

Each configuration is warmed up once (not counted), then timed ``--repeats`` times; prints
min/median/max seconds and output megapixels per second. The tiny ESRGAN has Real-ESRGAN's layout
with 4 features and 1 block instead of 64 and 23 (its dense blocks keep their 32 growth channels,
which spandrel assumes), so a real x4plus does about 20 times its work: the figures are the
tiling, blending and resizing overhead around a small network, not a real model's speed.

Measured (2-core CPU shared with other jobs, load average about 5, so slower than an idle
machine; float32, 3 repeats): tiny Compact, tile 256: 5.99 / 8.26 / 8.87 s, tile 512: 5.49 /
5.58 / 5.75 s; tiny ESRGAN, tile 256: 40.6 / 46.5 / 73.6 s, tile 512: 30.2 / 30.7 / 33.8 s
(its network alone, untiled, took 7.5 s on a quieter moment of the same machine). Small tiles
cost more: more of each tile is overlap, and small convolutions use the cores less well.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from plantain.upscale.model import Upscaler
from plantain.upscale.tiny import ARCHITECTURES, build_tiny_upscaler

SOURCE = (1344, 768)
TARGET = (5376, 3072)


def source_image(seed: int = 0) -> Image.Image:
    """Smooth noise the size of a generated image (a flat colour would flatter no model)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (SOURCE[1] // 16, SOURCE[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(SOURCE, Image.Resampling.BICUBIC)


def timed(upscaler: Upscaler, image: Image.Image, tile: int, repeats: int) -> list[float]:
    upscaler.upscale(image, *TARGET, tile=tile)  # warm-up: allocator, kernels
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = upscaler.upscale(image, *TARGET, tile=tile)
        seconds.append(time.perf_counter() - start)
        assert result.size == TARGET
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", choices=ARCHITECTURES, default="esrgan")
    parser.add_argument("--checkpoint", type=Path, help="a real upscaler instead of the tiny one")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = args.checkpoint or build_tiny_upscaler(
            Path(folder) / "tiny_x4.safetensors", args.architecture, 4
        )
        upscaler = Upscaler.load(path, args.device, torch.float32 if args.device == "cpu" else torch.float16)
        print(f"{upscaler.label} on {args.device} ({torch.get_num_threads()} threads): {SOURCE} -> {TARGET}")
        image = source_image()
        for tile in args.tiles:
            seconds = timed(upscaler, image, tile, args.repeats)
            rate = TARGET[0] * TARGET[1] / 1e6 / statistics.median(seconds)
            print(
                f"tile {tile:>5}: min {min(seconds):.2f} s  median {statistics.median(seconds):.2f} s  "
                f"max {max(seconds):.2f} s  ({rate:.2f} MP/s out, {args.repeats} repeats)"
            )


if __name__ == "__main__":
    main()
