"""Vendor model names (what SDK users pass as ``model``) and the engines they run on."""

from __future__ import annotations

from plantain.engines.registry import EngineRegistry
from plantain.errors import UnknownModelError

GEMINI_MODELS = (
    "gemini-2.5-flash-image",
    "gemini-2.5-flash-image-preview",
    "nano-banana",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image-preview",
)
OPENAI_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "dall-e-3")
VENDOR_MODELS = GEMINI_MODELS + OPENAI_MODELS


def engine_for_model(registry: EngineRegistry, model: str | None) -> str:
    """The engine name a request's ``model`` runs on: an engine name, or a vendor name mapped by settings."""
    settings = registry.settings
    if not model:
        return settings.default_engine
    name = model.removeprefix("models/")
    if name in registry.names():
        return name
    if name in VENDOR_MODELS or name in settings.models:
        return settings.models.get(name, settings.default_engine)
    raise UnknownModelError(
        f"model {model!r} is not served here; use one of {', '.join(served_models(registry))}",
        field="model",
    )


def served_models(registry: EngineRegistry) -> list[str]:
    """Every name a client may pass as ``model``: vendor names first, then engine names."""
    extra = [name for name in registry.settings.models if name not in VENDOR_MODELS]
    return [*VENDOR_MODELS, *extra, *registry.names()]
