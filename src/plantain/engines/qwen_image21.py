"""Qwen-Image-2.1 (``QwenImage21Pipeline``): text-to-image and editing of up to 10 images, native 2K.

One checkpoint serves the whole Nano Banana feature set: with no ``image`` it generates, with 1–10
reference images it edits or combines them. A 7B single-stream DiT reads one sequence in which a
Qwen3-VL 8B encoder has interleaved the prompt and the reference images; the VAE compresses 16x
into 64 channels of RGBA. Its weights are under the Qwen Research License (non-commercial): the
engine serves only once the operator accepts ``qwen-research`` (``engines/licences.py``).

What the engine does around the diffusers 0.42.1 pipeline:

- **Text embedding cache.** ``encode_prompt`` returns, beside the embeddings and their mask, an
  ``image_pad_mask`` saying which positions hold reference-image tokens; ``__call__`` takes cached
  ``prompt_embeds`` but has no argument for that mask, and refuses embeddings of an edit without
  it. For one call, the pipeline's ``encode_prompt`` is wrapped to hand the cached mask back
  (:func:`_cached_image_pad_masks`), under the engine's run lock.
- **Conditioning resolution.** Every reference is resized to ``output_resolution``² pixels of
  area (the pipeline's default 1024) for both the vision encoder and the VAE. A checkpoint may
  declare another in ``plantain_conditioning.json`` (the tiny one does: 64², so ten references
  stay cheap on a CPU); both areas there must be equal, as this pipeline resizes once.
- **Processor without torchvision.** ``Qwen3VLProcessor`` carries a video processor that
  transformers can only build with torchvision; without it the processor is loaded without
  (:func:`qwen3_vl_processor_class`), as for Qwen-Image-Edit.
- **Alpha.** The pipeline returns RGBA. An image the model made fully opaque is handed on as RGB;
  one with transparency keeps its alpha (the model makes cut-outs when asked).
- **Steps.** A checkpoint may ship its own sigma grid (``sample_sigmas``), which would override
  ``num_inference_steps``; a request for another step count gets that grid resampled.

No mask input: the pipeline has none (the model card's "separate masks" are reference images
described in the prompt), so ``inpaint_max_images`` is 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.fastpath import AttentionMasks, Embedding, stack_padded
from plantain.engines.jobs import Capabilities, EngineJob, InputLimits, Preset
from plantain.engines.licences import QWEN_RESEARCH
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks, prompt_kwargs
from plantain.engines.qwen_conditioning import processor_override, read_conditioning
from plantain.engines.qwen_image import qwen_decode_preview
from plantain.engines.qwen_image21_tiny import TINY_CALL_KWARGS, build_tiny_qwen_image21
from plantain.errors import EngineLoadError
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

HUB_ID = "Qwen/Qwen-Image-2.1"

# github.com/QwenLM/Qwen-Image-2.1 README ("Default Parameters", every quick start): 40 steps; the
# pipeline's docstring: "meant to be sampled without guidance" (true_cfg_scale 1.0, as the README's
# SGLang example passes --guidance-scale 1). A guidance above 1 turns true CFG on with NEGATIVE_PROMPT.
PRESET = Preset(steps=40, guidance=1.0)

NEGATIVE_PROMPT = " "  # as the other Qwen engines: the Qwen-Image README's "no negative prompt"

DEFAULT_CONDITION_RESOLUTION = 1024  # QwenImage21Pipeline.__call__'s output_resolution default

# The README's recommended 2K sizes go up to 2400x1792 (4.3 MP; 2048², 2752x1536, 2528x1696 …),
# every side a multiple of 32 (16x VAE, one vision token per 2x2 latents: the pipeline rounds down
# to 32). 4K is not native.
SIZES = SizeLimits(multiple=32, min_side=256, max_pixels=2400 * 1792, max_aspect=4.0)

CAPABILITIES = Capabilities(
    text_to_image=True,
    edit=True,
    max_input_images=10,  # README: "Support up to 10 reference images"
    sizes=SIZES,
    # One set of references is shared by every prompt of a call, which is what a batch is (same
    # inputs digest). Each reference is resized to the conditioning area with sides rounded to 32:
    # a very elongated one rounds a side to 0 (20:1 at the tiny checkpoint's 64²); 8:1 is safe.
    inputs=InputLimits(max_aspect=8.0),
)


class QwenImage21Engine(Engine, TextEmbeddingHooks):
    family = "qwen-image-2.1"
    pipeline_class = "QwenImage21Pipeline"
    licence = QWEN_RESEARCH
    # A shorter prompt's padding sits between its text and the target image's tokens.
    attention_masks: AttentionMasks = "inner"

    condition_resolution: int = DEFAULT_CONDITION_RESOLUTION  # the checkpoint's, read on load

    def _load(self) -> Any:
        from diffusers import QwenImage21Pipeline

        self.source.resolve()  # a missing checkpoint fails here, before any file is read
        directory = self.source.local_path()
        self.condition_resolution = read_condition_resolution(directory) or DEFAULT_CONDITION_RESOLUTION
        return load_pipeline(
            QwenImage21Pipeline,
            self.source,
            self.settings,
            default_dtype=self.default_dtype,
            **self._processor_override(directory),
        )

    def _processor_override(self, directory: Path) -> dict[str, Any]:
        """Without torchvision, load the processor without its video half (stock loading fails)."""
        return processor_override(self.name, directory, qwen3_vl_processor_class())

    # --- running ---------------------------------------------------------------------------------

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        first = jobs[0]  # a batch shares its references (same inputs digest) and its size
        prompts = [job.prompt for job in jobs for _ in job.seeds]
        negative = [NEGATIVE_PROMPT] * len(prompts) if first.guidance > 1.0 else None
        encoded = self._prompt_arguments(pipeline, prompts, negative, first)
        guidance = {"true_cfg_scale": first.guidance, **self.preset.call_kwargs}
        with _cached_image_pad_masks(pipeline, encoded):
            images = self._call_pipeline(
                pipeline,
                jobs,
                callback,
                prompts=encoded,
                guidance=guidance,
                image=list(first.images) or None,
                output_resolution=self.condition_resolution,
                **step_sigmas(pipeline, first.steps),
            )
        return [as_made(image) for image in images]

    def _prompt_arguments(
        self, pipeline: Any, prompts: list[str], negative: list[str] | None, job: EngineJob
    ) -> dict[str, Any]:
        """The prompt (and, with true CFG, negative prompt) arguments: cached embeddings when the
        cache is on. An edit's embeddings hold its references as the encoder saw them, so the
        references and the area they were resized to are part of the cache key."""
        if self.text_embeddings is None:
            return {"prompt": prompts, **({"negative_prompt": negative} if negative else {})}
        context: tuple[object, ...] = ()
        encode: Callable[[list[str]], list[Embedding]] | None = None
        if job.images:
            resolution = self.condition_resolution
            context = (job.inputs_digest, resolution)

            def encode(missing: list[str]) -> list[Embedding]:
                references = condition_images(pipeline, job.images, resolution)
                return qwen21_rows(*pipeline.encode_prompt(prompt=missing, image=references))

        kwargs = prompt_kwargs(self, pipeline, prompts, context, encode)
        if negative:
            negative_kwargs = prompt_kwargs(self, pipeline, negative, context, encode)
            kwargs |= {f"negative_{name}": value for name, value in negative_kwargs.items()}
        return kwargs

    # --- text embedding cache hooks ----------------------------------------------------------

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        return qwen21_rows(*pipeline.encode_prompt(prompt=prompts))

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        embeds, mask = stack_padded([embedding[0] for embedding in embeddings])
        pads, _ = stack_padded([embedding[1] for embedding in embeddings])
        return {"prompt_embeds": embeds, "prompt_embeds_mask": mask, "image_pad_mask": pads}

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        # The same unpacking and per-channel normalisation as Qwen-Image (2.1's latents are merely
        # unpatched), then the same alpha rule as the final image.
        return as_made(qwen_decode_preview(pipeline, latents, job))


# --- what the pipeline does to its inputs and outputs ------------------------------------------


def qwen21_rows(embeds: torch.Tensor, mask: torch.Tensor | None, pads: torch.Tensor) -> list[Embedding]:
    """``encode_prompt``'s output as one unpadded (embeddings, image-token mask) pair per prompt."""
    lengths = [embeds.shape[1]] * embeds.shape[0] if mask is None else mask.sum(dim=1).tolist()
    return [(embeds[index, : int(n)], pads[index, : int(n)]) for index, n in enumerate(lengths)]


