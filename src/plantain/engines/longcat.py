"""LongCat-Image: ``longcat-image`` (text-to-image) and ``longcat-image-edit`` (editing one image).

Meituan's two Apache-2.0 checkpoints of one 6B MM-DiT with a Qwen2.5-VL-7B text encoder and
FLUX.1's 16-channel VAE (the edit model is the text-to-image one trained further), strong at
rendering Chinese and English text: text inside quotation marks is encoded character by character.
Both run classifier-free guidance against the empty negative prompt.

The pipelines of diffusers 0.42.1 need four accommodations, made here for one call at a time:

- neither takes ``callback_on_step_end``: steps are reported (progress, cancel, previews) by
  wrapping the scheduler's ``step`` (:func:`reported_steps`);
- ``prompt_embeds`` cannot be passed (``encode_prompt`` takes ``len(None)``), so the text embedding
  cache answers the pipeline's own ``_encode_prompt`` instead (:func:`encoder_answers`);
- the edit pipeline picks its output size itself (the input's shape at 1024² pixels, a literal in
  ``__call__``): its ``calculate_dimensions`` is made to return the planned size (:func:`edit_size`),
  and the input is cropped to the planned shape first (the model edits pixel-aligned, so a
  stretched input would give a stretched picture);
- the edit pipeline fails (``len(len(...))``) on a prompt of more than 512 tokens where the
  text-to-image one truncates it: the edit's prompt is cut to fit first (:func:`fit_prompt`).

The text-to-image pipeline rewrites each prompt with its own text encoder before encoding it (the
model's default, ``enable_prompt_rewrite``); here that happens inside the cached encoding, so a
repeated prompt is rewritten once. ``longcat_tiny.py`` builds both architectures at tiny size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageOps

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.fastpath import Embedding, rows
from plantain.engines.jobs import Capabilities, EngineJob, InputLimits, Preset
from plantain.engines.licences import APACHE_2
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.longcat_tiny import build_tiny_longcat_image, build_tiny_longcat_image_edit
from plantain.engines.prompts import TextEmbeddingHooks, prompt_kwargs
from plantain.engines.qwen_conditioning import no_video_processor_class
from plantain.engines.running import decode_latents, seed_generators
from plantain.errors import EngineLoadError
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

HUB_ID = "meituan-longcat/LongCat-Image"
EDIT_HUB_ID = "meituan-longcat/LongCat-Image-Edit"

# The model's examples (diffusers' EXAMPLE_DOC_STRING of both pipelines, from the model cards; the
# edit one also in the authors' scripts/inference_edit.py): 50 steps at guidance 4.5, the
# text-to-image one with cfg renorm; prompt rewriting is the pipeline's and the card's default.
PRESET = Preset(
    steps=50, guidance=4.5, call_kwargs={"enable_cfg_renorm": True, "enable_prompt_rewrite": True}
)
EDIT_PRESET = Preset(steps=50, guidance=4.5)

# The rewrite generates up to 512 tokens with the text encoder: seconds even at tiny size.
TINY_CALL_KWARGS = {"enable_prompt_rewrite": False}

NEGATIVE_PROMPT = ""  # the pipelines' default and the authors' scripts'

# 16 px: 8x VAE, 2x2 packing. The edit pipeline works at 1024² pixels (its own choice of size) and
# the text-to-image one defaults to 1024x1024 (1344x768 in its example): no 2K.
LONGCAT_SIZES = SizeLimits(multiple=16, min_side=256, max_pixels=1024 * 1024, max_aspect=4.0)

CAPABILITIES = Capabilities(text_to_image=True, edit=False, max_input_images=0, sizes=LONGCAT_SIZES)

EDIT_CAPABILITIES = Capabilities(
    text_to_image=False,
    edit=True,
    max_input_images=1,  # the pipeline takes one image (its latents sit beside the output's)
    sizes=LONGCAT_SIZES,
    batchable=False,  # one prompt per call: the pipeline refuses a list of several
    inputs=InputLimits(max_aspect=8.0),  # cropped to at most 4:1, an 8:1 input keeps half of itself
)


class LongCatImageEngine(Engine, TextEmbeddingHooks):
    family = "longcat-image"
    pipeline_class = "LongCatImagePipeline"
    licence = APACHE_2
    attention_masks = "none"  # prompts are padded to 512 tokens and attended unmasked, as trained

    def _load(self) -> Any:
        from diffusers import LongCatImagePipeline

        return self._load_class(LongCatImagePipeline)

    def _load_class(self, pipeline_cls: Any) -> Any:
        self.source.resolve()  # a missing checkpoint fails here, before any file is read
        overrides = _processor_override(self.name, self.source.local_path())
        return load_pipeline(
            pipeline_cls, self.source, self.settings, default_dtype=self.default_dtype, **overrides
        )

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        first = jobs[0]
        prompts = [job.prompt for job in jobs for _ in job.seeds]
        # One negative per image: the pipeline encodes a lone "" as a batch of one and then fails.
        negatives = [NEGATIVE_PROMPT] * len(prompts)
        kwargs = dict(self.preset.call_kwargs)
        answers: dict[tuple[str, ...], torch.Tensor] = {}
        if self.text_embeddings is not None:
            kwargs["enable_prompt_rewrite"] = False  # the cached encoding rewrote them
            if first.guidance > 1.0:
                answers[tuple(negatives)] = self._cached(pipeline, negatives, ("negative",), self._plain)
            answers[tuple(prompts)] = self._cached(pipeline, prompts, (), None)
        with reported_steps(pipeline, callback), encoder_answers(pipeline, answers):
            output = pipeline(
                prompt=prompts,
                negative_prompt=negatives,
                height=first.height,
                width=first.width,
                num_inference_steps=first.steps,
                guidance_scale=first.guidance,
                generator=seed_generators(jobs),
                output_type="pil",
                **kwargs,
            )
        return list(output.images)

    def _cached(
        self,
        pipeline: Any,
        prompts: list[str],
        context: tuple[object, ...],
        encode: Callable[[Any, list[str]], list[Embedding]] | None,
    ) -> torch.Tensor:
        """``prompts``' embeddings as one batch, through the cache (``encode``: the hook's stand-in)."""
        encoder = None if encode is None else (lambda missing: encode(pipeline, missing))
        embeds: torch.Tensor = prompt_kwargs(self, pipeline, prompts, context, encoder)["prompt_embeds"]
        return embeds

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        """The prompts as the pipeline would encode them: rewritten first where the preset says."""
        if self.preset.call_kwargs.get("enable_prompt_rewrite", False):
            prompts = pipeline.rewire_prompt(prompts, pipeline._execution_device)
        return self._plain(pipeline, prompts)

    @staticmethod
    def _plain(pipeline: Any, prompts: list[str]) -> list[Embedding]:
        return rows(pipeline._encode_prompt(prompts))

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        return {"prompt_embeds": torch.cat([embedding[0] for embedding in embeddings])}

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        # What both pipelines do after their loop: unpack the 2x2 patches, undo the VAE's scaling.
        unpacked = pipeline._unpack_latents(latents, job.height, job.width, pipeline.vae_scale_factor)
        config = pipeline.vae.config
        return decode_latents(pipeline, unpacked / config.scaling_factor + config.shift_factor)


class LongCatImageEditEngine(LongCatImageEngine):
    family = "longcat-image-edit"
    pipeline_class = "LongCatImageEditPipeline"

    def _load(self) -> Any:
        from diffusers import LongCatImageEditPipeline

        return self._load_class(LongCatImageEditPipeline)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        job = jobs[0]  # not batchable: base.Engine.run hands over exactly one job
        size = (job.width, job.height)
        image = ImageOps.fit(job.images[0].convert("RGB"), size, Image.Resampling.LANCZOS)
        prompt = fit_prompt(pipeline, job.prompt)
        answers: dict[tuple[str, ...], torch.Tensor] = {}
        if self.text_embeddings is not None:
            # What the pipeline shows its vision encoder: the input at half the output's sides.
            seen = pipeline.image_processor.resize(image, job.height // 2, job.width // 2)
            context = (job.inputs_digest, size)
            if job.guidance > 1.0:
                answers[(NEGATIVE_PROMPT,)] = self._edit_embeds(pipeline, NEGATIVE_PROMPT, seen, context)
            answers[(prompt,)] = self._edit_embeds(pipeline, prompt, seen, context)
        with reported_steps(pipeline, callback), encoder_answers(pipeline, answers), edit_size(size):
            output = pipeline(
                image=image,
                prompt=prompt,
                negative_prompt=NEGATIVE_PROMPT,
                num_inference_steps=job.steps,
                guidance_scale=job.guidance,
                num_images_per_prompt=len(job.seeds),  # one generator each: image k is seed k's
                generator=seed_generators(jobs),
                output_type="pil",
                **self.preset.call_kwargs,
            )
        return list(output.images)

    def _edit_embeds(
        self, pipeline: Any, prompt: str, seen: Image.Image, context: tuple[object, ...]
    ) -> torch.Tensor:
        """One prompt's embeddings with the input image (its vision tokens are part of them)."""

        def encode(pipeline: Any, missing: list[str]) -> list[Embedding]:
            return [(pipeline._encode_prompt([text], seen),) for text in missing]

        return self._cached(pipeline, [prompt], context, encode)

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        # The edit's embeddings hold its input image's vision tokens: _edit_embeds passes the
        # cache an encoder that has the image; text alone is never encoded.
        raise NotImplementedError("the edit engine encodes prompts with their input image")


