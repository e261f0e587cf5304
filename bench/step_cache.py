"""The step cache (first-block cache, setting ``step_cache``): time saved and how far the images move.

    python bench/step_cache.py                      # tiny klein and tiny Qwen-Image-Edit, CPU
    python bench/step_cache.py --steps 40 --repeats 5

For each engine, at a fixed set of seeds (5) and thresholds (0.05, 0.1, 0.2), runs every seed
without the cache and with it, ``--repeats`` times each, and prints the seconds per image
(min/median/max over the repeats, all seeds together) and each threshold's deviation from the
uncached image of the same seed: PSNR (dB) and mean absolute error (0-255), min/median/max over
the seeds. The tiny klein is refused by the cache (diffusers' first-block cache cannot combine
FLUX.2's double- and single-stream blocks): the refusal is printed in its place.

The checkpoints are the tiny random-weight ones: their blocks' residuals change a lot from step
to step, so the cache skips few steps at these thresholds, and the deviation figures check the
mechanism (threshold 0 is exact, a higher one moves the image), not a real model's quality. On a
real Qwen-Image-Edit the published first-block-cache figures (ParaAttention's README) are the ones
to compare with, measured on the real weights with this script's ``--steps 40``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from plantain.engines import tiny
from plantain.engines.base import Engine
from plantain.engines.qwen_image import create_qwen_image_edit
from plantain.engines.qwen_image_tiny import build_tiny_qwen_image_edit
from plantain.engines.step_cache import apply_step_cache
from plantain.errors import ConfigurationError
from plantain.generation import prepare
from plantain.settings import Settings
from plantain.testing import make_input
from plantain.types import ImageRequest

SEEDS = (1, 2, 3, 4, 5)
THRESHOLDS = (0.05, 0.1, 0.2)

EngineMaker = Callable[[str, Settings], Engine]
ENGINES: dict[str, tuple[EngineMaker, Callable[[Path], None], bool]] = {
    # name: (constructor, tiny builder, takes an input image)
    "tiny": (tiny.create, tiny.build_checkpoint, False),
    "qwen-image-edit": (create_qwen_image_edit, build_tiny_qwen_image_edit, True),
}


def spread(values: Sequence[float], unit: str = "") -> str:
    return f"{min(values):.3f} / {statistics.median(values):.3f} / {max(values):.3f}{unit} (min/median/max)"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def run_seeds(engine: Engine, name: str, seeds: Sequence[int], steps: int, with_input: bool, repeats: int):  # type: ignore[no-untyped-def]
    """(seconds per image over the repeats, the last repeat's image per seed)."""
    images = [make_input()] if with_input else []
    times: list[float] = []
    made: dict[int, np.ndarray] = {}
    for _ in range(repeats):
        for seed in seeds:
            request = ImageRequest.create(
                prompt="a lighthouse at dusk", size="512", seed=seed, images=images, options={"steps": steps}
            )
            job = prepare(request, engine)
            start = time.perf_counter()
            image = engine.run([job])[0][0]
            times.append(time.perf_counter() - start)
            made[seed] = np.asarray(image).astype(np.float64)
    return times, made


def bench_engine(name: str, root: Path, steps: int, repeats: int) -> None:
    create, build, with_input = ENGINES[name]
    directory = root / name
    build(directory)
    engine = create(name, Settings(data_dir=root, weights={name: directory}, dtype="float32"))
    engine.load()
    print(f"\n{name}: {steps} steps, 512, seeds {list(SEEDS)}, {repeats} repeats")
    base_times, base = run_seeds(engine, name, SEEDS, steps, with_input, repeats)
    print(f"  no cache        {spread(base_times, ' s')}")
    for threshold in THRESHOLDS:
        try:
            apply_step_cache(engine._pipeline, threshold, engine=name)
        except ConfigurationError as exc:
            print(f"  refused: {exc.message}")
            return
        times, cached = run_seeds(engine, name, SEEDS, steps, with_input, repeats)
        psnrs = [psnr(cached[seed], base[seed]) for seed in SEEDS]
        maes = [float(np.mean(np.abs(cached[seed] - base[seed]))) for seed in SEEDS]
        print(f"  threshold {threshold:<5} {spread(times, ' s')}")
        print(f"    PSNR {spread(psnrs, ' dB')}; mean abs error {spread(maes)}")
    engine._pipeline.transformer.disable_cache()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="*", default=list(ENGINES), choices=list(ENGINES))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        for name in args.engines:
            bench_engine(name, Path(root), args.steps, args.repeats)


if __name__ == "__main__":
    main()
