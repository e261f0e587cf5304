"""The search providers against a real local search API (tests/search/search_server.py): what they
ask for, how they read the answers, and how they fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from tests.search.search_server import KEY, SearchServer

from plantain.errors import ConfigurationError, ProviderError
from plantain.search.providers import (
    BraveProvider,
    ImageHit,
    SearxngProvider,
    WebHit,
    provider_from_settings,
)
from plantain.settings import Settings, load_settings


def searxng(server: SearchServer, tmp_path: Path, **fields: Any) -> SearxngProvider:
    settings = Settings(data_dir=tmp_path, search_provider="searxng", search_url=server.base, **fields)
    provider = provider_from_settings(settings)
    assert isinstance(provider, SearxngProvider)
    return provider


def brave(server: SearchServer, tmp_path: Path, **fields: Any) -> BraveProvider:
    fields = {"search_api_key": KEY, **fields}
    settings = Settings(data_dir=tmp_path, search_provider="brave", search_url=server.base, **fields)
    provider = provider_from_settings(settings)
    assert isinstance(provider, BraveProvider)
    return provider


EXPECTED_WEB = (
    WebHit("https://example.org/bananas", "All about bananas", "Bananas are yellow & curved."),
    WebHit("https://example.org/plantains", "Plantains", "Cooked, not raw."),
    WebHit("https://example.org/markets", "Markets", "Where they are sold."),
)


def test_searxng_web_hits_are_plain_text_deduplicated_and_need_a_url(
    server: SearchServer, tmp_path: Path
) -> None:
    found = searxng(server, tmp_path).search("bananas", images=0, results=5, request_id="req_1")
    assert found.web == EXPECTED_WEB
    assert found.images == () and found.calls == 1
    [asked] = server.requests  # images=0: no image search
    assert asked.path == "/search" and asked.query == {"q": "bananas", "format": "json"}
    assert asked.headers["accept"] == "application/json"


def test_searxng_image_hits_are_the_full_images_each_once(server: SearchServer, tmp_path: Path) -> None:
    found = searxng(server, tmp_path).search("bananas", images=4, results=2, request_id=None)
    assert found.web == EXPECTED_WEB[:2] and found.calls == 2
    assert found.images == (
        ImageHit(f"{server.base}/img/red.png", "https://example.org/red", "Red"),
        ImageHit(f"{server.base}/img/broken.png", "https://example.org/broken", "Broken"),
        ImageHit(f"{server.base}/img/green.png", "https://example.org/green", "Green"),
        ImageHit(f"{server.base}/img/missing.png", "https://example.org/gone", "Gone"),
    )
    assert server.requests[1].query == {"q": "bananas", "format": "json", "categories": "images"}
    assert server.image_requests() == []  # the provider never fetches the images themselves


def test_brave_sends_its_key_and_reads_both_endpoints(server: SearchServer, tmp_path: Path) -> None:
    found = brave(server, tmp_path).search("bananas", images=3, results=5, request_id=None)
    assert found.web == EXPECTED_WEB and found.calls == 2
    assert [hit.image_uri for hit in found.images] == [
        f"{server.base}/img/red.png",
        f"{server.base}/img/broken.png",
        f"{server.base}/img/green.png",
    ]
    web, images = server.requests
    assert (web.path, web.query) == ("/res/v1/web/search", {"q": "bananas", "count": "5"})
    assert (images.path, images.query) == ("/res/v1/images/search", {"q": "bananas", "count": "3"})
    assert all(r.headers["x-subscription-token"] == KEY for r in server.requests)
    assert web.headers["accept"] == "application/json"


def test_brave_reads_the_key_from_the_named_variable_at_use(
    server: SearchServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = brave(server, tmp_path, search_api_key=None, search_api_key_env="TEST_BRAVE_KEY")
    with pytest.raises(ConfigurationError, match="search_api_key_env: the variable TEST_BRAVE_KEY"):
        provider.search("bananas", images=0, results=5, request_id=None)
    monkeypatch.setenv("TEST_BRAVE_KEY", KEY)
    assert provider.search("bananas", images=0, results=5, request_id=None).web == EXPECTED_WEB


def test_a_wrong_key_is_a_provider_error_naming_the_setting(server: SearchServer, tmp_path: Path) -> None:
    provider = brave(server, tmp_path, search_api_key="wrong")
    with pytest.raises(
        ProviderError, match=r"brave search failed: .*HTTP 401.*check search_api_key"
    ) as caught:
        provider.search("bananas", images=0, results=5, request_id=None)
    assert caught.value.status == 502 and caught.value.code == "provider_failed"


def test_a_server_error_names_the_provider_and_its_setting(server: SearchServer, tmp_path: Path) -> None:
    server.fail = 500
    with pytest.raises(ProviderError, match=r"searxng search failed: .*HTTP 500.*check search_url"):
        searxng(server, tmp_path).search("bananas", images=0, results=5, request_id=None)


def test_an_answer_that_is_not_json_is_a_provider_error(server: SearchServer, tmp_path: Path) -> None:
    server.malformed = True
    with pytest.raises(ProviderError, match=r"searxng search: .*/search answered something that is not JSON"):
        searxng(server, tmp_path).search("bananas", images=0, results=5, request_id=None)


def test_a_slow_provider_is_cut_at_the_fetch_timeout(server: SearchServer, tmp_path: Path) -> None:
    server.delay = 1.0
    provider = searxng(server, tmp_path, fetch_timeout_seconds=0.2)
    with pytest.raises(ProviderError, match=r"searxng search failed: .*Timeout"):
        provider.search("bananas", images=0, results=5, request_id=None)


def test_the_key_is_not_sent_after_a_redirect_to_another_origin(server: SearchServer, tmp_path: Path) -> None:
    with SearchServer() as elsewhere:
        server.redirect_to = elsewhere.base
        provider = brave(server, tmp_path, allowed_hosts=[elsewhere.host_port])
        with pytest.raises(ProviderError, match="HTTP 401"):  # it arrived without the key
            provider.search("bananas", images=0, results=5, request_id=None)
    [first] = server.requests
    [followed] = elsewhere.requests
    assert first.headers["x-subscription-token"] == KEY
    assert "x-subscription-token" not in followed.headers
    assert followed.path == "/res/v1/web/search"


def test_provider_from_settings_builds_the_named_provider(tmp_path: Path) -> None:
    assert provider_from_settings(Settings(data_dir=tmp_path)) is None
    provider = provider_from_settings(Settings(search_provider="brave", search_api_key=SecretStr("k")))
    assert isinstance(provider, BraveProvider)
    assert provider.base == "https://api.search.brave.com"
    assert provider.limits.allowed_hosts == ("api.search.brave.com:443",)


def test_a_provider_that_cannot_be_reached_is_a_configuration_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"^setting search_url \(PLANTAIN_SEARCH_URL\)"):
        load_settings(search_provider="searxng")
    with pytest.raises(ConfigurationError, match=r"^setting search_api_key \(PLANTAIN_SEARCH_API_KEY\)"):
        load_settings(search_provider="brave")
    with pytest.raises(ConfigurationError, match=r"setting search_url: 'ftp://x' is not an http\(s\) URL"):
        provider_from_settings(Settings(search_provider="searxng", search_url="ftp://x"))
