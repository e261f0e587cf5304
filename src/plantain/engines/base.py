"""The one engine contract every model family implements.

An engine declares what it can do (:class:`Capabilities`) and the sampler settings its checkpoint
wants (:class:`Preset`), turns a validated :class:`~plantain.types.ImageRequest` into an
:class:`EngineJob` (exact size, steps, seeds, decoded inputs), and runs one *or several
compatible* jobs in a single pipeline call, reporting each denoising step and honouring a stop
flag between steps. Family files (``flux2.py``, ``qwen_image.py``, …) implement ``_load`` and
``_generate``; everything else — validation, locking, progress, cancellation, error wrapping —
is done once, by :class:`Engine` and the modules it delegates to: ``jobs.py`` (the values),
``planning.py`` (request to job), ``running.py`` (the run and its step callback) and
``prompts.py`` (the text embedding cache).

The values and helpers those modules define are importable from here as well.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from plantain.engines.cards import card
from plantain.engines.fastpath import (
    AttentionMasks,
    EmbeddingCache,
    FastPath,
    apply_fast_path,
    plan_fast_path,
)
from plantain.engines.jobs import (
    Capabilities,
    EngineJob,
    InputLimits,
    NamedPreset,
    Preset,
    PreviewCallback,
    Previews,
    StepCallback,
    StopFlag,
    inputs_digest,
)
from plantain.engines.licences import Licence, check_accepted
from plantain.engines.loading import WeightsSource, WeightsStatus, pick_device
from plantain.engines.lora import Adapters
from plantain.engines.planning import check_size, check_task, plan_job, warmup_job
from plantain.engines.prompts import TextEmbeddingHooks, prompt_kwargs, refuse_stray_hooks
from plantain.engines.running import (
    check_compatible,
    decode_latents,
    no_callback,
    pipeline_errors,
    seed_generators,
    split_images,
    step_callback,
    warm_up,
)
from plantain.engines.step_cache import apply_step_cache, reset_step_cache
from plantain.engines.upscaling import upscale_images
from plantain.settings import Settings
from plantain.settings.extras import LoraSource
from plantain.types import ImageRequest

__all__ = [
    "Capabilities",
    "Engine",
    "EngineJob",
    "InputLimits",
    "NamedPreset",
    "Preset",
    "PreviewCallback",
    "Previews",
    "StepCallback",
    "StopFlag",
    "TextEmbeddingHooks",
    "decode_latents",
    "inputs_digest",
    "seed_generators",
]


class Engine(ABC):
    """A model family bound to one checkpoint. Loads once; ``run`` is safe to call from threads."""

    family: str = ""
    pipeline_class: str = ""
    attention_masks: AttentionMasks = "none"  # what its transformer masks: picks the attention kernel
    licence: Licence | None = None  # its weights' licence (engines/licences.py); None: not a checkpoint
    # Whether its run enlarges images to an UpscalePlan (Engine.run does): a remote provider or a
    # route, whose run is its own, makes only the sizes it declares.
    upscales: bool = True

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
        presets: Mapping[str, NamedPreset] | None = None,
        builtin_loras: Mapping[str, LoraSource] | None = None,
    ) -> None:
        refuse_stray_hooks(type(self))
        self.name = name
        self.settings = settings
        self.default_dtype = dtype  # used when the dtype setting is "auto"
        self.random_weights = random_weights  # a test/demo checkpoint: its images are noise
        self.description = description
        self.source = source
        self.capabilities = capabilities
        self.preset = preset
        self.presets: Mapping[str, NamedPreset] = dict(presets or {})  # picked by options.preset
        # LoRAs the engine itself names (a preset's); the setting loras adds to and overrides them.
        self.builtin_loras: Mapping[str, LoraSource] = dict(builtin_loras or {})
        self.adapters = Adapters(name, settings, self.allowed_loras)  # per-request LoRAs (lora.py)
        self._pipeline: Any = None
        self._lock = threading.Lock()  # one pipeline call at a time
        self._load_lock = threading.Lock()  # apart: "is it loaded?" must not wait for a run
        self.fast_path: FastPath | None = None  # what load applied
        capacity = settings.text_embedding_cache
        cached = capacity and self.caches_text_embeddings()
        self.text_embeddings = EmbeddingCache(capacity) if cached else None

    @property
    def allowed_loras(self) -> dict[str, LoraSource]:
        """The LoRAs a request may name for this engine: its own, then the operator's allow-list."""
        return {**self.builtin_loras, **self.settings.loras.get(self.name, {})}

    @classmethod
    def caches_text_embeddings(cls) -> bool:
        """Whether the family implements the embedding hooks (:class:`TextEmbeddingHooks`). One
        that does not runs with the cache off (its pipeline encodes the prompts)."""
        return issubclass(cls, TextEmbeddingHooks)

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
                check_accepted(self.name, self.licence, self.settings)
                pipeline = self._load()
                # Both before the fast path: hot-swap pads the LoRA layers to a rank, and the step
                # cache's hooks sit on the blocks, before either is compiled.
                self.adapters.prepare(pipeline)
                if (threshold := self.settings.step_cache.get(self.name)) is not None:
                    apply_step_cache(pipeline, threshold, engine=self.name)
                self.fast_path = apply_fast_path(pipeline, self.plan_fast_path(), engine=self.name)
                jobs = {entry: warmup_job(self, entry) for entry in self.fast_path.warmup_sizes}

                def generate(job: EngineJob) -> None:
                    with self._lock:
                        self._generate(pipeline, [job], no_callback)

                warm_up(self.name, jobs, generate)
                self._pipeline = pipeline

    def plan_fast_path(self) -> FastPath:
        return plan_fast_path(
            self.settings, pick_device(self.settings.device), attention_masks=self.attention_masks
        )

    @abstractmethod
    def _load(self) -> Any:
        """Build the diffusers pipeline from ``self.source`` on the chosen device."""

    # --- planning (planning.py) ----------------------------------------------------------------

    def plan(
        self,
        request: ImageRequest,
        images: Sequence[Image.Image],
        seed: int,
        *,
        max_output_pixels: int | None = None,
        mask: Image.Image | None = None,
    ) -> EngineJob:
        """Check ``request`` against the capabilities (pixels capped at ``max_output_pixels``,
        a server setting) and fix every number the run needs; ``mask`` is ``request.mask`` decoded."""
        return plan_job(self, request, images, seed, max_output_pixels, mask)

    def check_size(self, request: ImageRequest, *, max_output_pixels: int | None = None) -> None:
        """Refuse an output size this engine cannot make, where it is known without decoding an
        input: an edit that asks for no aspect ratio takes its input's shape, checked by :meth:`plan`."""
        check_size(self, request, max_output_pixels)

    def check_task(self, request: ImageRequest) -> None:
        """Refuse what this engine cannot do, before any input is decoded or weights loaded."""
        check_task(self, request)

    # --- running (running.py) ------------------------------------------------------------------

    def run(
        self,
        jobs: Sequence[EngineJob],
        on_step: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        previews: Previews | None = None,
    ) -> list[list[Image.Image]]:
        """Run compatible ``jobs`` in one pipeline call; returns each job's images in seed order."""
        check_compatible(self.name, self.capabilities.batchable, jobs)
        self.load()
        with self._lock:  # the callback's clock starts once the run has the pipeline
            callback = step_callback(self.name, jobs[0], on_step, should_stop, previews, self._decode_preview)
            with pipeline_errors(self.name):
                self.adapters.apply(self._pipeline, jobs[0].loras)  # one set per batch (batch_key)
                reset_step_cache(self._pipeline)  # a stopped run leaves the cache's state behind
                images = self._generate(self._pipeline, jobs, callback)
                made = split_images(images, [len(job.seeds) for job in jobs])
                # Batched jobs share their upscale plan (batch_key), each image is enlarged alone.
                return [
                    upscale_images(self, self._pipeline, job, group)
                    for job, group in zip(jobs, made, strict=True)
                ]

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
        guidance: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> list[Image.Image]:
        """One diffusers ``__call__`` for ``jobs`` (one size and step count: a batch), with the
        arguments every family passes alike: the prompts (their cached embeddings unless
        ``prompts`` gives the pipeline's prompt arguments itself), size, steps, guidance, one
        generator per image, the step callback and the preset's arguments. ``guidance`` replaces
        ``guidance_scale`` and the preset's arguments for a family that guides otherwise (Qwen's
        true CFG); ``extra`` adds the family's own (reference images)."""
        first = jobs[0]
        if prompts is None:
            prompts = prompt_kwargs(self, pipeline, [job.prompt for job in jobs for _ in job.seeds])
        if guidance is None:
            guidance = {"guidance_scale": first.guidance, **self.preset.call_kwargs}
        output = pipeline(
            **prompts,
            **extra,
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            generator=seed_generators(jobs),
            callback_on_step_end=callback,
            output_type="pil",
            **guidance,
        )
        return list(output.images)

    @property
    def device(self) -> torch.device:
        """The device the engine runs on (setting ``device``)."""
        return pick_device(self.settings.device)

    def refine_tile(
        self, pipeline: Any, tile: Image.Image, job: EngineJob, seed: int, strength: float
    ) -> Image.Image:
        """Repaint one tile of an upscaled image at ``strength`` (img2img, the job's prompt), for
        ``upscale_refine_strength``; a family with an img2img pipeline overrides it."""
        raise NotImplementedError(f"engine {self.name} has no img2img pipeline to refine with")

    @property
    def can_refine(self) -> bool:
        """Whether upscaled images can be refined by this engine (it overrides ``refine_tile``)."""
        return type(self).refine_tile is not Engine.refine_tile

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image | None:
        """Decode one image's in-progress latents (as ``callback_on_step_end`` sees them, in the
        family's own layout) to an image; by default None: the family makes no previews."""
        return None

    @property
    def makes_previews(self) -> bool:
        """Whether a run can show its in-progress images (the family decodes its latents)."""
        return type(self)._decode_preview is not Engine._decode_preview

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
            "text_embedding_cache": None if self.text_embeddings is None else self.text_embeddings.describe(),
            "inputs": {
                "max_images": caps.max_input_images,
                "min_side": caps.inputs.min_side,
                "max_aspect": None if caps.inputs.max_aspect == float("inf") else caps.inputs.max_aspect,
                "inpaint_max_images": caps.inpaint_max_images,
            },
            **card(self),
        }
