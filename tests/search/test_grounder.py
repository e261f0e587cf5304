"""Search grounding end to end against a real local search API and web (search_server.py):
sources, references fetched as untrusted inputs and ranked by the tiny reranker, what is used,
and what is never fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.search.search_server import KEY, SearchServer

from plantain.limits import Limits
from plantain.search.grounder import Grounder
from plantain.search.providers import provider_from_settings
from plantain.search.rerank import Reranker
from plantain.settings import Settings

PROMPT = "a bunch of ripe bananas at a market"


@pytest.fixture(scope="module")
def reranker(tmp_path_factory: pytest.TempPathFactory) -> Reranker:
    settings = Settings(data_dir=tmp_path_factory.mktemp("grounder"), grounding_reranker="tiny")
    loaded = Reranker(settings)
    loaded.load()
    return loaded


def grounder(server: SearchServer, reranker: Reranker, **fields: Any) -> Grounder:
    """A SearXNG grounder whose image candidates (on 127.0.0.1) may be fetched."""
    base: dict[str, Any] = {
        "data_dir": reranker.settings.data_dir,
        "search_provider": "searxng",
        "search_url": server.base,
        "allowed_hosts": [server.host_port],
        "grounding_references": 2,
    }
    settings = Settings(**{**base, **fields})
    provider = provider_from_settings(settings)
    assert provider is not None
    return Grounder(settings, provider, reranker)


def test_grounding_finds_sources_and_ranks_the_images_that_decode(
    server: SearchServer, reranker: Reranker
) -> None:
    result, images = grounder(server, reranker).ground(
        ["bananas", "plantains"], PROMPT, max_references=5, limits=Limits(), request_id="req_g"
    )
    assert result.provider == "searxng" and result.queries == ("bananas", "plantains")
    assert result.searches == 4  # web and images, per query
    assert [s.uri for s in result.sources] == [  # both queries found the same pages: each once
        "https://example.org/bananas",
        "https://example.org/plantains",
        "https://example.org/markets",
    ]
    assert result.facts[0] == "All about bananas: Bananas are yellow & curved."
    # broken.png is not an image and missing.png is a 404: skipped; red.png twice is one candidate
    assert sorted(r.image_uri.rsplit("/", 1)[1] for r in result.references) == [
        "blue.png",
        "green.png",
        "red.png",
    ]
    scores = [r.score for r in result.references]
    assert scores == sorted(scores, reverse=True)
    expected = dict(zip(["red", "green", "blue"], reranker.score(PROMPT, _decoded(server)), strict=True))
    assert {r.title.lower(): r.score for r in result.references} == pytest.approx(expected, abs=1e-5)
    assert [r.used for r in result.references] == [True, True, False]  # grounding_references=2
    assert [image.data for image in images] == [
        server.files[_path(r.image_uri)] for r in result.references[:2]
    ]
    assert images[0].label == f"grounding reference 1 ({result.references[0].image_uri})"
    fetched = sorted(r.path for r in server.image_requests())
    assert fetched == [
        "/img/blue.png",
        "/img/broken.png",
        "/img/green.png",
        "/img/missing.png",
        "/img/red.png",
    ]
    assert result.seconds > 0


def test_max_references_zero_searches_and_fetches_no_images(server: SearchServer, reranker: Reranker) -> None:
    result, images = grounder(server, reranker).ground(["bananas"], PROMPT, max_references=0, limits=Limits())
    assert images == [] and result.references == () and result.searches == 1
    assert len(result.sources) == 3
    assert server.image_requests() == []
    assert all("categories" not in r.query for r in server.api_requests())


def test_search_images_zero_fetches_no_images(server: SearchServer, reranker: Reranker) -> None:
    result, images = grounder(server, reranker, search_images=0).ground(
        ["bananas"], PROMPT, max_references=3, limits=Limits()
    )
    assert images == [] and result.references == () and server.image_requests() == []


def test_image_results_on_a_private_address_are_refused_unless_allowed(
    server: SearchServer, reranker: Reranker
) -> None:
    """The provider's own host is reachable (the operator chose it); the images it points at are
    the untrusted web, fetched under allowed_hosts only."""
    result, images = grounder(server, reranker, allowed_hosts=[]).ground(
        ["bananas"], PROMPT, max_references=3, limits=Limits()
    )
    assert len(result.sources) == 3 and result.searches == 2
    assert images == [] and result.references == ()
    assert server.image_requests() == []  # refused before any connection


def test_the_input_limits_apply_to_candidates(server: SearchServer, reranker: Reranker) -> None:
    """Every served PNG is 48x40 (1920 px) and a few hundred bytes: each limit refuses them all."""
    for limits in (Limits(max_input_pixels=1000), Limits(max_image_bytes=64)):
        result, images = grounder(server, reranker).ground(
            ["bananas"], PROMPT, max_references=1, limits=limits
        )
        assert result.references == () and images == [] and len(result.sources) == 3


def test_queries_are_capped_deduplicated_and_fall_back_to_the_prompt(
    server: SearchServer, reranker: Reranker
) -> None:
    ground = grounder(server, reranker, search_results=2).ground
    result, _ = ground(["a", " a ", "", "b", "c", "d"], PROMPT, max_references=0, limits=Limits())
    assert result.queries == ("a", "b", "c") and len(result.sources) == 2
    result, _ = ground([], PROMPT, max_references=0, limits=Limits())
    assert result.queries == (PROMPT,)


def test_brave_grounds_the_same_way(server: SearchServer, reranker: Reranker) -> None:
    ground = grounder(server, reranker, search_provider="brave", search_api_key=KEY).ground
    result, images = ground(["bananas"], PROMPT, max_references=1, limits=Limits())
    assert result.provider == "brave" and result.searches == 2
    assert [r.used for r in result.references] == [True, False, False] and len(images) == 1


def test_grounding_is_off_without_a_provider(tmp_path: Path) -> None:
    assert Grounder.from_settings(Settings(data_dir=tmp_path)) is None
    on = Grounder.from_settings(
        Settings(data_dir=tmp_path, search_provider="searxng", search_url="http://x:1")
    )
    assert on is not None and on.reranker.name == "openai/clip-vit-base-patch32"


def _path(uri: str) -> str:
    return "/" + uri.split("/", 3)[3]


def _decoded(server: SearchServer) -> list[Any]:
    """The served red, green and blue images as the grounder decodes them."""
    from plantain.imaging.codecs import decode_image
    from plantain.types import InputImage

    return [decode_image(InputImage(data=server.files[f"/img/{c}.png"])) for c in ("red", "green", "blue")]
