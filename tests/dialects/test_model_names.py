"""Vendor model names: the one list covers the SDKs' own lists, docs/models.md is generated from it,
and vendor-prefixed ids run where their plain names do."""

from __future__ import annotations

import importlib.util
import re
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.genai._gaos.types.interactions import model as genai_interactions_model
from openai.types import ImageModel
from openai.types.responses.tool import ImageGeneration

from plantain.engines.model_names import (
    GEMINI_MODELS,
    MODELS,
    OPENAI_MODELS,
    VENDOR_MODELS,
    engine_for_model,
    is_served,
    served_models,
)
from plantain.engines.registry import EngineRegistry
from plantain.errors import UnknownModelError
from plantain.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GENAI_SOURCES = Path(genai_interactions_model.__file__).parents[3]  # google/genai


def literal_strings(hint: Any) -> set[str]:
    """Every string of the Literals in a type hint (through Union, Optional and aliases)."""
    if typing.get_origin(hint) is typing.Literal:
        return {arg for arg in typing.get_args(hint) if isinstance(arg, str)}
    return {name for arg in typing.get_args(hint) for name in literal_strings(arg)}


def openai_image_models() -> set[str]:
    """The openai SDK's ImageModel (images.generate/edit) and the Responses image tool's models."""
    tool = ImageGeneration.model_fields["model"].annotation
    return literal_strings(ImageModel) | literal_strings(tool)


def genai_image_models() -> set[str]:
    """google-genai's typed model list, its image models (``…-image``, ``nano-banana…``), and the
    Imagen names its own sources (docstrings included, tests left out) call."""
    typed = literal_strings(genai_interactions_model.Model)
    images = {name for name in typed if re.search(r"-image\b|nano-banana", name)}
    for source in GENAI_SOURCES.glob("*.py"):
        images |= set(re.findall(r"['\"](imagen-\d[\w.-]*)['\"]", source.read_text()))
    return images


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("model_table", ROOT / "scripts" / "model_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_model_table_in_the_docs_is_current() -> None:
    assert (ROOT / "docs" / "models.md").read_text() == load_generator().render(), (
        "run: python scripts/model_table.py"
    )


def test_every_openai_sdk_image_model_is_served() -> None:
    sdk = openai_image_models()
    assert {"gpt-image-1", "dall-e-2", "chatgpt-image-latest", "gpt-image-2"} <= sdk  # the read works
    missing = sorted(sdk - set(OPENAI_MODELS))
    assert not missing, f"add to MODELS in engines/model_names.py: {missing}"


def test_every_google_genai_sdk_image_model_is_served() -> None:
    sdk = genai_image_models()
    assert {"gemini-2.5-flash-image", "gemini-3-pro-image", "imagen-3.0-generate-002"} <= sdk
    missing = sorted(sdk - set(GEMINI_MODELS))
    assert not missing, f"add to MODELS in engines/model_names.py: {missing}"


def test_the_list_has_no_duplicates_and_known_vendors() -> None:
    assert len(set(VENDOR_MODELS)) == len(VENDOR_MODELS)
    assert {model.vendor for model in MODELS} == {"google", "openai"}
    assert {model.api for model in MODELS} == {"gemini", "imagen", "openai"}


ISSUE_NAMES = [
    "gpt-image-2",
    "chatgpt-image-latest",
    "dall-e-2",
    "gemini-3-pro-image",
    "gemini-3-pro-image-preview",
    "gemini-3.1-flash-image",
    "gemini-3.1-flash-image-preview",
    "nano-banana-pro-preview",
    "gemini-2.0-flash-preview-image-generation",
    "google/gemini-2.5-flash-image",
    "openai/gpt-image-1",
    "models/gemini-3.1-flash-image",
    "imagen-4.0-generate-001",
]


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_names_once_404_run_on_the_default_engine(registry: EngineRegistry, name: str) -> None:
    assert engine_for_model(registry, name) == registry.settings.default_engine
    assert is_served(registry, name)


def test_vendor_prefixes(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        default_engine="tiny",
        models={
            "gemini-3-pro-image": "qwen-image-edit",
            "acme/house-style": "flux1-schnell",
            "house": "tiny",
        },
    )
    registry = EngineRegistry(settings)
    # A mapped name is mapped with its prefix too; a name mapped as written keeps its slash.
    assert engine_for_model(registry, "google/gemini-3-pro-image") == "qwen-image-edit"
    assert engine_for_model(registry, "acme/house-style") == "flux1-schnell"
    assert engine_for_model(registry, "openai/house") == "tiny"
    # Engine names take their checkpoint's hub organisation, in any case.
    assert engine_for_model(registry, "black-forest-labs/flux2-klein-4b") == "flux2-klein-4b"
    assert engine_for_model(registry, "Qwen/qwen-image") == "qwen-image"
    assert engine_for_model(registry, "plantain/tiny") == "tiny"
    assert engine_for_model(registry, "OpenAI/gpt-image-1") == "tiny"
    for name in (
        "google/gpt-image-1",
        "anthropic/gpt-image-1",
        "google/gemini-9-ultra",
        "qwen/flux2-klein-4b",
        "google/",
        "/",
    ):
        assert not is_served(registry, name), name
        with pytest.raises(UnknownModelError, match="is not served here"):
            engine_for_model(registry, name)
    assert not is_served(registry, "")
    assert engine_for_model(registry, None) == engine_for_model(registry, "") == "tiny"


def test_served_models_lists_plain_names_then_extras_then_engines(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, models={"house": "tiny", "dall-e-3": "tiny"})
    registry = EngineRegistry(settings)
    served = served_models(registry)
    assert served == [*VENDOR_MODELS, "house", *registry.names()]
    assert not any("/" in name for name in served)
