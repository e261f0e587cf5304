"""What an engine's card says beyond its capabilities: licence, presets, LoRAs, and how each size
tier is made (natively, by the upscaler, or not at all) — for ``plantain engines``,
``GET /v1/engines`` and docs/engines.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plantain.engines.upscaling import plan_tier_size
from plantain.errors import PlantainError
from plantain.imaging.sizes import TIERS

if TYPE_CHECKING:
    from plantain.engines.base import Engine

CARD_RATIO = "1:1"  # the ratio the card's sizes are shown at


def card(engine: Engine) -> dict[str, Any]:
    """The card's fields: ``licence``, ``presets``, ``loras``, ``step_cache`` and ``tiers``."""
    licence = engine.licence
    return {
        "licence": None
        if licence is None
        else {
            **licence.describe(),
            "gated": licence.gated,
            "accepted": not licence.gated or licence.id in engine.settings.accept_licences,
        },
        "presets": {
            name: {
                "steps": preset.steps,
                "guidance": preset.guidance,
                "loras": [name for name, _ in preset.loras],
                "description": preset.description,
            }
            for name, preset in sorted(engine.presets.items())
        },
        "loras": sorted(engine.allowed_loras),
        "step_cache": engine.settings.step_cache.get(engine.name),
        "tiers": {tier: tier_card(engine, tier) for tier in TIERS},
    }


def tier_card(engine: Engine, tier: str) -> dict[str, Any]:
    """How ``tier`` is made at 1:1: ``{"made": "native", "size": "2048x2048"}``, ``{"made":
    "upscaled", "size": …, "from": "2048x2048", "upscaler": …}`` or ``{"made": "refused",
    "reason": …}`` (the error a request would get)."""
    try:
        width, height, plan = plan_tier_size(engine, CARD_RATIO, tier, engine.settings.max_output_pixels)
    except PlantainError as exc:
        return {"made": "refused", "reason": exc.message}
    if plan is None:
        return {"made": "native", "size": f"{width}x{height}"}
    made = {
        "made": "upscaled",
        "size": f"{plan.width}x{plan.height}",
        "from": f"{width}x{height}",
        "upscaler": plan.upscaler,
    }
    return made | ({"refine_strength": plan.refine_strength} if plan.refine_strength else {})


def tier_line(tiers: dict[str, dict[str, Any]]) -> str:
    """``512 native, 1K native, 2K native, 4K upscaled from 2048x2048`` for the CLI's listing."""
    parts = []
    for tier, made in tiers.items():
        if made["made"] == "upscaled":
            parts.append(f"{tier} upscaled from {made['from']}")
        elif made["made"] == "refused" and "setting upscaler" in made["reason"]:
            parts.append(f"{tier} refused (no upscaler set)")
        else:
            parts.append(f"{tier} {made['made']}")
    return ", ".join(parts)
