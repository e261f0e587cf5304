"""Qwen-Image: ``qwen-image`` (text-to-image) and ``qwen-image-edit`` (editing and fusion of 1–3 images).

Two Apache-2.0 checkpoints of the same 20B MMDiT with a Qwen2.5-VL-7B text encoder (about 58 GB
in bfloat16): Qwen-Image-2512 generates, with strong text rendering; Qwen-Image-Edit-2511 edits
one image or fuses up to three. Both run true classifier-free
guidance: the preset's ``guidance`` is the pipelines' ``true_cfg_scale``, paired with the
negative prompt ``" "`` the model cards use when the caller has none.

``QwenImageEditPlusPipeline`` needs three accommodations in diffusers 0.42.1:

- it refuses a batch of more than one prompt, so a job with several seeds calls it once per seed
  (here);
- its processor carries a video processor, which transformers can only build with torchvision;
  without torchvision the processor is loaded without it (``qwen_conditioning.py``);
- the areas it resizes every input to (1024² for the VAE, 384² for the vision encoder) are module
  constants. An engine may set its own (``ConditioningAreas``, declared by a checkpoint in
  ``plantain_conditioning.json``, as the tiny one does); they are applied for the call only
  (``qwen_conditioning.py``).

``build_tiny_qwen_image`` and ``build_tiny_qwen_image_edit`` (the family records' ``build_tiny``,
in ``qwen_image_tiny.py``) build both architectures at tiny size with random weights, for tests
and CPU benchmarks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.family import Family
from plantain.engines.fastpath import AttentionMasks, Embedding, stack_padded
from plantain.engines.jobs import Capabilities, EngineJob, InputLimits, NamedPreset, Preset
from plantain.engines.licences import APACHE_2
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.lora import fuse
from plantain.engines.prompts import TextEmbeddingHooks, encoder_kwargs, prompt_kwargs
from plantain.engines.qwen_conditioning import (
    ConditioningAreas,
    condition_images,
    conditioning_areas,
    no_video_processor_class,
    processor_override,
    read_conditioning,
)
from plantain.engines.qwen_image_tiny import build_tiny_qwen_image, build_tiny_qwen_image_edit
from plantain.engines.running import decode_latents, seed_generators
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings
from plantain.settings.extras import LoraSource

QWEN_IMAGE_HUB_ID = "Qwen/Qwen-Image-2512"
QWEN_IMAGE_EDIT_HUB_ID = "Qwen/Qwen-Image-Edit-2511"

# lightx2v's step-distilled LoRA for Edit-2511 (Apache-2.0): 4 steps without CFG instead of 40 with
# it (its model card: num_inference_steps=4, true_cfg_scale=1.0).
LIGHTNING_LORA = LoraSource(
    source="lightx2v/Qwen-Image-Edit-2511-Lightning",
    weight_name="Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors",
)
LIGHTNING = "lightning"  # its name as a preset and in the engine's LoRA list
LIGHTNING_DIR = "lightning"  # a local checkpoint may carry the LoRA in this subfolder (the tiny one does)

# Model cards / github.com/QwenLM/Qwen-Image README quick starts: 2512 runs 50 steps at
# true_cfg_scale 4; Edit-2511 runs 40 steps at true_cfg_scale 4 and guidance_scale 1.
QWEN_IMAGE_PRESET = Preset(steps=50, guidance=4.0)
QWEN_IMAGE_EDIT_PRESET = Preset(steps=40, guidance=4.0, call_kwargs={"guidance_scale": 1.0})
LIGHTNING_STEPS = 4
QWEN_IMAGE_EDIT_LIGHTNING_PRESET = replace(QWEN_IMAGE_EDIT_PRESET, steps=LIGHTNING_STEPS, guidance=1.0)
# The same, picked per request on qwen-image-edit (options.preset "lightning"): the LoRA as an adapter.
LIGHTNING_NAMED_PRESET = NamedPreset(
    steps=LIGHTNING_STEPS,
    guidance=1.0,
    loras=((LIGHTNING, 1.0),),
    description="lightx2v's Lightning LoRA: 4 steps without CFG (about 10x fewer transformer passes)",
)

NEGATIVE_PROMPT = " "  # the README's choice "if you don't use a negative prompt"; it turns true CFG on

QWEN_SIZES = SizeLimits(
    multiple=16,  # 8x VAE, 2x2 patches
    min_side=256,  # replicate.com/qwen/qwen-image-2512 takes sides of 256-2048 px, multiples of 16
    max_pixels=1328 * 1328,  # the largest of the README's native presets (1328², 1664x928, …): no 2K
    max_aspect=4.0,
)

QWEN_IMAGE_CAPABILITIES = Capabilities(text_to_image=True, edit=False, max_input_images=0, sizes=QWEN_SIZES)

QWEN_IMAGE_EDIT_CAPABILITIES = Capabilities(
    text_to_image=False,
    edit=True,
    max_input_images=3,  # Edit-2509/2511 cards: multi-image editing is best with 1 to 3 images
    sizes=QWEN_SIZES,
    batchable=False,  # the pipeline raises on batch size > 1
    # Each input is resized to fixed areas with sides rounded to 32: a very elongated one rounds a
    # side to 0 and the pipeline fails (15:1 on the tiny checkpoint's areas). 8:1 is safe at any
    # area and as wide as any Nano Banana aspect ratio.
    inputs=InputLimits(max_aspect=8.0),
)

# --- text-to-image -----------------------------------------------------------------------------


class QwenImageEngine(Engine, TextEmbeddingHooks):
    family = "qwen-image"
    pipeline_class = "QwenImagePipeline"
    licence = APACHE_2
    # A batch's shorter prompts are padded, and the padding sits before the image tokens.
    attention_masks: AttentionMasks = "inner"

    def _qwen_prompt_kwargs(
        self,
        pipeline: Any,
        prompts: list[str],
        negative: list[str] | None,
        context: tuple[object, ...] = (),
        encode: Callable[[list[str]], list[Embedding]] | None = None,
    ) -> dict[str, Any]:
        """Prompt and (with true CFG) negative prompt arguments, from the embedding cache when on."""
        if self.text_embeddings is None:
            return {"prompt": prompts, **({"negative_prompt": negative} if negative else {})}
        kwargs = prompt_kwargs(self, pipeline, prompts, context, encode)
        if negative:
            negative_kwargs = prompt_kwargs(self, pipeline, negative, context, encode)
            kwargs |= {f"negative_{name}": value for name, value in negative_kwargs.items()}
        return kwargs

    def _load(self) -> Any:
        from diffusers import QwenImagePipeline

        return load_pipeline(QwenImagePipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        prompts = [job.prompt for job in jobs for _ in job.seeds]
        guidance = _guidance_kwargs(pipeline, self.preset, jobs[0].guidance, len(prompts))
        encoded = self._qwen_prompt_kwargs(pipeline, prompts, guidance.pop("negative_prompt", None))
        return self._call_pipeline(pipeline, jobs, callback, prompts=encoded, guidance=guidance)

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        kwargs = encoder_kwargs(pipeline, self.preset.call_kwargs, "max_sequence_length")
        return qwen_rows(*pipeline.encode_prompt(prompt=prompts, **kwargs))

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        return qwen_embedding_kwargs(embeddings)

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        return qwen_decode_preview(pipeline, latents, job)


# --- editing and fusion ------------------------------------------------------------------------


class QwenImageEditEngine(QwenImageEngine):
    family = "qwen-image-edit"
    pipeline_class = "QwenImageEditPlusPipeline"

    conditioning: ConditioningAreas | None = None  # the checkpoint's, read on load; None: diffusers'

    def _load(self) -> Any:
        from diffusers import QwenImageEditPlusPipeline

        self.source.resolve()  # a missing checkpoint fails here, before any file is read
        directory = self.source.local_path()
        self.conditioning = read_conditioning(directory)
        return load_pipeline(
            QwenImageEditPlusPipeline,
            self.source,
            self.settings,
            default_dtype=self.default_dtype,
            **self._processor_override(directory),
        )

    def _processor_override(self, directory: Path) -> dict[str, Any]:
        """Without torchvision, load the processor without its video half (stock loading fails)."""
        return processor_override(self.name, directory, no_video_processor_class())

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        job = jobs[0]  # not batchable: base.Engine.run hands over exactly one job
        # One call per seed (the pipeline refuses batches), so progress runs 1..N once per image;
        # with the embedding cache on, the text encoder runs for the first seed only.
        guidance = _guidance_kwargs(pipeline, self.preset, job.guidance, 1)
        negative = guidance.pop("negative_prompt", None)
        generators = seed_generators(jobs)  # one per seed
        with conditioning_areas(self.conditioning):
            return [
                self._edit_once(
                    pipeline,
                    job,
                    generator,
                    callback,
                    {**self._edit_prompt_kwargs(pipeline, job, negative), **guidance},
                )
                for generator in generators
            ]

    def _edit_prompt_kwargs(
        self, pipeline: Any, job: EngineJob, negative: list[str] | None
    ) -> dict[str, Any]:
        """The edit's prompt arguments: its embeddings depend on the input images too, so those
        (and the area the vision encoder sees them at) are part of the cache key."""
        import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

        def encode(prompts: list[str]) -> list[Embedding]:
            images = condition_images(pipeline, job.images)
            kwargs = encoder_kwargs(pipeline, self.preset.call_kwargs, "max_sequence_length")
            return qwen_rows(*pipeline.encode_prompt(prompt=prompts, image=images, **kwargs))

        context = (job.inputs_digest, edit_plus.CONDITION_IMAGE_SIZE)
        return self._qwen_prompt_kwargs(pipeline, [job.prompt], negative, context, encode)

    def _edit_once(
        self,
        pipeline: Any,
        job: EngineJob,
        generator: torch.Generator,
        callback: Callable[..., Any],
        kwargs: dict[str, Any],
    ) -> Image.Image:
        output = pipeline(
            image=list(job.images),
            height=job.height,  # always the planned size: the pipeline would pick ~1 MP itself
            width=job.width,
            num_inference_steps=job.steps,
            generator=generator,
            callback_on_step_end=callback,
            output_type="pil",
            **kwargs,
        )
        image: Image.Image = output.images[0]
        return image


class QwenImageEditLightningEngine(QwenImageEditEngine):
    """Edit-2511 with the Lightning LoRA fused into the transformer at load: 4 steps, no CFG, and
    no adapter left to slow each step or to block fp8 (the fusing comes before quantization)."""

    def _load(self) -> Any:
        pipeline = super()._load()
        fuse(
            pipeline,
            self._lightning_source(),
            scale=self.allowed_loras[LIGHTNING].scale,
            engine_name=self.name,
            name=LIGHTNING,
            hub_cache=self.settings.hub_cache,
        )
        return pipeline

    def _lightning_source(self) -> LoraSource:
        """The setting ``loras`` entry ``lightning`` when the operator set one; else a
        ``lightning/`` folder beside the local weights; else lightx2v's repository in the hub cache."""
        if LIGHTNING in self.settings.loras.get(self.name, {}):
            return self.allowed_loras[LIGHTNING]
        beside = self.source.local_path() / LIGHTNING_DIR
        return LoraSource(source=str(beside)) if beside.is_dir() else LIGHTNING_LORA


