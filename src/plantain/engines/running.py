"""One run of an engine's pipeline: the step callback, seeds, decoding, warm-up and error wrapping.

diffusers reports each denoising step to a ``callback_on_step_end``; the one built here reports
progress, stops a cancelled run between steps and decodes the requested previews. The helpers
around it are the parts of a run every family shares.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image

from plantain.engines.jobs import EngineJob, Previews, StepCallback, StopFlag
from plantain.errors import EngineRunError, PlantainError, TaskCancelledError

logger = logging.getLogger(__name__)

PreviewDecoder = Callable[[Any, torch.Tensor, EngineJob], Image.Image | None]
"""Decodes one image's in-progress latents (pipeline, latents, job); None where it cannot."""


def step_callback(
    engine: str,
    job: EngineJob,
    on_step: StepCallback | None,
    should_stop: StopFlag | None,
    previews: Previews | None,
    decode_preview: PreviewDecoder,
) -> Callable[..., Any]:
    """A diffusers ``callback_on_step_end`` that reports progress, honours the stop flag and
    decodes the requested previews of the first image."""
    started = time.monotonic()
    total = job.steps
    sent = 0  # engines that call the pipeline once per seed see the steps again: preview once

    def callback(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        nonlocal sent
        if should_stop is not None and should_stop():
            raise TaskCancelledError(
                f"run on engine {engine} was cancelled after step {step + 1} of {total} "
                f"({time.monotonic() - started:.1f} s)",
                step=step + 1,  # the task's `cancelled` event says how far it got
            )
        if previews is not None and step + 1 in previews.at_steps and sent < len(previews.at_steps):
            image = decode_preview(pipeline, tensors["latents"][:1], job)
            if image is not None:
                previews.on_preview(sent, image)
                sent += 1
        if on_step is not None:
            on_step(step + 1, total)
        return {}

    return callback


def no_callback(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    return {}


def check_compatible(engine: str, batchable: bool, jobs: Sequence[EngineJob]) -> None:
    """Refuse a run whose ``jobs`` cannot share one pipeline call."""
    if not jobs:
        raise ValueError("run() needs at least one job")
    if len(jobs) > 1 and not batchable:
        raise ValueError(f"engine {engine} runs one job per call")
    if len({job.batch_key() for job in jobs}) > 1:
        raise ValueError("jobs in one run must share size, steps, guidance and input images")


@contextmanager
def pipeline_errors(engine: str) -> Iterator[None]:
    """A pipeline failure as an :class:`EngineRunError`: it must not take the caller down."""
    try:
        yield
    except PlantainError:
        raise
    except Exception as exc:
        raise EngineRunError(f"engine {engine} failed: {type(exc).__name__}: {exc}") from exc


def split_images(images: list[Image.Image], counts: list[int]) -> list[list[Image.Image]]:
    """A batch's images, in job then seed order, as one list per job of ``counts[job]`` images."""
    if len(images) != sum(counts):
        raise EngineRunError(f"pipeline returned {len(images)} images, expected {sum(counts)}")
    out, start = [], 0
    for count in counts:
        out.append(images[start : start + count])
        start += count
    return out


def warm_up(engine: str, jobs: Mapping[str, EngineJob], generate: Callable[[EngineJob], object]) -> None:
    """Run each warm-up job once (``jobs`` by their ``warmup_sizes`` entry): compilation, CUDA graph
    capture and allocator growth happen here rather than in the first requests."""
    for entry, job in jobs.items():
        started = time.monotonic()
        generate(job)
        logger.info(
            "engine %s warmed up %s (%dx%d) in %.1f s",
            engine,
            entry,
            job.width,
            job.height,
            time.monotonic() - started,
        )


def seed_generators(jobs: Sequence[EngineJob]) -> list[torch.Generator]:
    """One CPU generator per image, in job then seed order: image k depends on its own seed only,
    and the same seed gives the same noise on any device."""
    return [torch.Generator("cpu").manual_seed(seed) for job in jobs for seed in job.seeds]


def decode_latents(pipeline: Any, latents: torch.Tensor) -> Image.Image:
    """What every pipeline does after its loop, for one image: VAE decode, then postprocess."""
    from diffusers.utils.torch_utils import get_module_execution_device

    vae = pipeline.vae
    decoded = vae.decode(latents.to(get_module_execution_device(vae), vae.dtype), return_dict=False)[0]
    if decoded.ndim == 5:  # video VAEs (Qwen-Image's) return (batch, channels, frames, h, w)
        decoded = decoded[:, :, 0]
    image: Image.Image = pipeline.image_processor.postprocess(decoded, output_type="pil")[0]
    return image


@contextmanager
def vae_tiling(vae: Any) -> Iterator[None]:
    """The VAE encoding and decoding in tiles for the duration (a refine pass over a large image),
    where the VAE can; as it was afterwards."""
    if not hasattr(vae, "enable_tiling") or getattr(vae, "use_tiling", False):
        yield
        return
    vae.enable_tiling()
    try:
        yield
    finally:
        vae.disable_tiling()
