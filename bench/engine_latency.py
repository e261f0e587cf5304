"""End-to-end latency of one engine in-process: request -> encoded image, per size tier.

    python bench/engine_latency.py --engine tiny --sizes 512 1K 2K --repeats 5

Prints min/median/max seconds per tier over the repeats (after one warm-up run), and the
engine's load time. Timings on shared machines are noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from plantain.engines.registry import EngineRegistry
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.types import ImageRequest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", default="tiny")
    parser.add_argument("--sizes", nargs="+", default=["512", "1K", "2K"])
    parser.add_argument("--aspect-ratio", default="1:1")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    engine = EngineRegistry(Settings()).get(args.engine)
    started = time.perf_counter()
    engine.load()
    loaded = time.perf_counter() - started
    print(f"engine {engine.name}: loaded in {loaded:.2f} s, torch threads {torch.get_num_threads()}")
    print(f"{'size':>5} {'pixels':>11} {'steps':>5} {'min s':>7} {'median s':>8} {'max s':>7}")
    for size in args.sizes:
        request = ImageRequest.create(
            prompt="a red bicycle", aspect_ratio=args.aspect_ratio, size=size, seed=0
        )
        result = run_request(request, engine)  # warm-up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            run_request(request, engine)
            times.append(time.perf_counter() - started)
        image = result.images[0]
        print(
            f"{size:>5} {f'{image.width}x{image.height}':>11} {result.steps:>5} "
            f"{min(times):7.3f} {statistics.median(times):8.3f} {max(times):7.3f}"
        )


if __name__ == "__main__":
    main()
