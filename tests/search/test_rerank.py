"""The grounding reranker: the tiny random-weight CLIP checkpoint built, found and loaded by the
same from_pretrained path as a real one, and its scores."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.errors import MissingWeightsError
from plantain.search.rerank import Reranker
from plantain.search.tiny import CHECKPOINT_DIR_NAME
from plantain.settings import Settings

HUB_ID = "plantain-test/tiny-reranker"
IMAGES = [Image.new("RGB", (48, 40), colour) for colour in ("red", "green", "blue")]


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory, hub_cache: Path) -> Reranker:
    """A ``tiny`` reranker built once for the module (and installed in the hub cache by id)."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("rerank"), hub_cache=hub_cache, grounding_reranker="tiny"
    )
    built = Reranker(settings)
    assert built.checkpoint.present() and not built.loaded  # tiny counts as present: it is built on load
    built.load()
    install_in_hub_cache(settings.models_dir / CHECKPOINT_DIR_NAME, HUB_ID, hub_cache)
    return built


def test_the_tiny_checkpoint_is_a_clip_model_that_loads_by_the_real_path(reranker: Reranker) -> None:
    from transformers import CLIPModel, CLIPProcessor

    directory = reranker.settings.models_dir / CHECKPOINT_DIR_NAME
    assert (directory / "config.json").is_file() and (directory / "processor_config.json").is_file()
    assert type(CLIPModel.from_pretrained(directory, local_files_only=True)).__name__ == "CLIPModel"
    assert CLIPProcessor.from_pretrained(directory, local_files_only=True).tokenizer is not None
    assert reranker.loaded
    assert reranker.describe() == {"model": "tiny", "device": "auto", "present": True, "loaded": True}


def test_scores_are_cosines_that_differ_between_images_and_repeat(reranker: Reranker) -> None:
    scores = reranker.score("a ripe banana on a table", IMAGES)
    assert len(scores) == 3 and len(set(scores)) == 3
    assert all(-1.0 <= score <= 1.0 for score in scores)
    assert reranker.score("a ripe banana on a table", IMAGES) == scores
    assert reranker.score("a ripe banana on a table", IMAGES[1:]) == pytest.approx(scores[1:], abs=1e-5)
    assert reranker.score("anything", []) == []


def test_a_prompt_longer_than_clip_reads_is_cut_not_refused(reranker: Reranker) -> None:
    long = "a very long prompt about bananas " * 100
    assert len(reranker.score(long, IMAGES[:1])) == 1


def test_a_hub_id_is_read_from_the_hub_cache(reranker: Reranker, hub_cache: Path, tmp_path: Path) -> None:
    by_id = Reranker(Settings(data_dir=tmp_path, hub_cache=hub_cache, grounding_reranker=HUB_ID))
    assert by_id.checkpoint.present() and by_id.checkpoint.directory() is None
    assert by_id.score("bananas", IMAGES) == pytest.approx(reranker.score("bananas", IMAGES), abs=1e-5)


def test_a_missing_hub_checkpoint_names_the_setting_and_is_never_downloaded(
    hub_cache: Path, tmp_path: Path
) -> None:
    missing = Reranker(Settings(data_dir=tmp_path, hub_cache=hub_cache, grounding_reranker="nobody/no-clip"))
    assert not missing.checkpoint.present()
    with pytest.raises(
        MissingWeightsError, match=r"setting grounding_reranker: nobody/no-clip is not in the hub cache"
    ):
        missing.load()
    assert not missing.loaded


def test_a_directory_without_a_checkpoint_names_the_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = Reranker(Settings(data_dir=tmp_path, grounding_reranker=str(empty)))
    with pytest.raises(
        MissingWeightsError, match=r"setting grounding_reranker: no checkpoint in .*config.json"
    ):
        missing.score("bananas", IMAGES)