def _processor_override(engine: str, directory: Path) -> dict[str, Any]:
    """Without torchvision, the processor is loaded without its video half (stock loading fails).
    The authors' own scripts load it from the ``tokenizer`` folder; diffusers' from its own."""
    from transformers import is_torchvision_available

    if is_torchvision_available():
        return {}
    folder = directory / "text_processor"
    if not folder.is_dir():
        folder = directory / "tokenizer"
    try:
        return {"text_processor": no_video_processor_class().from_pretrained(folder)}
    except Exception as exc:  # a broken or missing folder: one sentence, like load_pipeline
        raise EngineLoadError(
            f"engine {engine} could not load the text processor in {folder}: {type(exc).__name__}: {exc}"
        ) from exc


# --- per-call adjustments of the pipelines -------------------------------------------------------


@contextmanager
def reported_steps(pipeline: Any, callback: Callable[..., Any]) -> Iterator[None]:
    """Call ``callback`` as diffusers' ``callback_on_step_end`` would (pipeline, step index,
    timestep, {"latents": …}) after each scheduler step; what it returns is ignored. The wrapper
    is an attribute of this scheduler object, removed after the call (runs hold the engine lock)."""
    scheduler = pipeline.scheduler
    original = scheduler.step
    steps = count()

    def step(model_output: Any, timestep: Any, sample: Any, *args: Any, **kwargs: Any) -> Any:
        output = original(model_output, timestep, sample, *args, **kwargs)
        latents = output[0] if isinstance(output, tuple) else output.prev_sample
        callback(pipeline, next(steps), timestep, {"latents": latents})
        return output

    scheduler.step = step
    try:
        yield
    finally:
        vars(scheduler).pop("step", None)


