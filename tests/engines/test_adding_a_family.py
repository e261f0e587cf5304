"""docs/engines.md "Adding a model family", followed step by step for a throwaway family.

The family is written here as the doc says a family module is (steps 1 to 4), added to the one list
in ``engines/registry.py`` the way step 5 says (here at run time, by replacing that one list), and
then served: by the registry, by ``plantain engines``, by a request on its tiny checkpoint and by
``test_families.py``'s contract. Nothing else is touched, so if a step is missing from the doc, or
the doc names one that is not needed, this test and the doc disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from tests.engines import test_families

from plantain.cli.main import cli
from plantain.engines import flux2, registry
from plantain.engines.base import Capabilities, Engine, EngineJob, Preset
from plantain.engines.family import Family
from plantain.engines.loading import WeightsSource, load_pipeline
from plantain.engines.prompts import TextEmbeddingHooks
from plantain.generation import run_request
from plantain.settings import Settings
from plantain.testing import build_once
from plantain.types import ImageRequest

ROOT = Path(__file__).resolve().parents[2]

# --- the family module: engines/throwaway.py, as steps 1 to 4 write it --------------------------

# Step 1: adapted from engines/flux2.py (FLUX.2-klein): the same pipeline and tiny checkpoint,
# renamed, with flux2's embedding hooks reused instead of copied.

HUB_ID = "plantain-tests/throwaway"
ENGINE = "throwaway"
TINY_CALL_KWARGS = flux2.TINY_CALL_KWARGS
CAPABILITIES: Capabilities = flux2.KLEIN_CAPABILITIES


class ThrowawayEngine(Engine, TextEmbeddingHooks):
    """Step 2: subclass ``Engine`` (and ``TextEmbeddingHooks``); ``_load``, ``_generate`` and both
    embedding hooks."""

    family = "throwaway"
    pipeline_class = "Flux2KleinPipeline"

    def _load(self) -> Any:
        from diffusers import Flux2KleinPipeline

        return load_pipeline(Flux2KleinPipeline, self.source, self.settings, default_dtype=self.default_dtype)

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        return self._call_pipeline(pipeline, jobs, callback)

    _encode_prompts = flux2.Flux2KleinEngine._encode_prompts
    _embedding_kwargs = flux2.Flux2KleinEngine._embedding_kwargs


def create(name: str, settings: Settings) -> ThrowawayEngine:
    """Step 3: declares the hub id, capabilities and preset; loads nothing."""
    return ThrowawayEngine(
        name,
        settings,
        dtype=torch.bfloat16,
        description="a throwaway family that follows docs/engines.md",
        source=WeightsSource.hub(name, settings, HUB_ID),
        capabilities=CAPABILITIES,
        preset=Preset(steps=4, guidance=1.0),
    )


def build_tiny_checkpoint(directory: Path) -> None:
    """Step 3: the same architecture at tiny size, random weights (flux2's builder)."""
    flux2.build_tiny(directory)


# Step 4: one record per engine, at the end of the module.
FAMILIES = (Family(ENGINE, create, HUB_ID, build_tiny_checkpoint, TINY_CALL_KWARGS),)

# --- step 5: added to the one list in engines/registry.py ----------------------------------------


@pytest.fixture
def added(monkeypatch: pytest.MonkeyPatch) -> Family:
    """``FAMILIES = (..., *throwaway.FAMILIES)`` in registry.py, and nothing else."""
    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, *FAMILIES))
    return FAMILIES[0]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_once(build_tiny_checkpoint, tmp_path_factory.mktemp(ENGINE) / "tiny")


def test_the_doc_describes_the_steps_this_test_follows() -> None:
    doc = (ROOT / "docs" / "engines.md").read_text()
    section = doc.split("## Adding a model family", 1)[1].split("\n## ", 1)[0]
    for step in (
        "Subclass `Engine`",
        "`family` and `pipeline_class`",
        "`_load`",
        "`_generate`",
        "`TextEmbeddingHooks`",
        "`_encode_prompts`",
        "`_embedding_kwargs`",
        "`create(name, settings)`",
        'FAMILIES = (Family("<engine>", create, HUB_ID, build_tiny_checkpoint, tiny_call_kwargs),)',
        "Add `*<family>.FAMILIES` to `FAMILIES` in `engines/registry.py`",
    ):
        assert step in section, step


def test_the_registry_serves_the_added_family_by_name(added: Family, tmp_path: Path) -> None:
    engines = registry.EngineRegistry(Settings(data_dir=tmp_path))
    assert engines.names()[-1] == ENGINE
    engine = engines.get(ENGINE)
    assert isinstance(engine, ThrowawayEngine) and engine is engines.get(ENGINE)
    assert engine.source.repo_id == HUB_ID and not engine.loaded


def test_plantain_engines_lists_the_added_family(
    added: Family, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTAIN_HUB_CACHE", str(tmp_path / "hub"))
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "engines", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows[ENGINE]["description"] == "a throwaway family that follows docs/engines.md"
    assert (rows[ENGINE]["family"], rows[ENGINE]["pipeline"]) == ("throwaway", "Flux2KleinPipeline")
    table = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "engines"])
    assert table.exit_code == 0 and f"{ENGINE} — " in table.output


def test_a_request_runs_through_the_added_family_on_its_tiny_checkpoint(
    added: Family, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, weights={ENGINE: tiny_checkpoint}, dtype="float32")
    engine = registry.EngineRegistry(settings).get(ENGINE)
    engine.preset = Preset(steps=1, guidance=1.0, call_kwargs=dict(added.tiny_call_kwargs))
    request = ImageRequest.create(
        prompt="a lighthouse", size="512", seed=3, options={"steps": 1}, num_images=2
    )
    result = run_request(request, engine)
    assert [image.seed for image in result.images] == [3, 4]
    assert engine.loaded and engine.caches_text_embeddings()


def test_the_family_contract_in_test_families_holds_for_it(added: Family, tmp_path: Path) -> None:
    # test_families.py is parametrized over registry.FAMILIES when collected; these are the cases
    # the added record gets there (its tiny run is the request above, on the same checkpoint).
    assert registry.EngineRegistry(Settings(data_dir=tmp_path)).names() == [
        family.engine for family in registry.FAMILIES
    ]
    test_families.test_a_family_creates_its_engine_from_its_hub_id_or_its_builder(added, tmp_path)
    test_families.test_every_family_caches_text_embeddings(added, tmp_path)
