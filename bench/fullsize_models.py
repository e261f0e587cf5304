"""Full-size FLUX.2-klein-4B, Z-Image-Turbo and Qwen-Image-Edit-2511 pipelines with random weights.

Timing does not depend on weight values, so each engine's pipeline is built from its real
checkpoint's dimensions (below, with where each number comes from) with random weights: nothing is
downloaded. Build under ``torch.device("cuda")`` with bfloat16 as the default dtype and the weights
are made there directly. The tokenizer is Plantain's tiny byte-level one; FLUX.2-klein pads every
prompt to 512 tokens, so its text-encoder cost is the real one. ``TINY`` holds the same
architectures at tiny widths, for dry runs on a CPU.

Used by ``bench/gpu_check.py`` (the timed GPU check) and ``bench/fullwidth_smoke.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plantain.engines import qwen_conditioning, qwen_image_tiny
from plantain.engines.family import EngineFactory, Family
from plantain.engines.registry import FAMILIES
from plantain.engines.tiny_tokenizers import tiny_qwen2_tokenizer, token_id

# --- dimensions -------------------------------------------------------------------------------
# Qwen3-4B (text encoder of FLUX.2-klein-4B and Z-Image-Turbo): Qwen/Qwen3-4B config.json.
QWEN3_4B = dict(
    hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32,
    num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
)  # fmt: skip
# FLUX.2-klein-4B transformer/config.json: 5 double + 20 single blocks, 24 heads of 128,
# joint_attention_dim = 3 Qwen3 layers (9, 18, 27) x 2560.
KLEIN_4B = dict(
    patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=7680, timestep_guidance_channels=256, mlp_ratio=3.0,
    axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, guidance_embeds=False,
)  # fmt: skip
# Z-Image-Turbo transformer/config.json: diffusers' ZImageTransformer2DModel defaults except
# axes_lens, whose first axis is 1536 there (diffusers' default is [1024, 512, 512]).
ZIMAGE_TURBO = dict(
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30,
    n_refiner_layers=2, n_heads=30, n_kv_heads=30, cap_feat_dim=2560, axes_dims=[32, 48, 48],
    axes_lens=[1536, 512, 512],
)  # fmt: skip
# FLUX.1 VAE (Z-Image uses it): black-forest-labs/FLUX.1-schnell vae/config.json.
FLUX1_VAE = dict(
    latent_channels=16, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    shift_factor=0.1159, scaling_factor=0.3611, use_quant_conv=False, use_post_quant_conv=False,
)  # fmt: skip
# Qwen-Image-Edit-2511 transformer/config.json: 60 blocks, 24 heads of 128, text width 3584.
QWEN_IMAGE = dict(
    patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=3584, axes_dims_rope=(16, 56, 56), zero_cond_t=True,
)  # fmt: skip
# Qwen2.5-VL-7B-Instruct config.json (Qwen-Image's text encoder).
QWEN25_VL_TEXT = dict(
    hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
    num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000,
)  # fmt: skip
QWEN25_VL_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
    fullatt_block_indexes=[7, 15, 23, 31], window_size=112, spatial_merge_size=2, patch_size=14,
)  # fmt: skip

# --dry-run: the same code path at tiny widths (CPU, seconds).
TINY = {
    "qwen3": dict(hidden_size=16, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=1024),
    "klein": dict(KLEIN_4B, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
                  joint_attention_dim=48, in_channels=32, axes_dims_rope=(4, 4, 4, 4)),
    "zimage": dict(ZIMAGE_TURBO, dim=16, n_layers=1, n_refiner_layers=1, n_heads=1, n_kv_heads=1,
                   cap_feat_dim=16, axes_dims=[8, 4, 4], axes_lens=[1024, 512, 512]),
    "vae": dict(FLUX1_VAE, block_out_channels=(4, 4, 4, 4), layers_per_block=1, norm_num_groups=4,
                mid_block_add_attention=False),
    "qwen": dict(QWEN_IMAGE, in_channels=16, out_channels=4, num_layers=1, attention_head_dim=16,
                 num_attention_heads=2, joint_attention_dim=16, axes_dims_rope=(8, 4, 4)),
    "qwen_vl_text": dict(hidden_size=16, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2),
    "qwen_vl_vision": dict(depth=2, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16),
}  # fmt: skip


@dataclass
class Case:
    family: Family  # the registry's record: engine name and constructor
    build: Callable[[bool], Any]  # tiny -> pipeline
    edit: bool = False
    dry_kwargs: dict[str, Any] | None = None  # preset call arguments the tiny dimensions need

    @property
    def engine(self) -> str:
        return self.family.engine

    @property
    def create(self) -> EngineFactory:
        return self.family.create


def _qwen3(tokenizer: Any, tiny: bool, causal: bool) -> Any:
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    pad = token_id(tokenizer, "<|endoftext|>")
    dims = TINY["qwen3"] if tiny else QWEN3_4B
    config = Qwen3Config(
        **{**dims, "vocab_size": max(len(tokenizer), dims.get("vocab_size", 0))},
        bos_token_id=pad,
        eos_token_id=token_id(tokenizer, "<|im_end|>"),
        pad_token_id=pad,
    )
    return (Qwen3ForCausalLM if causal else Qwen3Model)(config).eval()


def build_klein(tiny: bool) -> Any:
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )

    tokenizer = tiny_qwen2_tokenizer()
    # FLUX.2's VAE is AutoencoderKLFlux2's defaults (black-forest-labs/FLUX.2-klein-4B vae/config.json).
    dims = {k: v for k, v in TINY["vae"].items() if k not in ("shift_factor", "scaling_factor")}
    vae = AutoencoderKLFlux2(**(dict(dims, latent_channels=8) if tiny else {}))

    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae.eval(),
        text_encoder=_qwen3(tokenizer, tiny, causal=True),
        tokenizer=tokenizer,
        transformer=Flux2Transformer2DModel(**(TINY["klein"] if tiny else KLEIN_4B)).eval(),
        is_distilled=True,
    )


def build_zimage(tiny: bool) -> Any:
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImagePipeline,
        ZImageTransformer2DModel,
    )

    tokenizer = tiny_qwen2_tokenizer()
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=AutoencoderKL(**(TINY["vae"] if tiny else FLUX1_VAE)).eval(),
        text_encoder=_qwen3(tokenizer, tiny, causal=False),
        tokenizer=tokenizer,
        transformer=ZImageTransformer2DModel(**(TINY["zimage"] if tiny else ZIMAGE_TURBO)).eval(),
    )


def build_qwen_edit(tiny: bool) -> Any:
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = tiny_qwen2_tokenizer()
    ids = {name: token_id(tokenizer, f"<|{name}|>") for name in qwen_image_tiny.QWEN_TOKENS}
    text = dict(TINY["qwen_vl_text"] if tiny else QWEN25_VL_TEXT)
    text |= {
        "vocab_size": max(len(tokenizer), text.get("vocab_size", 0)),
        "bos_token_id": ids["endoftext"],
        "eos_token_id": ids["im_end"],
        "rope_parameters": {
            "mrope_section": [1, 1, 2] if tiny else [16, 24, 24],
            "rope_type": "default",
            "rope_theta": 1e6,
        },
    }
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=TINY["qwen_vl_vision"] if tiny else QWEN25_VL_VISION,
        image_token_id=ids["image_pad"],
        video_token_id=ids["video_pad"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
    )
    z_dim = 4 if tiny else 16
    vae_dims = (
        dict(base_dim=2, z_dim=z_dim, latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim) if tiny else {}
    )
    processor = qwen_conditioning.no_video_processor_class()(
        image_processor=Qwen2VLImageProcessorPil(), tokenizer=tokenizer
    )
    return QwenImageEditPlusPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=AutoencoderKLQwenImage(**vae_dims).eval(),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
        tokenizer=tokenizer,
        processor=processor,
        transformer=QwenImageTransformer2DModel(**(TINY["qwen"] if tiny else QWEN_IMAGE)).eval(),
    )


# The registry's records (a KeyError names an engine it no longer serves).
_RECORDS = {family.engine: family for family in FAMILIES}

CASES = {
    case.engine: case
    for case in (
        Case(_RECORDS["flux2-klein-4b"], build_klein, dry_kwargs={"text_encoder_out_layers": (1, 2, 3)}),
        Case(_RECORDS["qwen-image-edit"], build_qwen_edit, edit=True),
        Case(_RECORDS["z-image-turbo"], build_zimage),
    )
}
