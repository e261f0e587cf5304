"""Plantain called from a web page on another origin, in headless Chromium, through the SDKs'
browser builds: ``@google/genai`` (``dist/web``) and ``openai`` (its ES modules, with
``dangerouslyAllowBrowser``). The page (``sdk_page.html``) is served by a separate HTTP server on
another port, so every call is cross-origin and passes only by the server's ``cors_origins``.

What a browser app relies on: the images come back; the headers it reads through the SDK (the
OpenAI request id, Plantain's seeds and usage) are exposed; an error (a wrong key) reaches the
SDK as the HTTP error it is, not as a network failure; and a server that does not allow the
page's origin cannot be read from it at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from tests.browser.chromium import dump_dom, element_text, page_server

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

pytestmark = pytest.mark.slow

KEY = "browser-test-key"


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    with page_server() as origin:
        yield origin


@pytest.fixture(scope="module")
def results(server_settings: Callable[..., Settings], page_origin: str) -> dict[str, Any]:
    allowing = server_settings(api_keys=[KEY], cors_origins=[page_origin], max_output_pixels=512 * 512)
    refusing = server_settings(api_keys=[KEY], cors_origins=["https://app.example.com"])
    with LiveServer(create_app(allowing)) as server, LiveServer(create_app(refusing)) as other:
        query = urlencode({"server": server.wait_ready(), "key": KEY, "refusing": other.wait_ready()})
        dom = dump_dom(f"{page_origin}/browser/sdk_page.html?{query}")
    text = element_text(dom, "result")
    assert text != "pending", "the page's script did not finish"
    found: dict[str, Any] = json.loads(text)
    assert found["origin"] == page_origin
    return found


def test_gemini_generate_content_from_a_browser_page(results: dict[str, Any]) -> None:
    gemini = results["gemini"]
    assert "ok" in gemini, gemini
    images = gemini["ok"]["images"]
    assert len(images) == 1 and images[0]["mimeType"] == "image/png" and images[0]["bytes"] > 1000
    assert re.fullmatch(r"\d+", gemini["ok"]["seeds"])  # X-Plantain-Seeds, read through the SDK
    assert float(gemini["ok"]["cost"]) >= 0  # X-Plantain-Cost


def test_openai_images_generate_from_a_browser_page(results: dict[str, Any]) -> None:
    openai = results["openai"]
    assert "ok" in openai, openai
    assert len(openai["ok"]["images"]) == 2 and min(openai["ok"]["images"]) > 1000
    assert openai["ok"]["requestId"].startswith("req_")  # the SDK's request_id, from x-request-id
    assert openai["ok"]["requestIdHeader"] == openai["ok"]["requestId"]
    assert re.fullmatch(r"\d+, \d+", openai["ok"]["seeds"])
    assert float(openai["ok"]["deviceSeconds"]) >= 0


def test_a_refusal_reaches_the_page_as_the_http_error_it_is(results: dict[str, Any]) -> None:
    gemini, openai = results["geminiWrongKey"]["error"], results["openaiWrongKey"]["error"]
    assert gemini["status"] == 403 and "not valid" in gemini["message"], gemini
    assert openai["status"] == 403 and openai["name"] == "PermissionDeniedError", openai


def test_a_server_that_does_not_allow_the_origin_cannot_be_read(results: dict[str, Any]) -> None:
    for name in ("geminiRefused", "openaiRefused"):
        error = results[name]["error"]  # the browser's network failure, no status
        assert error["status"] is None, (name, error)
    assert "Failed to fetch" in results["geminiRefused"]["error"]["message"]
    assert results["openaiRefused"]["error"]["name"] == "APIConnectionError"
