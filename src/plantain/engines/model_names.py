"""Vendor model names (what SDK users pass as ``model``) and the engines they run on.

:data:`MODELS` is the one list of vendor names served: every image model in the ``openai`` and
``google-genai`` SDKs' own model lists (``tests/dialects/test_model_names.py`` fails when an SDK
adds one), plus older names clients still send. ``scripts/model_table.py`` writes docs/models.md
from it. A vendor name runs on the default engine unless the ``models`` setting maps it.

A name may come with its vendor in front, as routers and gateways write ids (``google/…``,
``openai/…``); an engine name may come with ``plantain/`` or its checkpoint's hub organisation in
front (``black-forest-labs/flux2-klein-4b``).
"""

from __future__ import annotations

from dataclasses import dataclass

from plantain.engines.registry import FAMILIES, EngineRegistry
from plantain.errors import UnknownModelError


@dataclass(frozen=True)
class VendorModel:
    name: str
    vendor: str  # the id prefix routers use: "google" or "openai"
    api: str  # where the vendor serves it: "gemini" (generateContent), "imagen" (:predict), "openai"
    note: str = ""


def _google(*names: str, note: str = "") -> tuple[VendorModel, ...]:
    return tuple(VendorModel(name, "google", "gemini", note) for name in names)


def _imagen(*names: str, note: str = "") -> tuple[VendorModel, ...]:
    return tuple(VendorModel(name, "google", "imagen", note) for name in names)


def _openai(*names: str, note: str = "") -> tuple[VendorModel, ...]:
    return tuple(VendorModel(name, "openai", "openai", note) for name in names)


MODELS: tuple[VendorModel, ...] = (
    *_google("gemini-2.5-flash-image", note="Nano Banana"),
    *_google("gemini-2.5-flash-image-preview", note="preview of gemini-2.5-flash-image"),
    *_google("nano-banana", note="nickname of gemini-2.5-flash-image"),
    *_google("gemini-3-pro-image", note="Nano Banana Pro"),
    *_google("gemini-3-pro-image-preview", "nano-banana-pro-preview", note="preview of gemini-3-pro-image"),
    *_google("gemini-3.1-flash-image", note="Nano Banana 2"),
    *_google("gemini-3.1-flash-image-preview", note="preview of gemini-3.1-flash-image"),
    *_google("gemini-3.1-flash-lite-image", "gemini-nano-banana-2.1"),  # google-genai's Model list
    *_google(
        "gemini-2.0-flash-preview-image-generation",
        "gemini-2.0-flash-exp-image-generation",
        note="retired by Google; older clients still send it",
    ),
    *_imagen("imagen-4.0-generate-001", "imagen-4.0-ultra-generate-001", "imagen-4.0-fast-generate-001"),
    *_imagen("imagen-4.0-ingredients-preview", note="editing (google-genai's edit_image)"),
    *_imagen(
        "imagen-3.0-generate-002",
        "imagen-3.0-generate-001",
        "imagen-3.0-fast-generate-001",
        "imagen-3.0-capability-001",
        note="retired by Google; older clients still send it",
    ),
    *_openai("gpt-image-2", "gpt-image-2-2026-04-21"),
    *_openai("gpt-image-2.5-sunburst", "gpt-image-2.5-sunburst-2026-09-08"),
    *_openai("gpt-image-2.5-flare", "gpt-image-2.5-flare-2026-09-08"),
    *_openai("gpt-image-2.6-sunburst", "gpt-image-2.6-flare"),
    *_openai("gpt-image-1.5", "gpt-image-1-mini", "chatgpt-image-latest"),
    *_openai("gpt-image-1", "dall-e-3", "dall-e-2", note="retired by OpenAI; older clients still send it"),
)
VENDORS = ("google", "openai")
GEMINI_MODELS = tuple(model.name for model in MODELS if model.vendor == "google")
OPENAI_MODELS = tuple(model.name for model in MODELS if model.vendor == "openai")
VENDOR_MODELS = tuple(model.name for model in MODELS)
VENDOR_OF = {model.name: model.vendor for model in MODELS}
API_OF = {model.name: model.api for model in MODELS}  # "gemini", "imagen" (:predict) or "openai"


def hub_organisation(engine: str) -> str | None:
    """The hub organisation of a built-in engine's checkpoint, lowercased (``black-forest-labs``)."""
    for family in FAMILIES:
        if family.engine == engine and family.hub_id:
            return family.hub_id.split("/", 1)[0].lower()
    return None


def without_vendor(registry: EngineRegistry, model: str) -> str:
    """``model`` without ``models/`` and a known vendor prefix: ``google/gemini-2.5-flash-image``
    -> ``gemini-2.5-flash-image``, ``black-forest-labs/flux2-klein-4b`` -> ``flux2-klein-4b``.
    A name the ``models`` setting lists as written is kept whole."""
    name = model.removeprefix("models/")
    if name in registry.settings.models or "/" not in name:
        return name
    vendor, rest = name.split("/", 1)
    vendor = vendor.lower()
    if VENDOR_OF.get(rest) == vendor or (vendor in VENDORS and rest in registry.settings.models):
        return rest
    if rest in registry.names() and vendor in ("plantain", hub_organisation(rest)):
        return rest
    return name


def engine_for_model(registry: EngineRegistry, model: str | None) -> str:
    """The engine name a request's ``model`` runs on: an engine name, or a vendor name mapped by settings."""
    settings = registry.settings
    if not model:
        return settings.default_engine
    name = without_vendor(registry, model)
    if name in registry.names():
        return name
    if name in VENDOR_MODELS or name in settings.models:
        return settings.models.get(name, settings.default_engine)
    raise UnknownModelError(
        f"model {model!r} is not served here; use one of {', '.join(served_models(registry))}",
        field="model",
    )


def is_served(registry: EngineRegistry, model: str) -> bool:
    """Whether ``model`` (with or without its vendor prefix) names something served here."""
    try:
        engine_for_model(registry, model)
    except UnknownModelError:
        return False
    return bool(model)


def served_models(registry: EngineRegistry) -> list[str]:
    """Every name a client may pass as ``model``: vendor names first, then engine names (each also
    accepted with its vendor prefix, which this list leaves out)."""
    extra = [name for name in registry.settings.models if name not in VENDOR_MODELS]
    return [*VENDOR_MODELS, *extra, *registry.names()]
