"""GET /v1/models is Gemini's (google-genai >= 3 defaults to v1) and OpenAI's: each SDK gets its shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest
from google import genai
from google.genai import types

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer


@pytest.fixture(scope="module")
def url(server_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = server_settings()
    with LiveServer(create_app(settings)) as server:
        yield server.url


def test_openai_sdk_lists_and_retrieves_models(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
    ids = [model.id for model in client.models.list()]
    assert {"gpt-image-1", "gemini-2.5-flash-image", "tiny"} <= set(ids)
    assert client.models.retrieve("dall-e-3").id == "dall-e-3"
    assert client.models.retrieve("gpt-image-1-mini").id == "gpt-image-1-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


@pytest.mark.parametrize("api_version", [None, "v1beta"])
def test_google_genai_lists_and_gets_models_on_each_version(url: str, api_version: str | None) -> None:
    options = (
        types.HttpOptions(base_url=url, api_version=api_version)
        if api_version
        else types.HttpOptions(base_url=url)
    )
    client = genai.Client(api_key="k", http_options=options)
    names = [model.name for model in client.models.list()]
    assert "models/gemini-2.5-flash-image" in names and "models/nano-banana" in names
    assert client.models.get(model="gemini-3-pro-image-preview").name == "models/gemini-3-pro-image-preview"
