"""Full-width CPU smoke run: the real FLUX.2-klein-4B architecture, random weights, one step at 256².

It proves the real loading code, the real configs and the real pipeline wiring without a GPU or a
download. The transformer, VAE and Qwen3-4B text encoder are built at their checkpoint's full
dimensions (bench/fullsize_models.py holds them, with their sources) with random weights made in
bfloat16 directly (never an fp32 copy), saved with Plantain's own ``save_atomically`` into a
directory laid out like the hub repo (``model_index.json`` and a folder per component; about
16 GB), then loaded the way a server loads a downloaded checkpoint: ``EngineRegistry`` →
``flux2-klein-4b`` with ``weights`` pointing at the directory, bfloat16 on the CPU. One 256x256
image at one step goes through ``generation.execute`` (text encoder, transformer, VAE decode,
PNG encode).

The tokenizer is Plantain's tiny byte-level Qwen2 tokenizer: the real vocabulary (about 151,700
tokens) cannot be had offline. The text encoder keeps the real 151,936-row embedding and prompts
are padded to 512 tokens as with the real one, so every weight and every matmul is full size.

Phases, each with its seconds and its peak resident memory (``VmHWM``, reset per phase): build and
save run in a child process (so the parent's memory is what a server holding the checkpoint
needs), load and run in this one. On the CPU, loading maps the safetensors files rather than
reading them, so the weights become resident during the first run (as page cache shared with the
files, not as the process's own memory). A checkpoint already in ``--out`` is reused, not
rebuilt. Prints progress, then one JSON line; docs/performance.md has the figures.

    python bench/fullwidth_smoke.py --remove       # full width: 16 GB disk, 16 GiB memory, ~2 min
    python bench/fullwidth_smoke.py --out DIR      # build in DIR and keep it; later runs reuse it
    python bench/fullwidth_smoke.py --tiny         # the same code path at tiny widths (seconds)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from fullsize_models import KLEIN_4B, QWEN3_4B, TINY

from plantain.benchmark.memory import PeakMemory
from plantain.engines.checkpoints import save_atomically
from plantain.engines.loading import quiet_libraries
from plantain.engines.registry import EngineRegistry
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id
from plantain.generation import execute, prepare
from plantain.settings import Settings, load_settings
from plantain.types import EngineOptions, ImageRequest

ENGINE = "flux2-klein-4b"
PROMPT = "a lighthouse on a cliff at dusk, waves below, warm light in the window"
SIZE = 256  # below the smallest tier (512): set on the planned job
GIB = 1024**3

# Qwen/Qwen3-4B config.json beyond the widths fullsize_models.QWEN3_4B needs for timing: the 4B model
# ties its output head to the embedding (one 151,936 x 2560 matrix, not two), RoPE base 1e6.
QWEN3_4B_CONFIG = dict(
    QWEN3_4B,
    tie_word_embeddings=True,
    rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 1e6},
)
# FLUX.2's scheduler: diffusers' scripts/convert_flux2_to_diffusers.py takes FLUX.1-dev's config.
SCHEDULER = dict(
    num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
    base_image_seq_len=256, max_image_seq_len=4096,
)  # fmt: skip
# What a downloaded FLUX.2-klein-4B's model_index.json names (the tokenizer: Qwen2TokenizerFast,
# which transformers v5 saves as Qwen2Tokenizer, one class).
HUB_CLASSES = {
    "transformer": "Flux2Transformer2DModel",
    "vae": "AutoencoderKLFlux2",
    "text_encoder": "Qwen3ForCausalLM",
    "tokenizer": "Qwen2Tokenizer",
    "scheduler": "FlowMatchEulerDiscreteScheduler",
}
HEADROOM = int(2.5 * GIB)  # imports, activations at 256², the VAE decode: measured well under this


@dataclass(frozen=True)
class Widths:
    """The three models' constructor arguments."""

    name: str
    transformer: dict[str, Any]
    text_encoder: dict[str, Any]
    vae: dict[str, Any]


FULL = Widths("full", KLEIN_4B, QWEN3_4B_CONFIG, {})  # AutoencoderKLFlux2's defaults are FLUX.2's VAE
# --tiny: the text encoder keeps 36 layers (hidden width 16), so the engine's own preset, which
# stacks layers 9, 18 and 27 into the transformer's 3 x 16 = 48 text width, runs unchanged.
TINY_WIDTHS = Widths(
    "tiny",
    TINY["klein"],
    dict(TINY["qwen3"], num_hidden_layers=36),
    {
        **{k: v for k, v in TINY["vae"].items() if k not in ("shift_factor", "scaling_factor")},
        "latent_channels": 8,
    },
)


