"""Prompts as pipeline arguments, through the per-engine text embedding cache.

A family that subclasses :class:`TextEmbeddingHooks` as well as ``Engine`` and implements both
hooks has its prompt embeddings cached (``text_embedding_cache`` setting): a repeated prompt skips
the text encoder. Any other family hands its pipeline the prompts as text.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from plantain.engines.fastpath import Embedding

if TYPE_CHECKING:
    from plantain.engines.base import Engine

HOOKS = ("_encode_prompts", "_embedding_kwargs")


class TextEmbeddingHooks(ABC):
    """The two hooks the embedding cache needs. A class that implements only one of them is
    refused when it is defined: the other would fail on the first request, not at import."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        done = [hook for hook in HOOKS if not getattr(getattr(cls, hook), "__isabstractmethod__", False)]
        if len(done) == 1:
            raise TypeError(f"{cls.__name__} implements {done[0]} alone; the text embedding cache needs both")

    @abstractmethod
    def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Embedding]:
        """Run the text encoder on ``prompts`` as the pipeline would: one embedding each."""

    @abstractmethod
    def _embedding_kwargs(self, embeddings: list[Embedding]) -> dict[str, Any]:
        """One embedding per image, as the pipeline's ``prompt_embeds`` (and companions)."""


def refuse_stray_hooks(cls: type) -> None:
    """An engine class that writes the hooks without subclassing :class:`TextEmbeddingHooks`
    would run with the cache silently off: refuse it."""
    stray = [hook for hook in HOOKS if hasattr(cls, hook)]
    if stray and not issubclass(cls, TextEmbeddingHooks):
        raise TypeError(
            f"{cls.__name__} implements {' and '.join(stray)} without subclassing TextEmbeddingHooks"
        )


def prompt_kwargs(
    engine: Engine,
    pipeline: Any,
    prompts: Sequence[str],
    context: tuple[object, ...] = (),
    encode: Callable[[list[str]], list[Embedding]] | None = None,
) -> dict[str, Any]:
    """The pipeline arguments that carry ``prompts`` (one per image): their cached embeddings
    when ``engine``'s cache is on, else the prompts themselves. ``context`` is what else shapes
    the embeddings (conditioning images); ``encode`` replaces the engine's ``_encode_prompts``."""
    cache = engine.text_embeddings
    if cache is None or not isinstance(engine, TextEmbeddingHooks):
        return {"prompt": list(prompts)}
    key = (engine.name, tuple(sorted(engine.preset.call_kwargs.items())), *context)
    hooks = engine  # narrowed to the hooks' class: the lambda below must not widen it back
    with torch.no_grad():  # as inside the pipeline: cached embeddings must hold no autograd graph
        embeddings = cache.embeddings(
            prompts, key, encode or (lambda missing: hooks._encode_prompts(pipeline, missing))
        )
    return hooks._embedding_kwargs(embeddings)


def encoder_kwargs(pipeline: Any, call_kwargs: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """``encode_prompt`` arguments as ``__call__`` would pass them: the preset's ``call_kwargs``, else
    the call's defaults (which differ from encode_prompt's own, e.g. Qwen's max_sequence_length)."""
    defaults = inspect.signature(type(pipeline).__call__).parameters
    return {name: call_kwargs.get(name, defaults[name].default) for name in names}
