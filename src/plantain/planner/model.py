"""The planner's language model: any transformers causal LM with a chat template, or a
vision-language model that also reads the request's input images, found the way the engines find
their checkpoints and never downloaded by the server.

``planner_model`` names it: a hub id read from the hub cache (``plantain``'s ``hub_cache`` setting,
or the hub library's), a local directory, or ``tiny`` / ``tiny-vl``, random-weight checkpoints
built into ``<data_dir>/models/`` on first use (:mod:`plantain.planner.tiny`,
:mod:`plantain.planner.tiny_vl`). Decoding is greedy, so the same request is rewritten the same way
every time (a seed then reproduces the whole answer).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants as hub_constants
from PIL import Image

from plantain.engines.checkpoints import BuiltIn, NamedCheckpoint
from plantain.engines.loading import pick_device, quiet_libraries
from plantain.errors import ConfigurationError
from plantain.planner import tiny, tiny_vl
from plantain.settings import Settings

logger = logging.getLogger(__name__)

TINY = "tiny"
TINY_VL = "tiny-vl"

# The built-in random-weight checkpoints: their directory under models_dir and their builder.
BUILT_IN = {
    TINY: BuiltIn(tiny.CHECKPOINT_DIR_NAME, tiny.build_checkpoint),
    TINY_VL: BuiltIn(tiny_vl.CHECKPOINT_DIR_NAME, tiny_vl.build_checkpoint),
}

# Longest side an input image is shown to a vision model at. Every image becomes vision tokens the
# model reads before writing a word (Qwen3-VL: one per 32x32 px, so 576 for 768x768 but 4096 for a
# 2048x2048 upload), and prefill time grows with them; 768 px still shows a diagram's structure and
# a label's lettering, which is what a rewrite needs from an image. Not a setting: it trades only
# planner latency against detail the prompt rewrite rarely needs.
MAX_IMAGE_SIDE = 768


@dataclass(frozen=True)
class Generated:
    """One generation: the text (special tokens removed) and the tokens read and written."""

    text: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class _Loaded:
    """A loaded checkpoint. ``tokenizer`` is a causal LM's tokenizer or a vision model's
    processor (which decodes, through its tokenizer, the same way)."""

    tokenizer: Any
    model: Any
    sees_images: bool


class PlannerModel:
    """The ``planner_model`` checkpoint, loaded once (on :meth:`load` or the first generation) and
    used by one generation at a time: a causal LM holds its KV cache per call, and two requests
    interleaving on one GPU would only slow each other down."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.name = settings.planner_model
        self.checkpoint = NamedCheckpoint(
            setting="planner_model",
            name=self.name,
            models_dir=settings.models_dir,
            hub_cache=settings.hub_cache or Path(hub_constants.HF_HUB_CACHE),
            built_in=BUILT_IN,
            holds="a transformers causal language model with its tokenizer (or a vision-language "
            "model with its processor)",
            otherwise="set planner=off",
        )
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._sees_images: bool | None = None  # read from the config before loading, once

    def present(self) -> bool:
        """Whether loading would find the checkpoint (reads only the file system)."""
        return self.checkpoint.present()

    # --- loading and generating --------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def sees_images(self) -> bool:
        """Whether the checkpoint is a vision-language model, so :meth:`generate` shows it the
        request's images. Known once loaded (or adopted); before that it is read from the
        checkpoint's config alone, without the weights (``tiny-vl`` is built first if missing).
        A missing checkpoint raises :class:`MissingWeightsError`, as loading would."""
        with self._lock:
            if self._loaded is not None:
                return self._loaded.sees_images
            if self._sees_images is None:
                self._sees_images = _is_vision_language(self._read_config(self.checkpoint.resolve()))
            return self._sees_images

    def load(self) -> None:
        """Load the tokenizer and the model; a second call does nothing."""
        with self._lock:
            self._ensure_loaded()

    def adopt(self, tokenizer: Any, model: Any) -> None:
        """Use a tokenizer and causal LM already in memory instead of loading ``planner_model``
        (a benchmark's random-weight model at real size; a model shared with another stage), or a
        vision model's processor (anything with an ``image_processor``) and the model. They get
        the same checks and greedy set-up as a loaded checkpoint."""
        sees_images = hasattr(tokenizer, "image_processor")
        with self._lock:
            device = pick_device(self.settings.planner_device)
            self._loaded = self._prepared(tokenizer, model, device, sees_images=sees_images)

    def generate(
        self,
        system: str,
        user: str,
        *,
        images: Sequence[Image.Image] = (),
        max_new_tokens: int,
        min_new_tokens: int = 0,
    ) -> Generated:
        """The model's greedy answer to one chat turn. A vision model sees ``images`` first in the
        user turn, each shrunk to :data:`MAX_IMAGE_SIDE` at most, and ``input_tokens`` counts their
        vision tokens; a text-only model ignores them (callers pass them only when
        :attr:`sees_images`). ``min_new_tokens`` holds off the end of turn (benchmarks: random
        weights may end at once)."""
        with self._lock:
            loaded = self._ensure_loaded()
            if loaded.sees_images:
                inputs = _vision_chat_inputs(loaded.tokenizer, system, user, images)
            else:
                inputs = _chat_inputs(loaded.tokenizer, system, user)
            inputs = inputs.to(loaded.model.device)
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

    @property
    def _where(self) -> dict[str, Any]:
        """How every ``from_pretrained`` here finds the checkpoint: locally, never downloading."""
        return {"local_files_only": True, "cache_dir": self.checkpoint.hub_cache}

    def _read_config(self, location: str) -> Any:
        """The checkpoint's transformers config (a small JSON file; no weights are read)."""
        from transformers import AutoConfig

        quiet_libraries()
        with self._clear_errors():
            return AutoConfig.from_pretrained(location, **self._where)

    def _load(self) -> _Loaded:
        location = self.checkpoint.resolve()
        config = self._read_config(location)
        device = pick_device(self.settings.planner_device)
        sees_images = _is_vision_language(config)
        with self._clear_errors():
            if sees_images:
                tokenizer, model = self._read_vision_language(location, config, device)
            else:
                tokenizer, model = self._read_causal_lm(location, device)
        return self._prepared(tokenizer, model, device, sees_images=sees_images)

    def _read_causal_lm(self, location: str, device: torch.device) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(location, **self._where)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=_dtype(device), **self._where)
        return tokenizer, model

    def _read_vision_language(self, location: str, config: Any, device: torch.device) -> tuple[Any, Any]:
        """A vision-language model and its processor, loaded without the processor's video half:
        the planner shows only images, and transformers builds Qwen-VL's video processor only with
        torchvision, which a CPU install lacks."""
        from transformers import AutoModelForImageTextToText

        processor = images_only_processor_class(type(config)).from_pretrained(location, **self._where)
        model = AutoModelForImageTextToText.from_pretrained(location, dtype=_dtype(device), **self._where)
        return processor, model

    @contextlib.contextmanager
    def _clear_errors(self) -> Iterator[None]:
        """Loading failures as one sentence naming the setting: a missing file is missing weights,
        a config transformers cannot load as a chat model a configuration error."""
        try:
            yield
        except OSError as exc:
            raise self.checkpoint.unreadable(exc) from exc
        except (ValueError, KeyError) as exc:  # e.g. a config with no causal LM or processor class
            raise ConfigurationError(
                f"setting planner_model: {self.name} is not a causal language model or vision-language "
                f"model transformers can load ({exc}); name an instruction model such as "
                "Qwen/Qwen3-4B-Instruct-2507 or Qwen/Qwen3-VL-4B-Instruct"
            ) from exc

    def _prepared(self, tokenizer: Any, model: Any, device: torch.device, *, sees_images: bool) -> _Loaded:
        """A tokenizer (or processor) and model checked and made ready for greedy chat generation
        on ``device``. A processor renders chats with its own template, a tokenizer with its."""
        if not tokenizer.chat_template:
            raise ConfigurationError(
                f"setting planner_model: {self.name}'s tokenizer has no chat template; the planner "
                "needs an instruction (chat) model, e.g. Qwen/Qwen3-4B-Instruct-2507"
            )
        model = model.to(device).eval()  # eval: no dropout, whatever state it was built or saved in
        model.generation_config = _greedy_config(model)
        logger.info("planner model %s ready on %s (sees images: %s)", self.name, device, sees_images)
        return _Loaded(tokenizer, model, sees_images)


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
    eos = (
        shipped.eos_token_id
        if shipped.eos_token_id is not None
        else _text_config_value(model, "eos_token_id")
    )
    pad = (
        shipped.pad_token_id
        if shipped.pad_token_id is not None
        else _text_config_value(model, "pad_token_id")
    )
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


