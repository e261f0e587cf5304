"""LoRAs per request: the operator's allow-list, and the adapters an engine's pipeline runs with.

A request names LoRAs from the allow-list of its engine (setting ``loras``, plus the engine's own,
``Engine.builtin_loras``), never a path or a URL: :func:`resolve_loras` turns its choices into the
job's :data:`~plantain.engines.jobs.LoraSet` (sorted (name, scale) pairs), so jobs with the same
set batch together. Before each pipeline call the engine's :class:`Adapters` makes the pipeline's
active adapters exactly that set (under the engine's run lock: the adapters are pipeline state).

Two modes, picked by the setting ``lora_hotswap_rank``:

- **one adapter per LoRA** (unset): each LoRA is loaded once, beside the others, as its own PEFT
  adapter; a run activates its set with its scales (``set_adapters``), several LoRAs combine, and a
  run without LoRAs disables them all. Loaded adapters stay in memory (the allow-list bounds them).
- **hot-swap** (set): one adapter slot of that rank; a run with another LoRA swaps its weights into
  the slot in place (``hotswap=True``), so a compiled transformer is not compiled again. One LoRA at
  a time (a slot holds one), and every allow-listed LoRA must target the same layers as the first
  one loaded and have a rank of at most ``lora_hotswap_rank``.

A LoRA at scale 0 is the same as none: it is left out of the run, so the base image comes back
exactly. PEFT cannot put adapters on torchao's fp8 layers, so per-request LoRAs and
``quantization=fp8`` exclude each other (:func:`check_quantization`); a LoRA fused into the weights
at load (:func:`fuse`, before quantization) is fine.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plantain.engines.jobs import LoraSet
from plantain.errors import ConfigurationError, EngineLoadError, InvalidRequestError
from plantain.settings import Settings
from plantain.settings.extras import LoraSource
from plantain.types import LoraChoice

logger = logging.getLogger(__name__)

SLOT = "plantain_slot"
"""The one adapter name of hot-swap mode."""

_SEVERAL_ADAPTERS = "Already found a `peft_config` attribute in the model"

# What a hub repository id looks like ("owner/name"); anything else that is not a file is missing.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# --- the request side --------------------------------------------------------------------------


def looks_like_location(name: str) -> bool:
    """Whether a requested LoRA name looks like a path or a URL rather than an allow-list name:
    refused before any lookup, so a request can never make the server open a file it names."""
    return (
        "/" in name
        or "\\" in name
        or ":" in name  # URL schemes, Windows drives
        or name.startswith((".", "~"))
    )


def resolve_loras(
    engine_name: str, choices: Sequence[LoraChoice], allowed: Mapping[str, LoraSource]
) -> LoraSet:
    """The LoRAs ``choices`` asks for on ``engine_name``, as sorted (name, scale) pairs: each name
    from ``allowed`` (the engine's allow-list), once; a choice without a scale takes the list's."""
    resolved: dict[str, float] = {}
    for index, choice in enumerate(choices):
        field = f"loras[{index}].name"
        if looks_like_location(choice.name) or choice.name not in allowed:
            raise InvalidRequestError(_unknown_message(engine_name, choice.name, allowed, field), field=field)
        if choice.name in resolved:
            raise InvalidRequestError(
                f"{field}: LoRA {choice.name!r} is named twice; name each LoRA once, with one scale",
                field=field,
            )
        scale = choice.scale if choice.scale is not None else allowed[choice.name].scale
        resolved[choice.name] = float(scale)
    return tuple(sorted(resolved.items()))


def _unknown_message(engine_name: str, name: str, allowed: Mapping[str, LoraSource], field: str) -> str:
    what = "a path or URL, not a LoRA name" if looks_like_location(name) else "not a LoRA of this engine"
    known = (
        f"its LoRAs are {', '.join(sorted(allowed))}"
        if allowed
        else "it has none (the operator's setting loras lists none for it)"
    )
    return f"{field}: {name!r} is {what} on engine {engine_name}: {known}"


def check_hotswap_count(engine_name: str, loras: LoraSet, settings: Settings) -> None:
    """Refuse a set of several LoRAs where the engine hot-swaps them into one slot."""
    active = [name for name, scale in loras if scale != 0]
    if settings.lora_hotswap_rank is not None and len(active) > 1:
        raise InvalidRequestError(
            f"loras: engine {engine_name} runs one LoRA at a time (this server hot-swaps LoRAs into one "
            f"slot, setting lora_hotswap_rank); the request asks for {len(active)}: {', '.join(active)}",
            field="loras",
        )


# --- settings checks ---------------------------------------------------------------------------


def check_quantization(
    settings: Settings, allowed: Mapping[str, Mapping[str, LoraSource]] | None = None
) -> None:
    """Refuse per-request LoRAs on an fp8-quantized transformer: PEFT wraps only plain (and int8
    torchao) linear layers, so loading an adapter would fail at the first request. ``allowed`` is
    the allow-list per engine (default: the setting ``loras``; pass the engines' own as well)."""
    if settings.quantization != "fp8":
        return
    lists = settings.loras if allowed is None else allowed
    engines = sorted(engine for engine, names in lists.items() if names)
    if engines:
        raise ConfigurationError(
            f"loras: per-request LoRAs for {', '.join(engines)} cannot run with quantization=fp8 "
            "(PEFT cannot wrap torchao's fp8 layers): set quantization (PLANTAIN_QUANTIZATION) to "
            "none, or empty loras (PLANTAIN_LORAS) for these engines",
            field="loras",
        )


def check_names(settings: Settings) -> None:
    """Refuse an allow-list name that looks like a path or URL: requests could never name it."""
    for engine, names in settings.loras.items():
        for name in names:
            if looks_like_location(name):
                raise ConfigurationError(
                    f"loras: LoRA name {name!r} of engine {engine} looks like a path or URL; name it "
                    "with a plain word (its source holds the path)",
                    field="loras",
                )


# --- the pipeline side -------------------------------------------------------------------------


class Adapters:
    """The LoRA adapters of one engine's pipeline: loads each allow-listed LoRA when first asked
    for and activates a run's set. Every method that touches the pipeline is called under the
    engine's run lock."""

    def __init__(
        self, engine_name: str, settings: Settings, allowed: Mapping[str, LoraSource] | None = None
    ) -> None:
        self.engine_name = engine_name
        self.settings = settings
        self.allowed: dict[str, LoraSource] = dict(
            settings.loras.get(engine_name, {}) if allowed is None else allowed
        )
        self.hotswap_rank = settings.lora_hotswap_rank
        self._adapter_ids: dict[str, str] = {}  # LoRA name -> its PEFT adapter name (own mode)
        self._slot: str | None = None  # the LoRA in the hot-swap slot; None: empty or unknown
        self._slot_filled = False  # whether the slot adapter exists in the pipeline
        self._active: LoraSet | None = ()  # what the last apply left active; None: unknown
        self._enabled = True  # False after disable_lora, until a set is activated again

    @property
    def mode(self) -> str:
        return "hotswap" if self.hotswap_rank is not None else "adapters"

    def prepare(self, pipeline: Any) -> None:
        """Check the pipeline takes LoRAs and, in hot-swap mode, reserve the slot's rank. Call it
        right after the pipeline is built, before any compilation (the fast path): hot-swapping
        into a compiled transformer needs its LoRA layers padded to the rank first."""
        if not self.allowed:
            return
        if not hasattr(pipeline, "load_lora_weights"):
            raise ConfigurationError(
                f"loras: engine {self.engine_name}'s pipeline ({type(pipeline).__name__}) takes no LoRAs; "
                f"remove it from the setting loras (PLANTAIN_LORAS)",
                field="loras",
            )
        if self.hotswap_rank is not None:
            pipeline.enable_lora_hotswap(target_rank=self.hotswap_rank)

    def apply(self, pipeline: Any, loras: LoraSet) -> None:
        """Make ``loras`` (scale-0 entries left out) the pipeline's active adapters for the next call."""
        active: LoraSet = tuple((name, scale) for name, scale in loras if scale != 0)
        if active == self._active:
            return
        for name, _scale in active:
            if name not in self.allowed:  # planning resolved the names: this is a programming error
                raise ValueError(f"LoRA {name!r} is not on engine {self.engine_name}'s allow-list")
        self._active = None  # unknown until done: a failure half way makes the next call redo it all
        if not active:
            if self._adapter_ids or self._slot_filled:
                pipeline.disable_lora()
                self._enabled = False
        else:
            if self.hotswap_rank is not None:
                self._apply_hotswap(pipeline, active)
            else:
                self._apply_adapters(pipeline, active)
            if not self._enabled:
                pipeline.enable_lora()
                self._enabled = True
        self._active = active

    def _apply_adapters(self, pipeline: Any, active: LoraSet) -> None:
        for name, _scale in active:
            if name not in self._adapter_ids:
                adapter_id = f"lora_{len(self._adapter_ids)}"  # PEFT names cannot hold dots
                self._load(pipeline, name, adapter_name=adapter_id, hotswap=False)
                self._adapter_ids[name] = adapter_id
        pipeline.set_adapters([self._adapter_ids[name] for name, _ in active], [scale for _, scale in active])

    def _apply_hotswap(self, pipeline: Any, active: LoraSet) -> None:
        check_hotswap_count(self.engine_name, active, self.settings)
        ((name, scale),) = active
        if name != self._slot:
            swapping = self._slot_filled
            self._slot = None  # unknown until the load succeeds: a failed swap may leave it mixed
            self._load(pipeline, name, adapter_name=SLOT, hotswap=swapping)
            self._slot_filled = True
            self._slot = name
        pipeline.set_adapters([SLOT], [scale])

    def _load(self, pipeline: Any, name: str, *, adapter_name: str, hotswap: bool) -> None:
        source = self.allowed[name]
        location = lora_location(self.engine_name, name, source, self.settings.hub_cache)
        kwargs: dict[str, Any] = {"adapter_name": adapter_name}
        if source.weight_name is not None:
            kwargs["weight_name"] = source.weight_name
        if hotswap:
            kwargs["hotswap"] = True
        try:
            with warnings.catch_warnings():
                # PEFT warns that a model holds several adapters: here that is the design.
                warnings.filterwarnings("ignore", _SEVERAL_ADAPTERS, UserWarning)
                pipeline.load_lora_weights(location, **kwargs)
        except Exception as exc:
            failure = _load_failure(self.engine_name, name, source, exc, self.hotswap_rank)
            raise EngineLoadError(failure) from exc
        logger.info("engine %s: LoRA %s loaded from %s", self.engine_name, name, source.source)

    def describe(self) -> dict[str, Any]:
        """For the engine card: the names a request may use, what is loaded, and the mode."""
        loaded = (
            sorted(self._adapter_ids) if self.hotswap_rank is None else ([self._slot] if self._slot else [])
        )
        return {
            "allowed": {name: {"scale": source.scale} for name, source in sorted(self.allowed.items())},
            "loaded": loaded,
            "active": [list(pair) for pair in self._active or ()],
            "mode": self.mode,
            "hotswap_rank": self.hotswap_rank,
            "max_per_request": 1 if self.hotswap_rank is not None else None,
        }


def fuse(
    pipeline: Any,
    source: LoraSource,
    scale: float,
    *,
    engine_name: str = "",
    name: str = "fused",
    hub_cache: Path | None = None,
) -> None:
    """Bake one LoRA into the transformer's weights at ``scale`` and drop its adapter layers, for
    an engine whose preset is a LoRA: after it the pipeline runs as a plain checkpoint (so fp8
    quantization and compilation work on it). Call it at load, before the fast path."""
    location = lora_location(engine_name, name, source, hub_cache)
    kwargs: dict[str, Any] = {"adapter_name": name}
    if source.weight_name is not None:
        kwargs["weight_name"] = source.weight_name
    try:
        pipeline.load_lora_weights(location, **kwargs)
        pipeline.fuse_lora(lora_scale=scale, adapter_names=[name])
        pipeline.unload_lora_weights()
    except Exception as exc:
        raise EngineLoadError(_load_failure(engine_name, name, source, exc, None)) from exc


def lora_location(engine_name: str, name: str, source: LoraSource, hub_cache: Path | None) -> str:
    """What ``load_lora_weights`` reads: a local file or directory, or a hub id's snapshot in the
    hub cache (never downloaded: a server must not stall on a fetch, and offline the loader could
    not guess the file name of a hub repository)."""
    path = Path(source.source).expanduser()
    if path.exists():
        return str(path)
    if not _HUB_ID.match(source.source):
        raise EngineLoadError(
            f"engine {engine_name}: LoRA {name}'s source {source.source} is not a file or directory "
            "(setting loras)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return str(snapshot_download(source.source, cache_dir=hub_cache, local_files_only=True))
    except LocalEntryNotFoundError as exc:
        raise EngineLoadError(
            f"engine {engine_name}: LoRA {name}'s source {source.source} is neither a local path nor "
            f"in the hub cache{f' {hub_cache}' if hub_cache else ''}; download it there first "
            "(the server never downloads LoRAs)"
        ) from exc


def pull_lora(source: LoraSource, hub_cache: Path | None) -> Path | None:
    """Download a hub LoRA (only its ``weight_name`` file when one is named) into the hub cache,
    for ``plantain pull``; None for a local source, which has nothing to download."""
    if Path(source.source).expanduser().exists() or not _HUB_ID.match(source.source):
        return None
    from huggingface_hub import snapshot_download

    patterns = [source.weight_name] if source.weight_name else None
    return Path(snapshot_download(source.source, cache_dir=hub_cache, allow_patterns=patterns))


def _load_failure(
    engine_name: str, name: str, source: LoraSource, exc: Exception, hotswap_rank: int | None
) -> str:
    first_line = (str(exc).strip().splitlines() or [""])[0]
    weight = f" ({source.weight_name})" if source.weight_name else ""
    hint = (
        f"; in hot-swap mode every LoRA must target the same layers and have a rank of at most "
        f"{hotswap_rank} (setting lora_hotswap_rank)"
        if hotswap_rank is not None
        else ""
    )
    return (
        f"engine {engine_name}: LoRA {name} could not be loaded from {source.source}{weight}: "
        f"{type(exc).__name__}: {first_line}{hint}"
    )
