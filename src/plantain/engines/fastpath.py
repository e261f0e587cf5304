"""The GPU fast path: what an engine does to its pipeline at load so that each image costs less.

Five knobs from the settings (``torch_compile``, ``cuda_graphs``, ``attention_backend``,
``quantization``, ``vae_channels_last``) are resolved for the device into a :class:`FastPath`
(with the reason each inactive knob is off), applied once by :func:`apply_fast_path` (which picks
the attention kernel for the engine's attention masks), logged and shown in
``plantain engines --json``. Two more work on any device: the :class:`EmbeddingCache`
(a repeated prompt skips the text encoder) and the warm-up of the served sizes (see
``base.Engine.load``). The order follows flux-fast's recipe: memory format and attention first,
then fp8 quantization, then compilation of what is left, so the compiler sees the final modules.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import torch

from plantain.errors import ConfigurationError
from plantain.settings import REGIONAL_CUDA_GRAPHS, Settings

logger = logging.getLogger(__name__)

Embedding = tuple[Any, ...]
"""One prompt's text embeddings as a family's pipeline takes them (tensors on the device)."""

# Settings names of attention kernels -> diffusers' AttentionBackendName values.
ATTENTION_BACKENDS: dict[str, str] = {
    "sdpa": "native",
    "cudnn": "_native_cudnn",
    "flash": "flash",
    "flash3": "_flash_3",
    "sage": "sage",
    "xformers": "xformers",
    "flex": "flex",
}

AttentionMasks = Literal["none", "trailing", "inner"]
"""The attention masks an engine's transformer is given: ``none``; ``trailing``, padding at the end
of each sequence only (Z-Image); ``inner``, positions inside the sequence as well (Qwen-Image: a
shorter prompt's padding comes before the image tokens of the joint sequence)."""

# diffusers' variable-length variants, which take a padding mask (the plain kernels raise "attn_mask
# is not supported"). They keep the first n keys of each sequence, n its unmasked count, so they
# are right for trailing padding only: with inner padding they would attend to the padding and
# drop the sequence's last keys instead.
_VARLEN_BACKENDS = {"flash": "flash_varlen", "flash3": "_flash_varlen_3", "sage": "sage_varlen"}

# Kernels that apply any boolean mask: SDPA (cuDNN through it) and flex's block mask.
_DENSE_MASKED_BACKENDS = ("sdpa", "cudnn", "flex")

# Tried in order by attention_backend=auto on a CUDA GPU; both are exact (sage is not).
_AUTO_ATTENTION = (("flash3", "flash_attn_interface"), ("flash", "flash_attn"))

FP8_MIN_CAPABILITY = (8, 9)  # fp8 tensor cores: Ada (8.9) and Hopper (9.0) onwards

# The fp8 extra's torchao (pyproject.toml). Releases up to 0.16 were each built for one torch;
# from 0.17 its kernels use torch's stable ABI and load on torch 2.11 or later.
TORCHAO_PIN = "0.18.0"
TORCHAO_MIN_TORCH = (2, 11)

DEFAULT_GPU_WARMUP = ("1K:1:1",)


@dataclass(frozen=True)
class FastPath:
    """What is (to be) active for one engine on one device, and why the rest is off."""

    device: str
    compile: str  # off, regional or full
    cuda_graphs: bool
    attention_backend: str  # a key of ATTENTION_BACKENDS
    attention_masks: AttentionMasks
    quantization: str  # none or fp8
    vae_channels_last: bool
    text_embedding_cache: int  # prompts kept; 0 is off
    warmup_sizes: tuple[str, ...]
    attention_kernel: str = ""  # diffusers' backend for attention_backend, chosen at load
    inactive: dict[str, str] = field(default_factory=dict)  # knob -> why it is off
    applied: bool = False

    def describe(self) -> dict[str, Any]:
        summary = asdict(self)
        summary["warmup_sizes"] = list(self.warmup_sizes)
        return summary

    def off(self, knob: str, reason: str, **changes: Any) -> FastPath:
        return replace(self, inactive={**self.inactive, knob: reason}, **changes)


def plan_fast_path(settings: Settings, device: torch.device, *, attention_masks: AttentionMasks) -> FastPath:
    """Resolve the settings for ``device`` without touching a pipeline (``auto`` made concrete)."""
    cuda = device.type == "cuda"
    compile_mode: str = settings.torch_compile
    if compile_mode == "auto":
        compile_mode = _auto_compile(cuda, settings.cuda_graphs)
    warmup = settings.warmup_sizes
    plan = FastPath(
        device=str(device),
        compile=compile_mode,
        cuda_graphs=settings.cuda_graphs,
        attention_backend=_pick_attention(settings.attention_backend, cuda, attention_masks != "none"),
        attention_masks=attention_masks,
        quantization=settings.quantization,
        vae_channels_last=settings.vae_channels_last,
        text_embedding_cache=settings.text_embedding_cache,
        warmup_sizes=tuple(DEFAULT_GPU_WARMUP if warmup is None and cuda else warmup or ()),
    )
    if plan.vae_channels_last and not cuda:  # measured on CPU: no faster, and batched rounding differs
        plan = plan.off(
            "vae_channels_last",
            f"channels_last speeds up cuDNN convolutions; on {device.type} it is no faster",
            vae_channels_last=False,
        )
    if plan.cuda_graphs and not cuda:
        plan = plan.off(
            "cuda_graphs", f"CUDA graphs need a CUDA device, not {device.type}", cuda_graphs=False
        )
    if plan.cuda_graphs and compile_mode == "off":
        plan = plan.off("cuda_graphs", "torch_compile is off on this device", cuda_graphs=False)
    if compile_mode != "off" and device.type == "mps":
        plan = plan.off("torch_compile", "torch.compile does not support mps", compile="off")
    return plan


def _auto_compile(cuda: bool, cuda_graphs: bool) -> str:
    if not cuda:
        return "off"
    # CUDA graphs of separately compiled blocks crash: each block's graph output is the next
    # block's input and is overwritten by its replay (pytorch/pytorch#152887).
    return "full" if cuda_graphs else "regional"


def _pick_attention(setting: str, cuda: bool, masked: bool) -> str:
    if setting != "auto":
        return setting
    # Masked engines keep SDPA: the variable-length kernels read the mask back to the host (a
    # device sync per attention call), and Qwen-Image's inner padding is beyond them.
    if not cuda or masked:
        return "sdpa"
    for name, module in _AUTO_ATTENTION:
        if importlib.util.find_spec(module) is not None:
            return name
    return "sdpa"


def attention_kernel(backend: str, masks: AttentionMasks, *, engine: str) -> str:
    """diffusers' attention backend for the setting's value ``backend`` (``auto`` resolved) on an
    engine whose transformer is given ``masks``; a ConfigurationError where that kernel would fail
    on a masked batch or ignore its mask."""
    if masks == "none" or backend in _DENSE_MASKED_BACKENDS:
        return ATTENTION_BACKENDS[backend]
    if masks == "trailing" and backend in _VARLEN_BACKENDS:
        return _VARLEN_BACKENDS[backend]
    if backend == "xformers":
        reason = (
            "diffusers' xformers backend adds a boolean attention mask as a 0/1 bias, which masks nothing"
        )
    else:
        reason = (
            f"its transformer masks padding inside the sequence, which the {backend} kernels cannot "
            "apply (their variable-length variants only drop padding at the end of a sequence)"
        )
    allowed = ["auto", *_DENSE_MASKED_BACKENDS, *(_VARLEN_BACKENDS if masks == "trailing" else ())]
    raise ConfigurationError(
        f"setting attention_backend (PLANTAIN_ATTENTION_BACKEND): {backend} cannot run engine "
        f"{engine}: {reason}; use one of {', '.join(allowed)}",
        field="attention_backend",
    )


def check_fp8(device: torch.device) -> None:
    """Refuse quantization=fp8 where it cannot run, naming the setting and what is missing."""
    prefix = "setting quantization (PLANTAIN_QUANTIZATION): fp8"
    if importlib.util.find_spec("torchao") is None:
        raise ConfigurationError(f"{prefix} needs torchao: pip install 'plantain[fp8]'", field="quantization")
    check_torchao(torch.__version__, _installed_version("torchao"))
    if device.type != "cuda":
        raise ConfigurationError(
            f"{prefix} needs a CUDA GPU of compute capability 8.9 or more; the engine runs on {device}",
            field="quantization",
        )
    capability = torch.cuda.get_device_capability(device)
    if capability < FP8_MIN_CAPABILITY:
        raise ConfigurationError(
            f"{prefix} needs compute capability 8.9 or more (Ada, Hopper); {device} has "
            f"{capability[0]}.{capability[1]}",
            field="quantization",
        )


def check_torchao(torch_version: str, torchao_version: str) -> None:
    """Refuse a torchao other than the fp8 extra's pin, or a torch older than the pin needs: a
    torchao built for another torch only warns that it skips its C++ kernels."""
    problem = None
    if _release(torchao_version)[:3] != _release(TORCHAO_PIN):
        problem = f"the fp8 extra pins torchao {TORCHAO_PIN}"
    elif _release(torch_version)[:2] < TORCHAO_MIN_TORCH:
        minimum = ".".join(map(str, TORCHAO_MIN_TORCH))
        problem = f"torchao {TORCHAO_PIN} (the fp8 extra's pin) needs torch {minimum} or later"
    if problem:
        raise ConfigurationError(
            f"setting quantization (PLANTAIN_QUANTIZATION): fp8 found torchao {torchao_version} with "
            f"torch {torch_version}; {problem}: pip install 'plantain[fp8]'",
            field="quantization",
        )


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string ("2.13.0+cu130" -> (2, 13, 0)); () if none."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def _installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:  # importable, but not installed by pip
        return "unknown"


def apply_fast_path(pipeline: Any, plan: FastPath, *, engine: str) -> FastPath:
    """Apply ``plan`` to ``pipeline`` in place; returns what is active, logged once."""
    if plan.quantization == "fp8":
        check_fp8(torch.device(plan.device))
    if _module(pipeline, "vae") is None:  # not a diffusers pipeline (a test fake, a remote engine)
        plan = plan.off("vae_channels_last", "the pipeline has no VAE", vae_channels_last=False)
    plan = _channels_last(pipeline, plan)
    if _module(pipeline, "transformer") is None:
        reason = "the pipeline has no transformer"
        plan = plan.off("torch_compile", reason, compile="off", cuda_graphs=False, attention_backend="sdpa")
    plan = _attention(pipeline, plan, engine)
    if plan.quantization == "fp8":
        _quantize_fp8(pipeline.transformer)
    _compile(pipeline, plan)
    plan = replace(plan, applied=True)
    logger.info("engine %s fast path: %s", engine, plan.describe())
    for knob, reason in plan.inactive.items():
        logger.info("engine %s: %s is off: %s", engine, knob, reason)
    return plan


def _module(pipeline: Any, name: str) -> torch.nn.Module | None:
    module = getattr(pipeline, name, None)
    return module if isinstance(module, torch.nn.Module) else None


def _channels_last(pipeline: Any, plan: FastPath) -> FastPath:
    if not plan.vae_channels_last:
        return plan
    vae = pipeline.vae
    if any(parameter.ndim == 5 for parameter in vae.parameters()):
        return plan.off("vae_channels_last", "the VAE is 3D (video convolutions)", vae_channels_last=False)
    vae.to(memory_format=torch.channels_last)
    return plan


def _attention(pipeline: Any, plan: FastPath, engine: str) -> FastPath:
    backend = attention_kernel(plan.attention_backend, plan.attention_masks, engine=engine)
    plan = replace(plan, attention_kernel=backend)
    if backend == "native":
        return plan  # diffusers' default: nothing to set
    try:
        pipeline.transformer.set_attention_backend(backend)
    except (ImportError, RuntimeError, ValueError) as exc:
        raise ConfigurationError(
            f"setting attention_backend (PLANTAIN_ATTENTION_BACKEND): {plan.attention_backend} cannot "
            f"run engine {engine} here: {exc}",
            field="attention_backend",
        ) from exc
    return plan


def _quantize_fp8(transformer: torch.nn.Module) -> None:
    # Dynamic fp8 activations and fp8 weights with one scale per row: finer than flux-fast's one
    # scale per tensor, so a row of large values does not cost the other rows their precision.
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    quantize_(transformer, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def _compile(pipeline: Any, plan: FastPath) -> None:
    if plan.compile == "off":
        return
    if plan.compile == "regional":
        if plan.cuda_graphs:  # refused when settings are read, unless they were copied unchecked
            raise ConfigurationError(
                f"setting cuda_graphs (PLANTAIN_CUDA_GRAPHS): true is not allowed; {REGIONAL_CUDA_GRAPHS}",
                field="cuda_graphs",
            )
        pipeline.transformer.compile_repeated_blocks(fullgraph=True)
        return
    options: dict[str, Any] = {"fullgraph": True}
    if plan.cuda_graphs:
        options["dynamic"] = False  # a graph is captured per static shape
    options["mode"] = "max-autotune" if plan.cuda_graphs else "max-autotune-no-cudagraphs"
    pipeline.transformer.compile(**options)
    pipeline.vae.decoder.compile(**{**options, "fullgraph": False})  # the decode is one call per image


# --- cached text embeddings ------------------------------------------------------------------


class EmbeddingCache:
    """Least-recently-used text embeddings, keyed by prompt and whatever else shapes them (the
    engine's sequence length, output layers, conditioning images): a hit skips the text encoder."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, Embedding] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def embeddings(
        self,
        prompts: Sequence[str],
        context: Hashable,
        encode: Callable[[list[str]], list[Embedding]],
    ) -> list[Embedding]:
        """One embedding per prompt, in order; the missing ones are encoded in one call."""
        unique = list(dict.fromkeys(prompts))
        found = {prompt: self._get((context, prompt)) for prompt in unique}
        missing = [prompt for prompt in unique if found[prompt] is None]
        if missing:
            encoded = encode(list(missing))  # a copy: Z-Image's encoder rewrites its list in place
            for prompt, embedding in zip(missing, encoded, strict=True):
                found[prompt] = embedding
                self._put((context, prompt), embedding)
        return [_present(found[prompt]) for prompt in prompts]

    def describe(self) -> dict[str, int]:
        return {"capacity": self.capacity, "entries": len(self), "hits": self.hits, "misses": self.misses}

    def _get(self, key: Hashable) -> Embedding | None:
        with self._lock:
            embedding = self._entries.get(key)
            if embedding is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return embedding

    def _put(self, key: Hashable, embedding: Embedding) -> None:
        with self._lock:
            self._entries[key] = embedding
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def _present(embedding: Embedding | None) -> Embedding:
    assert embedding is not None
    return embedding


def rows(*batched: torch.Tensor) -> list[Embedding]:
    """Split batched encoder outputs (same batch size) into one embedding per prompt."""
    return [tuple(tensor[index : index + 1] for tensor in batched) for index in range(batched[0].shape[0])]


def stack_padded(embeddings: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Variable-length (length, width) embeddings as one zero-padded batch and its 0/1 mask, the
    layout Qwen-Image's ``encode_prompt`` returns."""
    longest = max(embedding.shape[0] for embedding in embeddings)
    padded = torch.stack([_pad_rows(embedding, longest) for embedding in embeddings])
    mask = torch.stack(
        [
            torch.cat(
                [embedding.new_ones(embedding.shape[0]), embedding.new_zeros(longest - embedding.shape[0])]
            )
            for embedding in embeddings
        ]
    ).long()
    return padded, mask


def _pad_rows(embedding: torch.Tensor, length: int) -> torch.Tensor:
    return torch.cat([embedding, embedding.new_zeros(length - embedding.shape[0], *embedding.shape[1:])])
