"""The step cache: diffusers' First Block Cache on an engine's transformer (setting ``step_cache``).

At each denoising step the transformer's first block runs; when its output changed by less than
the threshold (mean absolute difference of its residual, relative to the previous step's) the
other blocks are skipped and the previous step's residual of the remaining blocks is reused. The
40–50-step engines (Qwen-Image) skip many of their later steps; few-step distilled ones gain
little. Images differ slightly from uncached ones; at threshold 0 no step is skipped and the
image is the uncached one (the hooks still run, which is what a test of them needs).

Which transformers take it, in diffusers 0.42.1: those with ``CacheMixin`` whose blocks are in
diffusers' ``TransformerBlockRegistry`` and whose pipelines wrap each transformer call in
``cache_context``, and whose first and last blocks return the same kind of output: Qwen-Image and
Qwen-Image-Edit among the served families. FLUX.2 (klein) is refused: its double-stream blocks
return (text, image) and its single-stream blocks one joint sequence, and the cache subtracts the
first block's output from the last's (a TypeError at the first step). Z-Image's transformer has no
``CacheMixin`` (and its pipeline sets no cache context). :func:`apply_step_cache` refuses both,
naming the setting.

The cache's state lives in hooks on the transformer's blocks and is reset at the end of each
pipeline call; a run stopped half way (a cancel, an error) leaves it behind, so the engine calls
:func:`reset_step_cache` before each call. Apply it after LoRAs are prepared and before the fast
path, so a compiled transformer is compiled with its hooks in place.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from plantain.errors import ConfigurationError


def apply_step_cache(pipeline: Any, threshold: float, *, engine: str = "") -> None:
    """Turn the first-block cache on for ``pipeline``'s transformer at ``threshold``; refused with
    ``ConfigurationError(field="step_cache")`` for a threshold that is not a finite number >= 0 or
    a transformer that cannot take it."""
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ConfigurationError(
            f"step_cache: the threshold for engine {engine} is {threshold}; it must be a number from 0 "
            "(no step skipped) up, typically 0.05 to 0.2 (PLANTAIN_STEP_CACHE)",
            field="step_cache",
        )
    from diffusers.hooks.first_block_cache import FirstBlockCacheConfig

    transformer = _cacheable_transformer(pipeline, engine)
    if transformer.is_cache_enabled:
        transformer.disable_cache()  # a second call replaces the threshold
    transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))


def reset_step_cache(pipeline: Any) -> None:
    """Forget what an earlier (perhaps stopped) run left in the cache; cheap, and a no-op without it."""
    transformer = getattr(pipeline, "transformer", None)
    if getattr(transformer, "is_cache_enabled", False):
        transformer._reset_stateful_cache()  # type: ignore[union-attr]


def describe_step_cache(pipeline: Any) -> dict[str, Any] | None:
    """For the engine card: the cache and its threshold, or None when it is off."""
    transformer = getattr(pipeline, "transformer", None)
    config = getattr(transformer, "_cache_config", None)
    if config is None:
        return None
    return {"kind": "first-block", "threshold": getattr(config, "threshold", None)}


def supports_step_cache(pipeline: Any) -> bool:
    """Whether ``pipeline``'s transformer can take the first-block cache."""
    try:
        _cacheable_transformer(pipeline, "")
    except ConfigurationError:
        return False
    return True


def _cacheable_transformer(pipeline: Any, engine: str) -> Any:
    """The transformer, if the cache can work on it: ``CacheMixin``, and at least two blocks of
    classes diffusers knows the outputs of (the hook must find the hidden states in them)."""
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS
    from diffusers.hooks._helpers import TransformerBlockRegistry
    from diffusers.models.cache_utils import CacheMixin

    transformer = getattr(pipeline, "transformer", None)
    name = type(transformer).__name__
    if not (isinstance(transformer, CacheMixin) and isinstance(transformer, torch.nn.Module)):
        raise _refusal(engine, f"its transformer ({name}) does not support caching")
    blocks = [
        block
        for child_name, child in transformer.named_children()
        if child_name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList)
        for block in child
    ]
    if len(blocks) < 2:
        raise _refusal(engine, f"its transformer ({name}) has fewer than two blocks")
    for block in blocks:
        try:
            TransformerBlockRegistry.get(type(block))
        except ValueError:
            raise _refusal(
                engine, f"diffusers does not know the outputs of its {type(block).__name__} blocks"
            ) from None
    head, tail = (TransformerBlockRegistry.get(type(block)) for block in (blocks[0], blocks[-1]))
    if (head.return_encoder_hidden_states_index is None) != (tail.return_encoder_hidden_states_index is None):
        # FLUX.2: double-stream blocks return (text, image), the single-stream ones one joint
        # sequence; the cache takes its last block's residual against its first's and fails.
        raise _refusal(
            engine,
            f"its first block ({type(blocks[0]).__name__}) and last ({type(blocks[-1]).__name__}) "
            "return different outputs, which diffusers' first-block cache cannot combine",
        )
    return transformer


def _refusal(engine: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"step_cache: engine {engine} cannot use the step cache: {why}; remove it from the setting "
        "step_cache (PLANTAIN_STEP_CACHE)",
        field="step_cache",
    )
