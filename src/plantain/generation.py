"""Running one request end to end: decode inputs, plan, run the engine, encode outputs.

The CLI calls :func:`execute` directly; the server's scheduler calls the same steps around its
queue (``prepare``, then ``Engine.run`` for a batch of requests, then :func:`finish_images` per
request on its post-processing threads).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from PIL import Image

from plantain.engines.base import Engine, EngineJob, Previews, StepCallback, StopFlag
from plantain.engines.options import named_preset
from plantain.errors import PlantainError
from plantain.imaging.background import apply_background, flatten, steered
from plantain.imaging.codecs import decode_image, encode_image, media_type
from plantain.limits import DEFAULT_LIMITS, Limits
from plantain.providers.passthrough import remote_output
from plantain.types import (
    GeneratedImage,
    ImageRequest,
    ImageResult,
    InputImage,
    OutputFormat,
    Provenance,
    Upscaled,
)

if TYPE_CHECKING:
    from plantain.provenance.policy import Stamper

SEED_RANGE = 2**32  # random seeds stay in the range every dialect can send back

# Screens a request's output images before they are encoded (safety/policy.py); raises to withhold them.
OutputScreen = Callable[[Sequence[Image.Image], ImageRequest], None]


def random_seed() -> int:
    return secrets.randbelow(SEED_RANGE)


def precheck(request: ImageRequest, engine: Engine, limits: Limits = DEFAULT_LIMITS) -> None:
    """Every check of ``request`` for ``engine`` that needs no input image's bytes (only how many
    there are): the prompt, the input count, the task and the output size. The server makes them
    before it fetches or decodes any input, so a refused request costs neither."""
    limits.check_prompt(request.prompt)
    limits.check_input_count(len(request.images))
    engine.check_task(request)
    engine.check_size(request, max_output_pixels=limits.max_output_pixels)


def prepare(request: ImageRequest, engine: Engine, limits: Limits = DEFAULT_LIMITS) -> EngineJob:
    """Validate ``request`` for ``engine`` within the server's ``limits`` and fix every number of
    the run (seed included)."""
    precheck(request, engine, limits)  # cheap refusals first: no decoding, no weights
    unfetched = [image.label for image in request.images if image.url is not None]
    if unfetched:  # a caller's mistake, not a user's: FrontDoor.check fetches before it prepares
        raise ValueError(f"prepare() takes fetched inputs; {', '.join(unfetched)} not fetched")
    images = [decode_image(image, limits) for image in request.images]
    mask = None if request.mask is None else decode_mask(request.mask, limits)
    seed = request.seed if request.seed is not None else random_seed()
    return engine.plan(
        for_engine(request, engine), images, seed, max_output_pixels=limits.max_output_pixels, mask=mask
    )


def decode_mask(mask: InputImage, limits: Limits = DEFAULT_LIMITS) -> Image.Image:
    """``ImageRequest.mask`` decoded; its errors name ``mask``."""
    try:
        return decode_image(mask, limits)
    except PlantainError as exc:
        raise exc.renamed({"images": "mask"}) from None


def for_engine(request: ImageRequest, engine: Engine) -> ImageRequest:
    """``request`` as ``engine`` runs it: the prompt steered for a transparent background, and a
    steps scale (OpenAI ``quality``) turned into steps of the engine's preset."""
    request = steered(request)
    options = request.options
    if options.steps is not None or options.steps_scale is None:
        return request
    base = named_preset(engine, options.preset) or engine.preset  # a named preset's steps are scaled
    steps = max(1, round(base.steps * options.steps_scale))
    return request.model_copy(update={"options": options.model_copy(update={"steps": steps})})


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
    screen: OutputScreen | None = None,
    stamper: Stamper | None = None,
) -> ImageResult:
    """Run a prepared job and encode its images as ``request`` asks; ``screen`` sees them first,
    ``stamper`` puts the provenance marks on them (none without one)."""
    started = time.perf_counter()
    images = engine.run([job], on_step, should_stop, previews)[0]
    seconds = time.perf_counter() - started
    return ImageResult(
        engine=engine.name,
        images=finish_images(images, request, job, screen, stamper),
        steps=job.steps,
        guidance=job.guidance,
        seconds=seconds,
        upscaled=upscaled(job),
    )


def upscaled(job: EngineJob) -> Upscaled | None:
    """How ``job``'s images were enlarged beyond the size the engine made (None: they were not)."""
    plan = job.upscale
    if plan is None:
        return None
    return Upscaled(
        from_width=job.width,
        from_height=job.height,
        width=plan.width,
        height=plan.height,
        upscaler=plan.upscaler,
        refine_strength=plan.refine_strength,
    )


def finish_images(
    images: Sequence[Image.Image],
    request: ImageRequest,
    job: EngineJob,
    screen: OutputScreen | None = None,
    stamper: Stamper | None = None,
) -> tuple[GeneratedImage, ...]:
    """Everything after the engine for one request's images: ``screen`` sees them first, then each
    is encoded as ``request`` asks, marked and signed by ``stamper``. The scheduler runs this off
    its engine thread, beside the next engine run."""
    if screen is not None:
        screen(images, request)
    return tuple(
        encode_output(image, seed, request, stamper, index)
        for index, (image, seed) in enumerate(zip(images, job.seeds, strict=True))
    )


def encode_output(
    image: Image.Image, seed: int, request: ImageRequest, stamper: Stamper | None = None, index: int = 0
) -> GeneratedImage:
    """``image`` with the background, in the format and quality ``request`` asks for, marked and
    signed by ``stamper``. An image a remote provider made is handed out as it sent it
    (:func:`~plantain.providers.passthrough.remote_output`)."""
    remote = remote_output(image, seed, request)
    if remote is not None:
        return remote
    image = apply_background(image, request.background)
    output_format, quality = request.output_format, request.output_quality
    if output_format == "jpeg":  # no alpha channel: transparency the engine made on its own
        image = flatten(image)

    def encode(pixels: Image.Image) -> tuple[bytes, str]:
        return encode_image(pixels, output_format, quality), media_type(output_format)

    if stamper is None:
        data, provenance = encode(image)[0], Provenance()
    else:
        data, provenance = stamper.finish(image, index, encode, output_title(seed, output_format))
    return GeneratedImage(
        data=data,
        media_type=media_type(output_format),
        width=image.width,
        height=image.height,
        seed=seed,
        provenance=provenance,
    )


def output_title(seed: int, output_format: OutputFormat) -> str:
    """The name an output image goes by in its content credentials (as the CLI would save it)."""
    return f"plantain-{seed}.{'jpg' if output_format == 'jpeg' else output_format}"