def condition_images(pipeline: Any, images: Sequence[Image.Image], resolution: int) -> list[Image.Image]:
    """The references as ``QwenImage21Pipeline.__call__`` hands them to ``encode_prompt``: RGBA,
    resized to ``resolution``² pixels of area with sides multiples of 32, aspect kept."""
    from diffusers.pipelines.qwenimage21.pipeline_qwenimage21 import calculate_dimensions

    resized = []
    for image in images:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        width, height, _ = calculate_dimensions(resolution * resolution, rgba.width / rgba.height)
        resized.append(pipeline.image_processor.resize(rgba, width=width, height=height))
    return resized


@contextmanager
def _cached_image_pad_masks(pipeline: Any, kwargs: dict[str, Any]) -> Iterator[None]:
    """Take the image-token masks out of ``kwargs`` (``__call__`` has no argument for them) and
    hand each back to ``encode_prompt`` with the embeddings it belongs to, for one call."""
    pairs = [
        (kwargs.get(f"{side}prompt_embeds"), kwargs.pop(f"{side}image_pad_mask"))
        for side in ("", "negative_")
        if f"{side}image_pad_mask" in kwargs
    ]
    if not pairs:
        yield
        return
    stock = type(pipeline).encode_prompt

    def encode_prompt(*args: Any, **call: Any) -> Any:
        embeds = call.get("prompt_embeds")
        for tensor, pads in pairs:
            if embeds is not None and embeds is tensor and call.get("image_pad_mask") is None:
                call["image_pad_mask"] = pads.bool()
        return stock(pipeline, *args, **call)

    pipeline.encode_prompt = encode_prompt  # the instance only, and the run lock is held
    try:
        yield
    finally:
        del pipeline.encode_prompt


