"""``/docs``: Swagger UI that renders offline, its files served from the swagger-ui-bundle package
(no CDN), open without an API key; the document it shows keeps asking for the key (``?key=``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.browser.chromium import dump_dom

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

KEY = "docs-test-key"


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as server:
        yield server.url


def referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r'fetch\("([^"]+)"', page)


def test_the_page_names_no_other_host_and_its_files_are_served_without_a_key(base: str) -> None:
    response = httpx.get(f"{base}/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = referenced(response.text)
    assert {"docs/static/swagger-ui-bundle.js", "docs/static/swagger-ui.css", "openapi.json"} <= set(urls)
    assert [url for url in urls if urlsplit(url).netloc or urlsplit(url).scheme] == []
    assert "//" not in re.sub(
        r"//[^\n]*\n", "\n", response.text.split("<script>", 1)[-1]
    )  # no URL in the script
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for url in urls:
        if url == "openapi.json":
            continue
        asset = httpx.get(urljoin(f"{base}/docs", url))
        assert asset.status_code == 200, url
        assert kinds[url.rsplit(".", 1)[-1]] in asset.headers["content-type"], url
        assert len(asset.content) > 500, url


def test_the_document_still_asks_for_the_key(base: str) -> None:
    assert httpx.get(f"{base}/openapi.json").status_code == 401
    assert httpx.get(f"{base}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(f"{base}/docs/static/../../openapi.json").status_code == 401  # no way round it
    assert httpx.get(f"{base}/docs/static/no-such-file.js").status_code == 404


@pytest.mark.slow
def test_the_page_renders_every_dialect_offline_in_a_browser(base: str) -> None:
    dom = dump_dom(f"{base}/docs?key={KEY}", budget_ms=30_000, offline=True)
    assert 'id="swagger-ui">could not load' not in dom
    assert 'class="opblock' in dom  # Swagger UI drew the operations
    for path in (
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/tasks",
        "/v1beta/models/{model}:generateContent",
    ):
        assert f"{path}<" in dom or f'data-path="{path}"' in dom, path


@pytest.mark.slow
def test_without_the_key_the_page_says_the_document_is_refused(base: str) -> None:
    dom = dump_dom(f"{base}/docs", budget_ms=30_000, offline=True)
    assert 'class="opblock' not in dom
    assert (
        'id="swagger-ui">could not load openapi.json: Error: the server answered 401; '
        "open /docs?key=YOUR_KEY<" in dom
    )
