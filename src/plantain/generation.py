"""Running one request end to end: decode inputs, plan, run the engine, encode outputs.

The CLI calls this directly; the server's scheduler (later) calls the same steps around its queue.
"""

from __future__ import annotations

import secrets
import time

from PIL import Image

from plantain.engines.base import Engine, EngineJob, Previews, StepCallback, StopFlag
from plantain.images import decode_image, encode_image, media_type
from plantain.types import GeneratedImage, ImageRequest, ImageResult

SEED_RANGE = 2**32  # random seeds stay in the range every dialect can send back


def random_seed() -> int:
    return secrets.randbelow(SEED_RANGE)


def prepare(request: ImageRequest, engine: Engine) -> EngineJob:
    """Validate ``request`` for ``engine`` and fix every number of the run (seed included)."""
    engine.check_task(request)  # cheap refusals first: no decoding, no weights
    images = [decode_image(image) for image in request.images]
    seed = request.seed if request.seed is not None else random_seed()
    return engine.plan(request, images, seed)


def run_request(
    request: ImageRequest,
    engine: Engine,
    on_step: StepCallback | None = None,
    should_stop: StopFlag | None = None,
) -> ImageResult:
    return execute(request, prepare(request, engine), engine, on_step, should_stop)


def execute(
    request: ImageRequest,
    job: EngineJob,
    engine: Engine,
    on_step: StepCallback | None = None,
    should_stop: StopFlag | None = None,
    previews: Previews | None = None,
) -> ImageResult:
    """Run a prepared job and encode its images as ``request`` asks."""
    started = time.perf_counter()
    images = engine.run([job], on_step, should_stop, previews)[0]
    seconds = time.perf_counter() - started
    return ImageResult(
        engine=engine.name,
        images=tuple(
            encode_output(image, seed, request) for image, seed in zip(images, job.seeds, strict=True)
        ),
        steps=job.steps,
        guidance=job.guidance,
        seconds=seconds,
    )


def encode_output(image: Image.Image, seed: int, request: ImageRequest) -> GeneratedImage:
    """``image`` in the format and quality ``request`` asks for."""
    return GeneratedImage(
        data=encode_image(image, request.output_format, request.output_quality),
        media_type=media_type(request.output_format),
        width=image.width,
        height=image.height,
        seed=seed,
    )
