"""Qwen-Image: ``qwen-image`` (text-to-image) and ``qwen-image-edit`` (editing and fusion of 1–3 images).

Two Apache-2.0 checkpoints of the same 20B MMDiT with a Qwen2.5-VL-7B text encoder (about 58 GB
in bfloat16): Qwen-Image-2512 generates, with strong text rendering; Qwen-Image-Edit-2511 edits
one image or fuses up to three. Both run true classifier-free
guidance: the preset's ``guidance`` is the pipelines' ``true_cfg_scale``, paired with the
negative prompt ``" "`` the model cards use when the caller has none.

``QwenImageEditPlusPipeline`` needs three accommodations in diffusers 0.42.1, all here:

- it refuses a batch of more than one prompt, so a job with several seeds calls it once per seed;
- its processor carries a video processor, which transformers can only build with torchvision;
  without torchvision the processor is loaded without it (:func:`no_video_processor_class`);
- the areas it resizes every input to (1024² for the VAE, 384² for the vision encoder) are module
  constants. An engine may set its own (:class:`ConditioningAreas`, declared by a checkpoint in
  ``plantain_conditioning.json``, as the tiny one does); they are applied for the call only.

``build_tiny_qwen_image`` and ``build_tiny_qwen_image_edit`` (the family records' ``build_tiny``)
build both architectures at tiny size with random weights, for tests and CPU benchmarks.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from plantain.engines.base import (
    Capabilities,
    Engine,
    EngineJob,
    InputLimits,
    Preset,
    decode_latents,
    seed_generators,
)
from plantain.engines.checkpoints import save_atomically
from plantain.engines.family import Family
from plantain.engines.fastpath import AttentionMasks, Embedding, stack_padded
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id
from plantain.errors import EngineLoadError
from plantain.imaging.sizes import SizeLimits
from plantain.settings import Settings

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

QWEN_IMAGE_HUB_ID = "Qwen/Qwen-Image-2512"
QWEN_IMAGE_EDIT_HUB_ID = "Qwen/Qwen-Image-Edit-2511"

# Model cards / github.com/QwenLM/Qwen-Image README quick starts: 2512 runs 50 steps at
# true_cfg_scale 4; Edit-2511 runs 40 steps at true_cfg_scale 4 and guidance_scale 1.
QWEN_IMAGE_PRESET = Preset(steps=50, guidance=4.0)
QWEN_IMAGE_EDIT_PRESET = Preset(steps=40, guidance=4.0, call_kwargs={"guidance_scale": 1.0})

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

CONDITIONING_FILE = "plantain_conditioning.json"


@dataclass(frozen=True)
class ConditioningAreas:
    """Pixel areas ``QwenImageEditPlusPipeline`` resizes each input image to."""

    vae_image_area: int  # VAE latents the transformer attends to (diffusers: 1024²)
    condition_image_area: int  # what the vision encoder sees (diffusers: 384²)


# At diffusers' areas, three tiny inputs cost ~12k tokens and a minute per call on a CPU.
TINY_CONDITIONING = ConditioningAreas(vae_image_area=64 * 64, condition_image_area=56 * 56)

# The areas are globals of one diffusers module, shared by every edit engine in the process.
_CONDITIONING_LOCK = threading.Lock()


# --- text-to-image -----------------------------------------------------------------------------


class QwenImageEngine(Engine):
    family = "qwen-image"
    pipeline_class = "QwenImagePipeline"
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
        if self._embeddings is None:
            return {"prompt": prompts, **({"negative_prompt": negative} if negative else {})}
        kwargs = self._prompt_kwargs(pipeline, prompts, context, encode)
        if negative:
            negative_kwargs = self._prompt_kwargs(pipeline, negative, context, encode)
            kwargs |= {f"negative_{name}": value for name, value in negative_kwargs.items()}
        return kwargs

    def _load(self) -> Any:
        from diffusers import QwenImagePipeline

        return load_pipeline(QwenImagePipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        first = jobs[0]
        prompts = [job.prompt for job in jobs for _ in job.seeds]
        guidance = _guidance_kwargs(pipeline, self.preset, first.guidance, len(prompts))
        output = pipeline(
            **self._qwen_prompt_kwargs(pipeline, prompts, guidance.pop("negative_prompt", None)),
            height=first.height,
            width=first.width,
            num_inference_steps=first.steps,
            generator=seed_generators(jobs),
            callback_on_step_end=callback,
            output_type="pil",
            **guidance,
        )
        return list(output.images)

    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        return qwen_rows(
            *pipeline.encode_prompt(prompt=prompts, **self._encoder_kwargs(pipeline, "max_sequence_length"))
        )

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
        from transformers import is_torchvision_available

        if is_torchvision_available():
            return {}
        try:
            return {"processor": no_video_processor_class().from_pretrained(directory / "processor")}
        except Exception as exc:  # a broken or missing subfolder: one sentence, like load_pipeline
            raise EngineLoadError(
                f"engine {self.name} could not load the processor in {directory / 'processor'}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

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
            kwargs = self._encoder_kwargs(pipeline, "max_sequence_length")
            return qwen_rows(*pipeline.encode_prompt(prompt=prompts, image=images, **kwargs))

        context = (job.inputs_digest, edit_plus.CONDITION_IMAGE_SIZE)
        return self._qwen_prompt_kwargs(pipeline, [job.prompt], negative, context, encode)

    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        return qwen_embedding_kwargs(embeddings)

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

    def _decode_preview(self, pipeline: Any, latents: torch.Tensor, job: EngineJob) -> Image.Image:
        return qwen_decode_preview(pipeline, latents, job)


def condition_images(pipeline: Any, images: Sequence[Image.Image]) -> list[Image.Image]:
    """The inputs as ``QwenImageEditPlusPipeline.__call__`` hands them to the vision encoder."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    resized = []
    for image in images:
        width, height = edit_plus.calculate_dimensions(
            edit_plus.CONDITION_IMAGE_SIZE, image.width / image.height
        )
        resized.append(pipeline.image_processor.resize(image, height, width))
    return resized


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