def qwen_rows(embeds: torch.Tensor, mask: torch.Tensor | None) -> list[Embedding]:
    """Both Qwen pipelines' ``encode_prompt`` output, one unpadded (tokens, width) row per prompt."""
    lengths = [embeds.shape[1]] * embeds.shape[0] if mask is None else mask.sum(dim=1).tolist()
    return [(embeds[index, : int(length)],) for index, length in enumerate(lengths)]


def qwen_embedding_kwargs(embeddings: list[Embedding]) -> dict[str, Any]:
    """Rows padded into one batch with its mask, as ``encode_prompt`` returns them."""
    embeds, mask = stack_padded([embedding[0] for embedding in embeddings])
    return {"prompt_embeds": embeds, "prompt_embeds_mask": mask}


def qwen_decode_preview(pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
    """Both Qwen pipelines after their loop: unpack the 2x2 patches into one video frame, then
    undo the VAE's per-channel normalisation."""
    unpacked = pipeline._unpack_latents(latents, job.height, job.width, pipeline.vae_scale_factor)
    config = pipeline.vae.config
    shape = (1, config.z_dim, 1, 1, 1)
    mean = torch.tensor(config.latents_mean).view(shape).to(unpacked)
    std = torch.tensor(config.latents_std).view(shape).to(unpacked)
    return decode_latents(pipeline, unpacked * std + mean)


# --- shared call arguments ---------------------------------------------------------------------


def _guidance_kwargs(pipeline: Any, preset: Preset, guidance: float, batch: int) -> dict[str, Any]:
    """True CFG at ``guidance``; distilled ``guidance_scale`` only where the transformer takes one."""
    distilled = bool(pipeline.transformer.config.guidance_embeds)
    kwargs = {key: value for key, value in preset.call_kwargs.items() if key != "guidance_scale" or distilled}
    kwargs["true_cfg_scale"] = guidance
    if guidance > 1.0:  # the pipelines only run CFG with a negative prompt, and warn on one without CFG
        kwargs["negative_prompt"] = [NEGATIVE_PROMPT] * batch
    return kwargs


# --- engines -----------------------------------------------------------------------------------


def create_qwen_image(name: str, settings: Settings) -> QwenImageEngine:
    """The Qwen-Image-2512 text-to-image engine, from ``--weights``/settings or the hub cache."""
    return QwenImageEngine(
        name,
        settings,
        description="Qwen-Image-2512: text-to-image with strong text rendering (no editing)",
        source=WeightsSource.hub(name, settings, QWEN_IMAGE_HUB_ID, size_hint="about 58 GB"),
        capabilities=QWEN_IMAGE_CAPABILITIES,
        preset=QWEN_IMAGE_PRESET,
    )


def create_qwen_image_edit(name: str, settings: Settings) -> QwenImageEditEngine:
    """The Qwen-Image-Edit-2511 engine: edits one image or fuses up to three."""
    return QwenImageEditEngine(
        name,
        settings,
        description="Qwen-Image-Edit-2511: editing and fusion of 1 to 3 images, strong text editing",
        source=WeightsSource.hub(name, settings, QWEN_IMAGE_EDIT_HUB_ID, size_hint="about 58 GB"),
        capabilities=QWEN_IMAGE_EDIT_CAPABILITIES,
        preset=QWEN_IMAGE_EDIT_PRESET,
        presets={LIGHTNING: LIGHTNING_NAMED_PRESET},
        builtin_loras={LIGHTNING: LIGHTNING_LORA},
    )


def create_qwen_image_edit_lightning(name: str, settings: Settings) -> QwenImageEditLightningEngine:
    """Edit-2511 with the Lightning LoRA fused: the fast editing engine under its own name."""
    return QwenImageEditLightningEngine(
        name,
        settings,
        description="Qwen-Image-Edit-2511 with lightx2v's Lightning LoRA fused: 4-step editing and fusion",
        source=WeightsSource.hub(name, settings, QWEN_IMAGE_EDIT_HUB_ID, size_hint="about 58 GB"),
        capabilities=QWEN_IMAGE_EDIT_CAPABILITIES,
        preset=QWEN_IMAGE_EDIT_LIGHTNING_PRESET,
        builtin_loras={LIGHTNING: LIGHTNING_LORA},
    )


def build_tiny_qwen_image_edit_lightning(directory: Path) -> None:
    """The tiny edit checkpoint with a tiny random LoRA in its ``lightning/`` folder."""
    from plantain.engines.lora_tiny import build_tiny_lora

    build_tiny_qwen_image_edit(directory)
    build_tiny_lora(directory, "QwenImageEditPlusPipeline", directory / LIGHTNING_DIR)


FAMILIES = (
    Family("qwen-image-edit", create_qwen_image_edit, QWEN_IMAGE_EDIT_HUB_ID, build_tiny_qwen_image_edit),
    Family(
        "qwen-image-edit-lightning",
        create_qwen_image_edit_lightning,
        QWEN_IMAGE_EDIT_HUB_ID,
        build_tiny_qwen_image_edit_lightning,
    ),
    Family("qwen-image", create_qwen_image, QWEN_IMAGE_HUB_ID, build_tiny_qwen_image),
)