def step_sigmas(pipeline: Any, steps: int) -> dict[str, Any]:
    """``sigmas`` for a call of ``steps`` steps: none where the pipeline's own grid has that many
    (its ``sample_sigmas``, else ``num_inference_steps`` evenly spaced); else the checkpoint's grid
    resampled to ``steps`` points, which keeps its shape (a shipped grid overrides the step count)."""
    grid = pipeline.config.get("sample_sigmas")
    if not grid or len(grid) == steps:
        return {}
    positions = np.linspace(0, len(grid) - 1, steps)
    return {"sigmas": np.interp(positions, np.arange(len(grid)), np.asarray(grid, dtype=float)).tolist()}


def as_made(image: Image.Image) -> Image.Image:
    """The pipeline's RGBA image as RGB when the model made it fully opaque; with alpha otherwise."""
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] == 255:
        return image.convert("RGB")
    return image


def read_condition_resolution(directory: Path) -> int | None:
    """The conditioning side a checkpoint declares in ``plantain_conditioning.json``; None: none."""
    areas = read_conditioning(directory)
    if areas is None:
        return None
    side = math.isqrt(areas.vae_image_area)
    if areas.vae_image_area != areas.condition_image_area or side * side != areas.vae_image_area:
        raise EngineLoadError(
            f"{directory}: QwenImage21Pipeline resizes each reference once for both encoders, so "
            "vae_image_area and condition_image_area must be one square area; got "
            f"{areas.vae_image_area} and {areas.condition_image_area}"
        )
    return side


@functools.cache
def qwen3_vl_processor_class() -> Any:
    """``Qwen3VLProcessor`` without its video processor, which needs torchvision to load."""
    from transformers import Qwen3VLProcessor

    class Qwen3VLProcessorNoVideo(Qwen3VLProcessor):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return ["image_processor", "tokenizer"]

    # Saved checkpoints must name the stock class in model_index.json, for loaders with torchvision.
    Qwen3VLProcessorNoVideo.__name__ = Qwen3VLProcessorNoVideo.__qualname__ = "Qwen3VLProcessor"
    Qwen3VLProcessorNoVideo.__module__ = Qwen3VLProcessor.__module__
    return Qwen3VLProcessorNoVideo


# --- the engine --------------------------------------------------------------------------------


def create(name: str, settings: Settings) -> QwenImage21Engine:
    """The Qwen-Image-2.1 engine, from ``--weights``/settings or the hub cache."""
    return QwenImage21Engine(
        name,
        settings,
        description="Qwen-Image-2.1: text-to-image and editing of up to 10 images, native 2K, strong "
        "text rendering (Qwen Research License: non-commercial)",
        source=WeightsSource.hub(name, settings, HUB_ID, size_hint="about 32 GB"),
        capabilities=CAPABILITIES,
        preset=PRESET,
    )


FAMILIES = (Family("qwen-image-2.1", create, HUB_ID, build_tiny_qwen_image21, TINY_CALL_KWARGS),)