@contextmanager
def conditioning_areas(areas: ConditioningAreas | None) -> Iterator[None]:
    """Set the edit pipeline's conditioning areas for one call, then restore diffusers' values."""
    import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

    with _CONDITIONING_LOCK:  # held even when not patching, so no call sees another's areas
        saved = (edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE)
        if areas is not None:
            edit_plus.VAE_IMAGE_SIZE = areas.vae_image_area
            edit_plus.CONDITION_IMAGE_SIZE = areas.condition_image_area
        try:
            yield
        finally:
            edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = saved


def read_conditioning(directory: Path) -> ConditioningAreas | None:
    """The areas a checkpoint declares in ``plantain_conditioning.json``; None when it declares none."""
    path = directory / CONDITIONING_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        areas = ConditioningAreas(int(data["vae_image_area"]), int(data["condition_image_area"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise EngineLoadError(
            f"{path} must hold positive integers vae_image_area and condition_image_area: {exc}"
        ) from exc
    if min(areas.vae_image_area, areas.condition_image_area) <= 0:
        raise EngineLoadError(f"{path}: conditioning areas must be positive, got {data}")
    return areas


@functools.cache
def no_video_processor_class() -> Any:
    """``Qwen2VLProcessor`` without its video processor, which needs torchvision to load."""
    from transformers import Qwen2VLProcessor

    class Qwen2VLProcessorNoVideo(Qwen2VLProcessor):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return ["image_processor", "tokenizer"]

    # Saved checkpoints must name the stock class in model_index.json, for loaders with torchvision.
    Qwen2VLProcessorNoVideo.__name__ = Qwen2VLProcessorNoVideo.__qualname__ = "Qwen2VLProcessor"
    Qwen2VLProcessorNoVideo.__module__ = Qwen2VLProcessor.__module__
    return Qwen2VLProcessorNoVideo


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
    )


# --- tiny checkpoints --------------------------------------------------------------------------

# Two channels at full resolution: the VAE's causal 3D convolutions take PyTorch's slow CPU conv3d
# path, and at 8 channels a 512² decode alone takes several seconds on two cores (0.6 s at 2).
_TINY_VAE_BASE_DIM = 2
_TINY_LATENT_CHANNELS = 4


def build_tiny_qwen_image(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``QwenImagePipeline`` with random weights and save it to ``directory``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImagePipeline

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    pipeline = QwenImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(),
        text_encoder=_tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        transformer=_tiny_transformer(),
    )
    save_atomically(pipeline, directory)


def build_tiny_qwen_image_edit(directory: Path, seed: int = 0) -> None:
    """Build a tiny ``QwenImageEditPlusPipeline`` with random weights and save it to ``directory``.

    The checkpoint declares :data:`TINY_CONDITIONING`, so its inputs are resized to tiny areas.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImageEditPlusPipeline
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    torch.manual_seed(seed)
    tokenizer = tiny_qwen2_tokenizer()
    processor = no_video_processor_class()(image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer)
    pipeline = QwenImageEditPlusPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_tiny_vae(),
        text_encoder=_tiny_text_encoder(tokenizer),
        tokenizer=tokenizer,
        processor=processor,
        transformer=_tiny_transformer(),
    )
    save_atomically(_WithConditioning(pipeline, TINY_CONDITIONING), directory)


class _WithConditioning:
    """Saves a pipeline and its conditioning sidecar together, so ``save_atomically`` covers both."""

    def __init__(self, pipeline: Any, areas: ConditioningAreas) -> None:
        self.pipeline = pipeline
        self.areas = areas

    def save_pretrained(self, directory: Path) -> None:
        self.pipeline.save_pretrained(directory)
        payload = {
            "vae_image_area": self.areas.vae_image_area,
            "condition_image_area": self.areas.condition_image_area,
        }
        (Path(directory) / CONDITIONING_FILE).write_text(json.dumps(payload, indent=2) + "\n")


def _tiny_text_encoder(tokenizer: Qwen2Tokenizer) -> Any:
    """Qwen2.5-VL at hidden size 16; its token ids must be the tiny tokenizer's."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = {name: token_id(tokenizer, f"<|{name}|>") for name in _QWEN_TOKENS}
    text_config = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": len(tokenizer),
        "rope_parameters": {"mrope_section": [1, 1, 2], "rope_type": "default", "rope_theta": 1e6},
        "bos_token_id": ids["endoftext"],  # the real ids (151643/151645) are outside this vocabulary
        "eos_token_id": ids["im_end"],
    }
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        image_token_id=ids["image_pad"],
        video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )
    return Qwen2_5_VLForConditionalGeneration(config).eval()