def _text_config_value(model: Any, name: str) -> Any:
    """A token id from the model's config, or from its language half's (a vision-language config
    keeps them in ``text_config``)."""
    value = getattr(model.config, name, None)
    return value if value is not None else getattr(model.config.get_text_config(), name, None)


def _is_vision_language(config: Any) -> bool:
    """Whether a checkpoint is loaded as a vision-language model. The rule: its config has a
    ``vision_config`` (every transformers VLM keeps its vision tower's settings there; a causal LM
    has none) and ``AutoModelForImageTextToText`` has a class for it. The architecture name is not
    used: ``...ForConditionalGeneration`` also names text-only models (T5, BART). A config with a
    vision half that transformers cannot run on images is tried as a causal LM."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING

    has_vision = getattr(config, "vision_config", None) is not None
    return has_vision and type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING


def images_only_processor_class(config_class: type) -> Any:
    """The processor class transformers pairs with ``config_class``, without its video processor
    when it has one (Qwen-VL's needs torchvision to load, and the planner never shows video). The
    subclass keeps the stock name and module, so a checkpoint saved with it loads with the stock
    class elsewhere. A config with no processor class raises KeyError."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    stock: Any = PROCESSOR_MAPPING[config_class]
    if "video_processor" not in stock.get_attributes():
        return stock

    class ImagesOnly(stock):  # type: ignore[misc]  # a class chosen at run time
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [name for name in stock.get_attributes() if name != "video_processor"]

    ImagesOnly.__name__ = ImagesOnly.__qualname__ = stock.__name__
    ImagesOnly.__module__ = stock.__module__
    return ImagesOnly


def _vision_chat_inputs(processor: Any, system: str, user: str, images: Sequence[Image.Image]) -> Any:
    """One system and one user turn (the images, then the text) through the processor's chat
    template and image processor, ready for the assistant's answer. Contents are lists of typed
    entries, the form processors read images from. ``sanitize_control_tokens`` keeps a prompt that
    contains ``<|image_pad|>`` or ``<|im_end|>`` from posing as an image or a turn's end (a stray
    image token would not match the image features and fail the generation). A hybrid template's
    ``enable_thinking`` is set off only where the template reads it: the processor treats any
    other keyword as an argument for itself."""
    content: list[dict[str, Any]] = [{"type": "image", "image": _bounded(image)} for image in images]
    content.append({"type": "text", "text": user})
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": content},
    ]
    template_flags = {"enable_thinking": False} if "enable_thinking" in processor.chat_template else {}
    return processor.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=True,
        sanitize_control_tokens=True,
        **template_flags,
    )


def _bounded(image: Image.Image) -> Image.Image:
    """``image`` shrunk, aspect kept, so its longer side is at most :data:`MAX_IMAGE_SIDE` (a
    copy; the caller's image is the engine's input and stays as it is)."""
    if max(image.size) <= MAX_IMAGE_SIDE:
        return image
    scale = MAX_IMAGE_SIDE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)
