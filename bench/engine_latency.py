"""End-to-end latency of one engine in-process: request -> encoded image, per size tier.

    python bench/engine_latency.py --engine tiny --sizes 512 1K 2K --repeats 5
    python bench/engine_latency.py --engine z-image-turbo --tiny-weights --sizes 512 1K

``--tiny-weights`` runs a real engine (its real preset and loader) on its family's tiny
random-weight checkpoint, built into a temporary directory: a CPU figure for the code path, not
for the model. Prints min/median/max seconds per tier over the repeats (after one warm-up run)
and the load time. Timings on shared machines are noisy: compare figures from one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.registry import FAMILIES, EngineRegistry
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.settings.extras import LICENCE_IDS
from plantain.types import ImageRequest


def tiny_families() -> dict[str, Family]:
    """The real engines that make images from text alone, each with its family's tiny builder."""
    families = {family.engine: family for family in FAMILIES if family.hub_id is not None}
    return {
        name: family
        for name, family in families.items()
        if family.create(name, Settings()).capabilities.text_to_image
    }


def make_engine(name: str, tiny_weights: bool, scratch: Path) -> Engine:
    if not tiny_weights:
        return EngineRegistry(Settings()).get(name)
    family = tiny_families()[name]
    checkpoint = scratch / name
    family.build_tiny(checkpoint)
    engine = EngineRegistry(
        Settings(
            data_dir=scratch, weights={name: checkpoint}, dtype="float32", accept_licences=list(LICENCE_IDS)
        )
    ).get(name)
    # e.g. klein's text-encoder layers (9, 18, 27): the tiny encoder has 2
    call_kwargs = {**engine.preset.call_kwargs, **family.tiny_call_kwargs}
    engine.preset = replace(engine.preset, call_kwargs=call_kwargs)
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", default="tiny")
    parser.add_argument("--tiny-weights", action="store_true", help=f"one of: {', '.join(tiny_families())}")
    parser.add_argument("--sizes", nargs="+", default=["512", "1K", "2K"])
    parser.add_argument("--aspect-ratio", default="1:1")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(args.engine, args.tiny_weights, Path(scratch))
        started = time.perf_counter()
        engine.load()
        loaded = time.perf_counter() - started
        print(f"engine {engine.name}: loaded in {loaded:.2f} s, torch threads {torch.get_num_threads()}")
        print(f"{'size':>5} {'pixels':>11} {'steps':>5} {'min s':>7} {'median s':>8} {'max s':>7}")
        for size in args.sizes:
            measure(
                engine,
                ImageRequest.create(
                    prompt="a red bicycle", aspect_ratio=args.aspect_ratio, size=size, seed=0
                ),
                args.repeats,
            )


def measure(engine: Engine, request: ImageRequest, repeats: int) -> None:
    result = run_request(request, engine)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run_request(request, engine)
        times.append(time.perf_counter() - started)
    image = result.images[0]
    print(
        f"{request.size:>5} {f'{image.width}x{image.height}':>11} {result.steps:>5} "
        f"{min(times):7.3f} {statistics.median(times):8.3f} {max(times):7.3f}"
    )


if __name__ == "__main__":
    main()
