"""The one engine contract every model family implements.

An engine declares what it can do (:class:`Capabilities`) and the sampler settings its checkpoint
wants (:class:`Preset`), turns a validated :class:`~plantain.types.ImageRequest` into an
:class:`EngineJob` (exact size, steps, seeds, decoded inputs), and runs one *or several
compatible* jobs in a single pipeline call, reporting each denoising step and honouring a stop
flag between steps. Family files (``flux2.py``, ``qwen_image.py``, …) implement ``_load`` and
``_generate``; everything else — validation, locking, progress, cancellation, error wrapping —
lives here once.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from plantain.engines.fastpath import (
    AttentionMasks,
    Embedding,
    EmbeddingCache,
    FastPath,
    apply_fast_path,
    plan_fast_path,
)
from plantain.engines.loading import WeightsSource, WeightsStatus, pick_device
from plantain.errors import (
    ConfigurationError,
    EngineRunError,
    InvalidImageError,
    PlantainError,
    TaskCancelledError,
    TooManyImagesError,
    UnsupportedTaskError,
)
from plantain.imaging.sizes import SizeLimits, nearest_aspect_ratio, resolve_size
from plantain.settings import Settings
from plantain.types import ImageRequest

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int], None]
"""Called after each denoising step with (steps done, total steps)."""

StopFlag = Callable[[], bool]
"""Polled between steps; returning True stops the run with TaskCancelledError."""

PreviewCallback = Callable[[int, Image.Image], None]
"""Called with (preview index from 0, image) when a preview of the run's first image is decoded."""


@dataclass(frozen=True)
class Previews:
    """Intermediate images of a run (OpenAI's ``partial_images``): after which steps to decode the
    first image's latents, and where to send each preview. Each costs one VAE decode."""

    at_steps: frozenset[int]
    on_preview: PreviewCallback

    @classmethod
    def spread(cls, count: int, total_steps: int, on_preview: PreviewCallback) -> Previews:
        """Up to ``count`` previews spread evenly over the run, never after the last step (that
        one is the image itself), so short runs give fewer previews than asked for."""
        steps = {max(1, round(total_steps * (i + 1) / (count + 1))) for i in range(count)}
        return cls(frozenset(step for step in steps if step < total_steps), on_preview)


@dataclass(frozen=True)
class Preset:
    """Sampler settings a checkpoint is meant to run with (pipeline defaults are not model defaults)."""

    steps: int
    guidance: float
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)  # extra pipeline arguments


@dataclass(frozen=True)
class InputLimits:
    """The shapes a pipeline takes as input images (FLUX.2's processor: sides >= 64, up to 8:1)."""

    min_side: int = 1  # smaller inputs are enlarged to it, aspect kept
    max_aspect: float = float("inf")  # longer inputs are refused, naming the input


@dataclass(frozen=True)
class Capabilities:
    text_to_image: bool
    edit: bool
    max_input_images: int  # 0 for text-to-image-only engines
    sizes: SizeLimits
    batchable: bool = True  # several compatible jobs can share one pipeline call
    inputs: InputLimits = InputLimits()

    def tasks(self) -> list[str]:
        return [name for name, ok in (("text-to-image", self.text_to_image), ("edit", self.edit)) if ok]


@dataclass(frozen=True)
class EngineJob:
    """One request resolved for one engine: everything the pipeline call needs."""

    prompt: str
    images: tuple[Image.Image, ...]
    width: int
    height: int
    steps: int
    guidance: float
    seeds: tuple[int, ...]
    inputs_digest: str  # identifies the input images, so only jobs with the same ones batch

    def batch_key(self) -> tuple[object, ...]:
        """Jobs with equal keys can run in one pipeline call (prompts and seeds may differ)."""
        return (self.width, self.height, self.steps, self.guidance, self.inputs_digest)


