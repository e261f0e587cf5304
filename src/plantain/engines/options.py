"""A request's sampler choices for one engine: a named preset (``options.preset``), explicit steps
and guidance, and LoRAs from the engine's allow-list (docs/loras.md).

Checked before anything is decoded or loaded (``check_task``), and fixed again when the job is
planned, so a name that is not on the engine's lists never reaches a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plantain.engines.jobs import LoraSet, NamedPreset
from plantain.engines.lora import check_hotswap_count, resolve_loras
from plantain.errors import InvalidRequestError, UnsupportedTaskError
from plantain.types import ImageRequest

if TYPE_CHECKING:
    from plantain.engines.base import Engine


def run_options(engine: Engine, request: ImageRequest) -> tuple[int, float, LoraSet]:
    """The steps, guidance and LoRAs ``request`` runs with on ``engine``: explicit values win over
    the named preset's, which win over the engine's preset; the preset's LoRAs come first and a
    LoRA the request names too takes the request's scale."""
    options = request.options
    named = named_preset(engine, options.preset)
    steps = options.steps if options.steps is not None else (named or engine.preset).steps
    guidance = options.guidance if options.guidance is not None else (named or engine.preset).guidance
    chosen = dict(named.loras) if named else {}
    chosen.update(resolve_loras(engine.name, request.loras, engine.allowed_loras))
    loras = tuple(sorted(chosen.items()))
    if loras:
        _check_lora_runs(engine, loras)
    return steps, guidance, loras


def _check_lora_runs(engine: Engine, loras: LoraSet) -> None:
    """Refuse LoRAs the engine cannot run as adapters: on an fp8 transformer (PEFT cannot wrap
    torchao's fp8 layers), or more than one where they are hot-swapped into one slot."""
    if engine.settings.quantization == "fp8":
        raise UnsupportedTaskError(
            f"loras: engine {engine.name} runs fp8-quantized (setting quantization), where LoRAs "
            f"cannot be added per request (asked: {', '.join(name for name, _ in loras)}); an engine "
            "with its LoRA fused at load runs with fp8 (e.g. qwen-image-edit-lightning)",
            field="loras",
        )
    check_hotswap_count(engine.name, loras, engine.settings)


def named_preset(engine: Engine, name: str | None) -> NamedPreset | None:
    """The engine's preset called ``name`` (None: its default), refused naming the ones it has."""
    if name is None:
        return None
    if name in engine.presets:
        return engine.presets[name]
    known = f"its presets are {', '.join(sorted(engine.presets))}" if engine.presets else "it has none"
    raise InvalidRequestError(
        f"preset {name!r} is not a preset of engine {engine.name}: {known} (plantain engines lists them)",
        field="preset",
    )