# --- build and save (child process) ----------------------------------------------------------------


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Parameters are created, and initialised in place, in ``dtype``."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_pipeline(widths: Widths, device: str = "cpu") -> Any:
    """Flux2KleinPipeline at ``widths`` with random bfloat16 weights; on "meta" it allocates nothing."""
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = tiny_qwen2_tokenizer()
    pad = token_id(tokenizer, "<|endoftext|>")
    dims = widths.text_encoder
    config = Qwen3Config(
        **{**dims, "vocab_size": max(len(tokenizer), dims.get("vocab_size", 0))},
        bos_token_id=pad,
        eos_token_id=token_id(tokenizer, "<|im_end|>"),
        pad_token_id=pad,
    )
    with torch.device(device), default_dtype(torch.bfloat16):
        text_encoder = Qwen3ForCausalLM(config)
        transformer = Flux2Transformer2DModel(**widths.transformer)
        vae = AutoencoderKLFlux2(**widths.vae)
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        transformer=transformer.eval(),
        is_distilled=True,
    )


def parameters(pipeline: Any) -> dict[str, int]:
    """Parameter count per model (tied weights once)."""
    return {
        name: sum(p.numel() for p in getattr(pipeline, name).parameters())
        for name in ("transformer", "text_encoder", "vae")
    }


def build_and_save(widths: Widths, directory: Path) -> dict[str, Any]:
    """Build at ``widths`` and save into ``directory``; seconds and peak RSS of each phase."""
    quiet_libraries()
    started = time.perf_counter()
    memory = PeakMemory()
    memory.reset()
    torch.manual_seed(0)
    pipeline = build_pipeline(widths)
    build = phase(started, memory)
    progress(f"built {format_params(parameters(pipeline))} in {build['seconds']:.1f} s")
    started = time.perf_counter()
    memory.reset()
    save_atomically(pipeline, directory)
    save = phase(started, memory)
    progress(f"saved {directory_bytes(directory) / 1e9:.2f} GB in {save['seconds']:.1f} s")
    return {"build": build, "save": save, "process_peak_rss_gib": round(process_peak_rss() / GIB, 2)}


def build_in_child(widths: Widths, directory: Path) -> dict[str, Any]:
    """:func:`build_and_save` in a process of its own, so that its memory (16 GB at full width)
    is back with the system before loading starts, and loading is measured as a server does it."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(build_and_save, widths, directory).result()


# --- load and run (this process) -------------------------------------------------------------------


def load_and_run(directory: Path, data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plantain's own path: registry → engine → load, then one 256² step; phases and a summary."""
    settings = Settings(
        data_dir=data_dir,
        device="cpu",
        dtype="bfloat16",
        weights={ENGINE: directory},
        torch_compile="off",
        warmup_sizes=[],
    )
    engine = EngineRegistry(settings).get(ENGINE)
    memory = PeakMemory()
    started = time.perf_counter()
    memory.reset()
    engine.load()
    load = phase(started, memory)
    pipeline = engine._pipeline
    progress(f"loaded {format_params(parameters(pipeline))} in {load['seconds']:.1f} s")

    request = ImageRequest.create(
        prompt=PROMPT, aspect_ratio="1:1", size="512", seed=42, options=EngineOptions(steps=1)
    )
    job = replace(prepare(request, engine), width=SIZE, height=SIZE)
    started = time.perf_counter()
    memory.reset()
    result = execute(request, job, engine)
    run = phase(started, memory)
    image = result.images[0]
    progress(f"ran {job.steps} step at {image.width}x{image.height} in {run['seconds']:.1f} s")
    models = ("transformer", "text_encoder", "vae")
    summary = {
        "loaded": {
            "parameters": parameters(pipeline),
            "dtypes": {name: str(getattr(pipeline, name).dtype) for name in models},
            "device": str(pipeline.transformer.device),
            # On the CPU the weights stay mapped from the checkpoint's files (page cache, paged in
            # by the first run), not copied into the process's own memory.
            "resident_after_run_gib": resident(),
        },
        "image": {
            "width": image.width,
            "height": image.height,
            "png_sha256": hashlib.sha256(image.data).hexdigest(),
        },
    }
    return {"load": load, "run": run}, summary