class Engine(ABC):
    """A model family bound to one checkpoint. Loads once; ``run`` is safe to call from threads."""

    family: str = ""
    pipeline_class: str = ""
    attention_masks: AttentionMasks = "none"  # what its transformer masks: picks the attention kernel

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        description: str,
        source: WeightsSource,
        capabilities: Capabilities,
        preset: Preset,
        dtype: torch.dtype = torch.bfloat16,
        random_weights: bool = False,
    ) -> None:
        self.name = name
        self.settings = settings
        self.default_dtype = dtype  # used when the dtype setting is "auto"
        self.random_weights = random_weights  # a test/demo checkpoint: its images are noise
        self.description = description
        self.source = source
        self.capabilities = capabilities
        self.preset = preset
        self._pipeline: Any = None
        self._lock = threading.Lock()  # one pipeline call at a time
        self._load_lock = threading.Lock()  # apart: "is it loaded?" must not wait for a run
        self.fast_path: FastPath | None = None  # what load applied
        capacity = settings.text_embedding_cache
        self._embeddings = EmbeddingCache(capacity) if capacity and self.caches_text_embeddings() else None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # One embedding hook without the other would fail on the first request, not at import.
        hooks = [hook for hook in _EMBEDDING_HOOKS if getattr(cls, hook) is not getattr(Engine, hook)]
        if len(hooks) == 1:
            raise TypeError(
                f"{cls.__name__} implements {hooks[0]} alone; the text embedding cache needs both"
            )

    @classmethod
    def caches_text_embeddings(cls) -> bool:
        """Whether the family implements the embedding hooks. One that does not runs with the cache
        off (its pipeline encodes the prompts) rather than failing once the cache is on."""
        return cls._encode_prompts is not Engine._encode_prompts

    # --- weights and loading ---------------------------------------------------------------

    def weights_status(self) -> WeightsStatus:
        return self.source.status()

    @property
    def loaded(self) -> bool:
        return self._pipeline is not None

    def load(self) -> None:
        """Load the checkpoint once (later calls return at once), apply the fast path and warm up
        the served sizes, so that ``loaded`` (and the server's readiness) means fast."""
        with self._load_lock:
            if self._pipeline is None:
                pipeline = self._load()
                self.fast_path = apply_fast_path(pipeline, self.plan_fast_path(), engine=self.name)
                self._warm_up(pipeline, self.fast_path.warmup_sizes)
                self._pipeline = pipeline

    def plan_fast_path(self) -> FastPath:
        return plan_fast_path(
            self.settings, pick_device(self.settings.device), attention_masks=self.attention_masks
        )

    def _warm_up(self, pipeline: Any, sizes: Sequence[str]) -> None:
        """Run each size once at few steps: compilation, CUDA graph capture and allocator growth
        happen here rather than in the first requests."""
        for entry in sizes:
            job = self._warmup_job(entry)
            started = time.monotonic()
            with self._lock:
                self._generate(pipeline, [job], _no_callback)
            logger.info(
                "engine %s warmed up %s (%dx%d) in %.1f s",
                self.name,
                entry,
                job.width,
                job.height,
                time.monotonic() - started,
            )

    def _warmup_job(self, entry: str) -> EngineJob:
        tier, _, ratio = entry.partition(":")
        sizes = self.capabilities.sizes.capped(self.settings.max_output_pixels)
        try:
            width, height = resolve_size(ratio, tier, sizes, self.name)
        except PlantainError as exc:
            raise ConfigurationError(
                f"setting warmup_sizes (PLANTAIN_WARMUP_SIZES): {entry}: {exc.message}", field="warmup_sizes"
            ) from exc
        # An edit-only engine warms up on one grey input of the output's shape.
        images = () if self.capabilities.text_to_image else (Image.new("RGB", (width, height), "gray"),)
        return EngineJob(
            prompt="warm-up",
            images=images,
            width=width,
            height=height,
            steps=min(2, self.preset.steps),  # enough to compile and capture; shapes do not depend on it
            guidance=self.preset.guidance,
            seeds=(0,),
            inputs_digest="warm-up",
        )

    @abstractmethod
    def _load(self) -> Any:
        """Build the diffusers pipeline from ``self.source`` on the chosen device."""

    # --- planning --------------------------------------------------------------------------

    def plan(
        self,
        request: ImageRequest,
        images: Sequence[Image.Image],
        seed: int,
        *,
        max_output_pixels: int | None = None,
    ) -> EngineJob:
        """Check ``request`` against the capabilities (pixels capped at ``max_output_pixels``,
        a server setting) and fix every number the run needs."""
        self.check_task(request)
        aspect_ratio = request.aspect_ratio or self._default_aspect_ratio(images)
        width, height = self._output_size(aspect_ratio, request.size, max_output_pixels)
        options = request.options
        return EngineJob(
            prompt=request.prompt,
            images=self._fit_inputs(request, images),
            width=width,
            height=height,
            steps=options.steps if options.steps is not None else self.preset.steps,
            guidance=options.guidance if options.guidance is not None else self.preset.guidance,
            seeds=tuple(seed + i for i in range(request.num_images)),
            inputs_digest=inputs_digest(request),
        )

    def check_size(self, request: ImageRequest, *, max_output_pixels: int | None = None) -> None:
        """Refuse an output size this engine cannot make, where it is known without decoding an
        input: an edit that asks for no aspect ratio takes its input's shape, checked by :meth:`plan`."""
        if request.aspect_ratio is None and request.images:
            return
        aspect_ratio = request.aspect_ratio or self._default_aspect_ratio(())
        self._output_size(aspect_ratio, request.size, max_output_pixels)

    def _output_size(self, aspect_ratio: str, tier: str, max_output_pixels: int | None) -> tuple[int, int]:
        sizes = self.capabilities.sizes.capped(max_output_pixels)
        return resolve_size(aspect_ratio, tier, sizes, self.name)

    def check_task(self, request: ImageRequest) -> None:
        """Refuse what this engine cannot do, before any input is decoded or weights loaded."""
        caps = self.capabilities
        count = len(request.images)
        if count == 0 and not caps.text_to_image:
            raise UnsupportedTaskError(
                f"engine {self.name} only edits images; send at least one input image "
                f"(up to {caps.max_input_images})",
                field="images",
            )
        if count > 0 and not caps.edit:
            raise UnsupportedTaskError(
                f"engine {self.name} makes images from text only and takes no input images; got {count}",
                field="images",
            )
        if count > caps.max_input_images:
            raise TooManyImagesError(
                f"engine {self.name} takes at most {caps.max_input_images} input images; got {count}",
                field="images",
            )

    def _fit_inputs(self, request: ImageRequest, images: Sequence[Image.Image]) -> tuple[Image.Image, ...]:
        """Inputs the pipeline will take: small ones enlarged, too elongated ones refused (a
        pipeline's own refusal would surface as a 500 after the queue wait)."""
        limits = self.capabilities.inputs
        fitted = []
        for source, image in zip(request.images, images, strict=True):
            width, height = image.size
            if max(width / height, height / width) > limits.max_aspect:
                raise InvalidImageError(
                    f"{source.label} is {width}x{height}, longer than {limits.max_aspect:g}:1; engine "
                    f"{self.name} takes input images up to {limits.max_aspect:g}:1, so crop it first",
                    field="images",
                )
            fitted.append(_enlarge_to(image, limits.min_side))
        return tuple(fitted)

    def _default_aspect_ratio(self, images: Sequence[Image.Image]) -> str:
        """An edit keeps its (first) input's shape; a generation is square."""
        if not images:
            return "1:1"
        width, height = images[0].size
        return nearest_aspect_ratio(width, height, self.capabilities.sizes)

    # --- running ---------------------------------------------------------------------------

    def run(
        self,
        jobs: Sequence[EngineJob],
        on_step: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        previews: Previews | None = None,
    ) -> list[list[Image.Image]]:
        """Run compatible ``jobs`` in one pipeline call; returns each job's images in seed order."""
        self._check_compatible(jobs)
        self.load()
        with self._lock:  # the callback's clock starts once the run has the pipeline
            images = self._run_locked(jobs, self._step_callback(jobs[0], on_step, should_stop, previews))
        return _split(images, [len(job.seeds) for job in jobs])

    def _run_locked(self, jobs: Sequence[EngineJob], callback: Callable[..., Any]) -> list[Image.Image]:
        try:
            return self._generate(self._pipeline, jobs, callback)
        except PlantainError:
            raise
        except Exception as exc:  # a pipeline failure must not take the caller down
            raise EngineRunError(f"engine {self.name} failed: {type(exc).__name__}: {exc}") from exc

    @abstractmethod
    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        """Call the pipeline once for all ``jobs``; images in job order, then seed order."""

    def _call_pipeline(
        self,
        pipeline: Any,
        jobs: Sequence[EngineJob],
        callback: Callable[..., Any],
        *,
        prompts: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> list[Image.Image]:
        """One diffusers ``__call__`` for ``jobs`` (one size and step count: a batch), with the
        arguments every family passes alike: the prompts (their cached embeddings unless
        ``prompts`` gives the pipeline's prompt arguments itself), size, steps, guidance, one
        generator per image, the step callback and the preset's arguments; ``extra`` adds the
        family's own (reference images)."""
        first = jobs[0]
        if prompts is None:
            prompts = self._prompt_kwargs(pipeline, [job.prompt for job in jobs for _ in job.seeds])
        output = pipeline(
            **prompts,
            **extra,
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=seed_generators(jobs),
            callback_on_step_end=callback,
            output_type="pil",
            **self.preset.call_kwargs,
        )
        return list(output.images)

    # --- cached text embeddings ----------------------------------------------------------------

    def _prompt_kwargs(
        self,
        pipeline: Any,
        prompts: Sequence[str],
        context: tuple[object, ...] = (),
        encode: Callable[[list[str]], list[Embedding]] | None = None,
    ) -> dict[str, Any]:
        """The pipeline arguments that carry ``prompts`` (one per image): their cached embeddings
        when the cache is on, else the prompts themselves. ``context`` is what else shapes the
        embeddings (conditioning images); ``encode`` replaces :meth:`_encode_prompts`."""
        if self._embeddings is None:
            return {"prompt": list(prompts)}
        key = (self.name, tuple(sorted(self.preset.call_kwargs.items())), *context)
        with torch.no_grad():  # as inside the pipeline: cached embeddings must hold no autograd graph
            embeddings = self._embeddings.embeddings(
                prompts, key, encode or (lambda missing: self._encode_prompts(pipeline, missing))
            )
        return self._embedding_kwargs(embeddings)

    # The two embedding hooks: a family implements both or neither (see caches_text_embeddings);
    # without them the cache is off for it, so these bodies are never reached.

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        """Run the text encoder on ``prompts`` as the pipeline would: one embedding each."""
        raise NotImplementedError(f"engine {self.name} does not cache text embeddings")

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        """One embedding per image, as the pipeline's ``prompt_embeds`` (and companions)."""
        raise NotImplementedError(f"engine {self.name} does not cache text embeddings")

    def _encoder_kwargs(self, pipeline: Any, *names: str) -> dict[str, Any]:
        """``encode_prompt`` arguments as ``__call__`` would pass them: the preset's, else the call's
        defaults (which differ from encode_prompt's own, e.g. Qwen's max_sequence_length)."""
        defaults = inspect.signature(type(pipeline).__call__).parameters
        return {name: self.preset.call_kwargs.get(name, defaults[name].default) for name in names}

    def _check_compatible(self, jobs: Sequence[EngineJob]) -> None:
        if not jobs:
            raise ValueError("run() needs at least one job")
        if len(jobs) > 1 and not self.capabilities.batchable:
            raise ValueError(f"engine {self.name} runs one job per call")
        if len({job.batch_key() for job in jobs}) > 1:
            raise ValueError("jobs in one run must share size, steps, guidance and input images")

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image | None:
        """Decode one image's in-progress latents (as ``callback_on_step_end`` sees them, in the
        family's own layout) to an image; None where the family makes no previews."""
        return None

    def _step_callback(
        self,
        job: EngineJob,
        on_step: StepCallback | None,
        should_stop: StopFlag | None,
        previews: Previews | None,
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
                    f"run on engine {self.name} was cancelled after step {step + 1} of {total} "
                    f"({time.monotonic() - started:.1f} s)",
                    step=step + 1,  # the task's `cancelled` event says how far it got
                )
            if previews is not None and step + 1 in previews.at_steps and sent < len(previews.at_steps):
                image = self._decode_preview(pipeline, tensors["latents"][:1], job)
                if image is not None:
                    previews.on_preview(sent, image)
                    sent += 1
            if on_step is not None:
                on_step(step + 1, total)
            return {}

        return callback

    def describe(self) -> dict[str, Any]:
        """A plain summary for listings (`plantain engines`)."""
        caps = self.capabilities
        status = self.weights_status()
        return {
            "name": self.name,
            "family": self.family,
            "pipeline": self.pipeline_class,
            "description": self.description,
            "tasks": caps.tasks(),
            "max_input_images": caps.max_input_images,
            "max_megapixels": round(caps.sizes.capped(self.settings.max_output_pixels).max_pixels / 1e6, 1),
            "max_aspect": caps.sizes.max_aspect,
            "batchable": caps.batchable,
            "steps": self.preset.steps,
            "guidance": self.preset.guidance,
            "weights": "present" if status.present else "missing",
            "buildable": status.buildable,
            "random_weights": self.random_weights,
            "location": status.location,
            "fast_path": (self.fast_path or self.plan_fast_path()).describe(),
            # "is None": an empty cache has length 0, so it is falsy
            "text_embedding_cache": None if self._embeddings is None else self._embeddings.describe(),
        }


_EMBEDDING_HOOKS = ("_encode_prompts", "_embedding_kwargs")


def _no_callback(pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    return {}


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


def _enlarge_to(image: Image.Image, min_side: int) -> Image.Image:
    """``image`` with its shorter side at least ``min_side`` (aspect kept; Nano Banana takes
    small inputs as they are)."""
    short = min(image.size)
    if short >= min_side:
        return image
    scale = min_side / short
    size = (max(min_side, round(image.width * scale)), max(min_side, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def inputs_digest(request: ImageRequest) -> str:
    """What identifies ``request``'s input images (their bytes as sent): jobs batch only when
    theirs are equal, and this is known without decoding them."""
    digest = hashlib.sha256()
    for image in request.images:
        digest.update(hashlib.sha256(image.data).digest())
    return digest.hexdigest()


def _split(images: list[Image.Image], counts: list[int]) -> list[list[Image.Image]]:
    if len(images) != sum(counts):
        raise EngineRunError(f"pipeline returned {len(images)} images, expected {sum(counts)}")
    out, start = [], 0
    for count in counts:
        out.append(images[start : start + count])
        start += count
    return out
