"""The planner's language model: any transformers causal LM with a chat template, found the way the
engines find their checkpoints and never downloaded by the server.

``planner_model`` names it: a hub id read from the hub cache (``plantain``'s ``hub_cache`` setting,
or the hub library's), a local directory, or ``tiny``, a random-weight checkpoint built into
``<data_dir>/models/`` on first use (:mod:`plantain.planner.tiny`). Decoding is greedy, so the same
request is rewritten the same way every time (a seed then reproduces the whole answer).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from huggingface_hub import try_to_load_from_cache

from plantain.engines.loading import pick_device, quiet_libraries
from plantain.errors import ConfigurationError, MissingWeightsError
from plantain.planner import tiny
from plantain.settings import Settings

logger = logging.getLogger(__name__)

TINY = "tiny"


@dataclass(frozen=True)
class Generated:
    """One generation: the text (special tokens removed) and the tokens read and written."""

    text: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class _Loaded:
    tokenizer: Any
    model: Any


class PlannerModel:
    """The ``planner_model`` checkpoint, loaded once (on :meth:`load` or the first generation) and
    used by one generation at a time: a causal LM holds its KV cache per call, and two requests
    interleaving on one GPU would only slow each other down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.planner_model
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    # --- where the checkpoint is -------------------------------------------------------------

    @property
    def hub_cache(self) -> Path:
        return self.settings.hub_cache or Path(hub_constants.HF_HUB_CACHE)

    def directory(self) -> Path | None:
        """The local directory ``planner_model`` names (``tiny``'s in the data directory), or
        None when it is a hub id."""
        if self.name == TINY:
            return self.settings.models_dir / tiny.CHECKPOINT_DIR_NAME
        path = Path(self.name).expanduser()
        if path.is_absolute() or self.name.startswith((".", "~")) or path.is_dir():
            return path
        return None

    def present(self) -> bool:
        """Whether loading would find the checkpoint (``tiny`` always: it is built when missing).
        Reads only the file system."""
        directory = self.directory()
        if self.name == TINY:
            return True
        if directory is not None:
            return (directory / "config.json").is_file()
        cached = try_to_load_from_cache(self.name, "config.json", cache_dir=self.hub_cache)
        return isinstance(cached, str)

    def resolve(self) -> str:
        """What ``from_pretrained`` loads: a directory (``tiny`` built first) or a cached hub id."""
        directory = self.directory()
        if self.name == TINY and directory is not None and not (directory / "config.json").is_file():
            logger.info("building the tiny planner checkpoint in %s", directory)
            tiny.build_checkpoint(directory)
        elif not self.present():
            raise MissingWeightsError(self._missing_message())
        return str(directory) if directory is not None else self.name

    def _missing_message(self) -> str:
        if self.directory() is not None:
            return (
                f"setting planner_model: no checkpoint in {self.name} (config.json not found); point "
                "it at a directory holding a transformers causal language model with its tokenizer, "
                "or at a hub id in the hub cache, or set planner=off"
            )
        return (
            f"setting planner_model: {self.name} is not in the hub cache {self.hub_cache}, and the "
            f"server never downloads; fetch it first (hf download {self.name} --cache-dir "
            f"{self.hub_cache}), point planner_model at a local directory, use tiny (random "
            "weights, for tests), or set planner=off"
        )

    # --- loading and generating --------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Load the tokenizer and the model; a second call does nothing."""
        with self._lock:
            self._ensure_loaded()

    def adopt(self, tokenizer: Any, model: Any) -> None:
        """Use a tokenizer and causal LM already in memory instead of loading ``planner_model``
        (a benchmark's random-weight model at real size; a model shared with another stage).
        They get the same checks and greedy set-up as a loaded checkpoint."""
        with self._lock:
            self._loaded = self._prepared(tokenizer, model, pick_device(self.settings.planner_device))

    def generate(self, system: str, user: str, *, max_new_tokens: int, min_new_tokens: int = 0) -> Generated:
        """The model's greedy answer to one chat turn. ``min_new_tokens`` holds off the end of turn
        (benchmarks: random weights may end at once)."""
        with self._lock:
            loaded = self._ensure_loaded()
            inputs = _chat_inputs(loaded.tokenizer, system, user).to(loaded.model.device)
            with torch.inference_mode():
                output = loaded.model.generate(
                    **inputs, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, do_sample=False
                )
        prompt_length = int(inputs["input_ids"].shape[1])
        new_tokens = output[0, prompt_length:]
        text = loaded.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Generated(text=text, input_tokens=prompt_length, output_tokens=int(new_tokens.shape[0]))

    def describe(self) -> dict[str, Any]:
        """What listings show: the checkpoint, where it runs, whether it is here and loaded."""
        return {
            "model": self.name,
            "device": self.settings.planner_device,
            "max_tokens": self.settings.planner_max_tokens,
            "present": self.present(),
            "loaded": self.loaded,
        }

    def _ensure_loaded(self) -> _Loaded:
        """The loaded checkpoint; the caller holds the lock."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> _Loaded:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        quiet_libraries()
        location = self.resolve()
        device = pick_device(self.settings.planner_device)
        where: dict[str, Any] = {"local_files_only": True, "cache_dir": self.hub_cache}
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, **where)
            model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=_dtype(device), **where)
        except OSError as exc:
            raise MissingWeightsError(f"{self._missing_message()} ({type(exc).__name__}: {exc})") from exc
        except ValueError as exc:  # e.g. a config transformers has no causal LM class for
            raise ConfigurationError(
                f"setting planner_model: {self.name} is not a causal language model transformers "
                f"can load ({exc}); name an instruction model such as Qwen/Qwen3-4B-Instruct-2507"
            ) from exc
        return self._prepared(tokenizer, model, device)

    def _prepared(self, tokenizer: Any, model: Any, device: torch.device) -> _Loaded:
        """A tokenizer and model checked and made ready for greedy chat generation on ``device``."""
        if not tokenizer.chat_template:
            raise ConfigurationError(
                f"setting planner_model: {self.name}'s tokenizer has no chat template; the planner "
                "needs an instruction (chat) model, e.g. Qwen/Qwen3-4B-Instruct-2507"
            )
        model = model.to(device).eval()  # eval: no dropout, whatever state it was built or saved in
        model.generation_config = _greedy_config(model)
        logger.info("planner model %s ready on %s", self.name, device)
        return _Loaded(tokenizer, model)


def _dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on a GPU (how Qwen3 ships, half the memory beside the engine); float32 elsewhere,
    where bfloat16 matmuls are slow or missing."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _greedy_config(model: Any) -> Any:
    """The checkpoint's generation config without its sampling settings (Qwen3 ships
    temperature/top_p/top_k), so greedy decoding neither samples nor logs that they are unused."""
    from transformers import GenerationConfig

    greedy: Any = GenerationConfig  # untyped in transformers
    shipped = model.generation_config
    eos = shipped.eos_token_id if shipped.eos_token_id is not None else model.config.eos_token_id
    pad = shipped.pad_token_id if shipped.pad_token_id is not None else model.config.pad_token_id
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    return greedy(do_sample=False, bos_token_id=shipped.bos_token_id, eos_token_id=eos, pad_token_id=pad)


def _chat_inputs(tokenizer: Any, system: str, user: str) -> Any:
    """One system and one user turn through the tokenizer's chat template, ready for the
    assistant's answer. ``enable_thinking=False`` turns off a hybrid Qwen3's reasoning block; a
    template that does not read it ignores it."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(
        messages,
        add_generation_prompt=True,
        enable_thinking=False,
        return_tensors="pt",
        return_dict=True,
    )
