"""The engine-family contract, over every record in the registry's one list of families.

Each family's tiny checkpoint is built with its record's builder and loaded by its record's
constructor, so a family added to the list is tested here without another line of test code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from plantain.engines import flux2
from plantain.engines.base import Engine, EngineJob, Preset
from plantain.engines.family import Family
from plantain.engines.loading import WeightsSource
from plantain.engines.prompts import TextEmbeddingHooks, prompt_kwargs
from plantain.engines.registry import BUILTIN_ENGINES, FAMILIES, EngineRegistry
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.settings.extras import LICENCE_IDS
from plantain.testing import build_once, make_input
from plantain.types import ImageRequest


@pytest.fixture(params=FAMILIES, ids=lambda family: family.engine)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param  # type: ignore[no-any-return]


def test_the_registry_serves_exactly_the_families_in_order() -> None:
    names = [family.engine for family in FAMILIES]
    assert len(set(names)) == len(names)
    assert EngineRegistry(Settings()).names() == names == list(BUILTIN_ENGINES)


def test_a_family_creates_its_engine_from_its_hub_id_or_its_builder(family: Family, tmp_path: Path) -> None:
    engine = family.create(family.engine, Settings(data_dir=tmp_path))
    assert engine.name == family.engine and not engine.loaded
    assert engine.source.repo_id == family.hub_id
    assert (engine.source.builder is not None) == (family.hub_id is None) == engine.random_weights


def test_every_family_caches_text_embeddings(family: Family, tmp_path: Path) -> None:
    engine = family.create(family.engine, Settings(data_dir=tmp_path))
    assert engine.caches_text_embeddings()
    assert engine.describe()["text_embedding_cache"] is not None


def test_the_tiny_checkpoint_loads_with_the_family_constructor_and_runs(
    family: Family, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = build_once(family.build_tiny, tmp_path_factory.mktemp(family.engine) / "tiny")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        weights={family.engine: directory},
        dtype="float32",
        accept_licences=list(LICENCE_IDS),  # a gated family is tested like the others
    )
    engine = family.create(family.engine, settings)
    engine.preset = replace(
        engine.preset, call_kwargs={**engine.preset.call_kwargs, **family.tiny_call_kwargs}
    )
    images = () if engine.capabilities.text_to_image else (make_input(),)
    request = ImageRequest.create(
        prompt="a lighthouse", images=images, size="512", seed=1, options={"steps": 1}
    )
    result = run_request(request, engine)
    assert [image.seed for image in result.images] == [1]


# --- the embedding hooks: both or neither ------------------------------------------------------


class _TextOnly(Engine):
    """An engine without the embedding hooks: its pipeline gets the prompts as text."""

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(
            name,
            settings,
            description="echoes the pipeline arguments it gets",
            source=WeightsSource(engine=name, repo_id="plantain-tests/text-only"),
            capabilities=flux2.KLEIN_CAPABILITIES,
            preset=Preset(steps=1, guidance=1.0),
        )
        self.calls: list[dict[str, Any]] = []

    def _load(self) -> Any:
        return object()

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        self.calls.append(prompt_kwargs(self, pipeline, [job.prompt for job in jobs]))
        return [Image.new("RGB", (job.width, job.height)) for job in jobs for _ in job.seeds]


def test_an_engine_without_the_embedding_hooks_runs_with_the_cache_off(tmp_path: Path) -> None:
    engine = _TextOnly("text-only", Settings(data_dir=tmp_path, text_embedding_cache=8))
    assert not engine.caches_text_embeddings()
    assert engine.describe()["text_embedding_cache"] is None
    run_request(ImageRequest.create(prompt="a lighthouse", seed=1), engine)
    assert engine.calls == [{"prompt": ["a lighthouse"]}]


def test_an_engine_with_one_embedding_hook_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="_encode_prompts alone"):

        class _Half(_TextOnly, TextEmbeddingHooks):
            def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Any]:
                return []

        del _Half


def test_embedding_hooks_without_their_base_class_are_refused(tmp_path: Path) -> None:
    """Written on a plain ``Engine`` subclass, the hooks would be ignored with the cache off."""

    class _Stray(_TextOnly):
        def _encode_prompts(self, pipeline: Any, prompts: list[str]) -> list[Any]:
            return []

        def _embedding_kwargs(self, embeddings: list[Any]) -> dict[str, Any]:
            return {}

    with pytest.raises(TypeError, match="without subclassing TextEmbeddingHooks"):
        _Stray("stray", Settings(data_dir=tmp_path))
