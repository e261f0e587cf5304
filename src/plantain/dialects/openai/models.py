"""``GET /v1/models`` and ``GET /v1/models/{model}`` in OpenAI's shape: every name a caller may
pass as ``model``, each with the provenance marks its images get (an extension field; the SDK
keeps extras)."""

from __future__ import annotations

from typing import Any

from plantain.engines.model_names import engine_for_model, is_served, served_models
from plantain.engines.registry import EngineRegistry
from plantain.errors import UnknownModelError
from plantain.providers.passthrough import listed_provenance

MODEL_CREATED = 0  # served models have no meaningful creation time


def models_body(registry: EngineRegistry, provenance: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's list shape: vendor model names, then engine names, each
    with the ``provenance`` marks its images get (an extension field; the SDK keeps extras)."""
    return {
        "object": "list",
        "data": [_model(registry, name, provenance) for name in served_models(registry)],
    }


def model_body(registry: EngineRegistry, model: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """``GET /v1/models/{model}``; an unknown name is a 404."""
    if not is_served(registry, model):
        served = ", ".join(served_models(registry))
        raise UnknownModelError(f"model {model!r} is not served here; use one of {served}", field="model")
    return _model(registry, model, provenance)


def _model(registry: EngineRegistry, name: str, provenance: dict[str, Any]) -> dict[str, Any]:
    """``name``'s entry; the provenance its engine's images get (a provider's carry none of ours)."""
    engine = registry.get(engine_for_model(registry, name))
    return {
        "id": name,
        "object": "model",
        "created": MODEL_CREATED,
        "owned_by": "plantain",
        "provenance": listed_provenance(engine, provenance),
    }