# --- helpers ---------------------------------------------------------------------------------------


def phase(started: float, memory: PeakMemory) -> dict[str, float]:
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_gib": round(memory.rss() / GIB, 2)}


def process_peak_rss() -> int:
    """This process's lifetime peak RSS in bytes (getrusage; Linux reports KiB)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def resident() -> dict[str, float]:
    """This process's resident memory now, its own (anon) and mapped from files, in GiB."""
    return {
        key.removeprefix("Rss").lower(): round((status_kib(key) or 0) * 1024 / GIB, 2)
        for key in ("RssAnon", "RssFile")
    }


def status_kib(key: str) -> int | None:
    """One /proc/self/status figure in KiB; None off Linux."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{key}:")), None)


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def format_params(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count / 1e9:.3f}B" for name, count in counts.items())


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def meminfo(key: str) -> int | None:
    """One /proc/meminfo figure in bytes (``MemAvailable``, ``MemTotal``); None off Linux."""
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return None


def preflight(widths: Widths, directory: Path, build: bool) -> int:
    """The checkpoint's bytes (from a meta-device build); refuses a run that cannot fit."""
    weights = 2 * sum(parameters(build_pipeline(widths, device="meta")).values())  # bfloat16
    needed = weights + HEADROOM
    available = meminfo("MemAvailable")
    if available is not None and available < needed:
        raise SystemExit(
            f"needs about {needed / GIB:.1f} GiB of free memory for {weights / GIB:.1f} GiB of "
            f"weights; {available / GIB:.1f} GiB available"
        )
    if build:
        directory.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(directory.parent).free
        if free < weights * 1.05:
            raise SystemExit(
                f"needs about {weights / 1e9:.1f} GB of disk in {directory.parent}; {free / 1e9:.1f} GB free"
            )
    return weights


def model_index(directory: Path) -> dict[str, str]:
    """Each component's class as model_index.json names it."""
    index = json.loads((directory / "model_index.json").read_text())
    return {name: index[name][1] for name in HUB_CLASSES}


def machine() -> dict[str, Any]:
    import diffusers
    import transformers

    total = meminfo("MemTotal")
    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": round(total / GIB, 1) if total else None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        help="checkpoint directory: built there, or reused when already there "
        "(default: smoke-flux2-klein-4b[-tiny] in the data directory's models folder)",
    )
    parser.add_argument("--remove", action="store_true", help="delete the checkpoint after the run")
    parser.add_argument("--tiny", action="store_true", help="tiny widths: the same code path in seconds")
    args = parser.parse_args(argv)
    widths = TINY_WIDTHS if args.tiny else FULL
    data_dir = load_settings().data_dir
    directory = args.out or data_dir / "models" / f"smoke-{ENGINE}{'-tiny' if args.tiny else ''}"
    built = not (directory / "model_index.json").is_file()
    if built and directory.exists() and any(directory.iterdir()):
        parser.error(f"{directory} is neither empty nor a checkpoint (no model_index.json)")
    expected = preflight(widths, directory, built)
    progress(f"{widths.name} widths: {expected / GIB:.2f} GiB of bfloat16 weights, checkpoint {directory}")

    phases: dict[str, Any] = {}
    builder_peak = None
    if built:
        child = build_in_child(widths, directory)
        phases |= {"build": child["build"], "save": child["save"]}
        builder_peak = child["process_peak_rss_gib"]
    else:
        progress("reusing the checkpoint already there")
    index = model_index(directory)
    if index != HUB_CLASSES:
        raise SystemExit(f"model_index.json names {index}, not the hub repo's {HUB_CLASSES}")
    size = directory_bytes(directory)
    try:
        loaded, summary = load_and_run(directory, data_dir)
    finally:  # a failed run must not leave 16 GB behind either
        if args.remove:
            shutil.rmtree(directory)
            progress(f"removed {directory}")
    phases |= loaded
    report = {
        "mode": widths.name,
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "checkpoint": {
            "built": built,
            "bytes": size,
            "gb": round(size / 1e9, 2),
            "kept": not args.remove,
            "model_index": index,
        },
        "phases": phases,
        "peak_rss_gib": {
            "builder_process": builder_peak,
            "server_process": round(process_peak_rss() / GIB, 2),
        },
        **summary,
    }
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