_QWEN_TOKENS = ("endoftext", "im_end", "image_pad", "video_pad", "vision_start", "vision_end")


def _tiny_transformer() -> Any:
    from diffusers import QwenImageTransformer2DModel

    transformer: Any = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=_TINY_LATENT_CHANNELS * 4,  # 2x2 packed latents
        out_channels=_TINY_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,  # the text encoder's hidden size
        axes_dims_rope=(8, 4, 4),  # sums to attention_head_dim
    )
    return transformer.eval()  # fresh modules are in training mode


def _tiny_vae() -> Any:
    """The real 8x Qwen VAE layout (four stages, three downsamples) at a width of a few channels."""
    from diffusers import AutoencoderKLQwenImage

    vae: Any = AutoencoderKLQwenImage(
        base_dim=_TINY_VAE_BASE_DIM,
        z_dim=_TINY_LATENT_CHANNELS,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.0] * _TINY_LATENT_CHANNELS,
        latents_std=[1.0] * _TINY_LATENT_CHANNELS,
    )
    return vae.eval()


FAMILIES = (
    Family("qwen-image-edit", create_qwen_image_edit, QWEN_IMAGE_EDIT_HUB_ID, build_tiny_qwen_image_edit),
    Family("qwen-image", create_qwen_image, QWEN_IMAGE_HUB_ID, build_tiny_qwen_image),
)