@contextmanager
def encoder_answers(pipeline: Any, answers: Mapping[tuple[str, ...], torch.Tensor]) -> Iterator[None]:
    """Make the pipeline's ``_encode_prompt`` answer from ``answers`` (embeddings by the prompts
    the pipeline asks for) during one call; nothing changes when ``answers`` is empty."""
    if not answers:
        yield
        return

    def lookup(prompts: list[str], *args: Any) -> torch.Tensor:
        return answers[tuple(prompts)]

    pipeline._encode_prompt = lookup
    try:
        yield
    finally:
        vars(pipeline).pop("_encode_prompt", None)


# ``calculate_dimensions`` is a global of one diffusers module, shared by every edit engine here.
_EDIT_SIZE_LOCK = threading.Lock()


@contextmanager
def edit_size(size: tuple[int, int]) -> Iterator[None]:
    """Make the edit pipeline work at ``size`` (width, height) for one call, instead of at the
    input's shape scaled to 1024² pixels."""
    import diffusers.pipelines.longcat_image.pipeline_longcat_image_edit as edit_module

    with _EDIT_SIZE_LOCK:
        saved = edit_module.calculate_dimensions
        edit_module.calculate_dimensions = lambda area, ratio: size
        try:
            yield
        finally:
            edit_module.calculate_dimensions = saved


def fit_prompt(pipeline: Any, prompt: str) -> str:
    """``prompt``, cut to the longest start the edit pipeline encodes in its 512 tokens (counted
    as it counts them: quoted text character by character)."""
    limit = pipeline.tokenizer_max_length
    if _token_count(pipeline, prompt) <= limit:
        return prompt
    low, high = 0, len(prompt)  # the longest fitting start is low characters long
    while low < high:
        middle = (low + high + 1) // 2
        if _token_count(pipeline, prompt[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return prompt[:low]


def _token_count(pipeline: Any, prompt: str) -> int:
    from diffusers.pipelines.longcat_image.pipeline_longcat_image_edit import split_quotation

    total = 0
    for part, quoted in split_quotation(prompt):
        pieces = list(part) if quoted else [part]
        total += sum(
            len(pipeline.tokenizer(piece, add_special_tokens=False)["input_ids"]) for piece in pieces
        )
    return total


# --- engines -----------------------------------------------------------------------------------


def create(name: str, settings: Settings) -> LongCatImageEngine:
    """The LongCat-Image text-to-image engine, from ``--weights``/settings or the hub cache."""
    return LongCatImageEngine(
        name,
        settings,
        description="LongCat-Image: 6B text-to-image with strong Chinese and English text rendering",
        source=WeightsSource.hub(name, settings, HUB_ID, size_hint="about 29 GB"),
        capabilities=CAPABILITIES,
        preset=PRESET,
    )


def create_edit(name: str, settings: Settings) -> LongCatImageEditEngine:
    """The LongCat-Image-Edit engine: edits one image, keeping what the prompt does not change."""
    return LongCatImageEditEngine(
        name,
        settings,
        description="LongCat-Image-Edit: 6B editing of one image, strong text editing, consistent",
        source=WeightsSource.hub(name, settings, EDIT_HUB_ID, size_hint="about 29 GB"),
        capabilities=EDIT_CAPABILITIES,
        preset=EDIT_PRESET,
    )


FAMILIES = (
    Family("longcat-image-edit", create_edit, EDIT_HUB_ID, build_tiny_longcat_image_edit),
    Family("longcat-image", create, HUB_ID, build_tiny_longcat_image, TINY_CALL_KWARGS),
)
