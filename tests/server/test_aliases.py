"""Path aliases (``/openai/v1``, unversioned and doubled Gemini paths), and the base URLs real
clients are given: the openai SDK, google-genai, LiteLLM's ``openai/`` and ``gemini/`` providers
and raw HTTP, each against a live server, reading the image back."""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from PIL import Image

from plantain.server.aliases import ORIGINAL_PATH, AliasPaths, canonical_path
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

GEMINI_BODY = {
    "contents": [{"parts": [{"text": "a red apple"}]}],
    "generationConfig": {"imageConfig": {"imageSize": "512"}},
}


def png(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.size


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        yield live.wait_ready()


@pytest.fixture(scope="module")
def litellm() -> ModuleType:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no download of the price list on import
    return importlib.import_module("litellm")


# --- the rewrite ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "canonical"),
    [
        ("/openai/v1/images/generations", "/v1/images/generations"),
        ("/openai/v1/images/edits", "/v1/images/edits"),
        ("/openai/v1/models", "/v1/models"),
        ("/openai/v1", "/v1"),
        ("/openai/v1/chat/completions", "/v1/chat/completions"),
        (
            "/models/gemini-2.5-flash-image:generateContent",
            "/v1beta/models/gemini-2.5-flash-image:generateContent",
        ),
        ("/models/m:streamGenerateContent", "/v1beta/models/m:streamGenerateContent"),
        ("/models/imagen-4.0-generate-001:predict", "/v1beta/models/imagen-4.0-generate-001:predict"),
        ("/models/m:countTokens", "/v1beta/models/m:countTokens"),
        ("/v1beta/v1beta/models/m:generateContent", "/v1beta/models/m:generateContent"),
        ("/v1beta/v1/models/m:generateContent", "/v1/models/m:generateContent"),
        ("/v1/v1alpha/models", "/v1alpha/models"),
    ],
)
def test_aliases_are_rewritten(path: str, canonical: str) -> None:
    assert canonical_path(path) == canonical


@pytest.mark.parametrize(
    "path",
    [
        "/v1/images/generations",
        "/v1beta/models/m:generateContent",
        "/openai/v2/images/generations",
        "/openai/v1beta/models",
        "/openaiv1/models",
        "/x/openai/v1/models",
        "/models",
        "/models/m",
        "/models/google/m:generateContent",
        "/v1/v2/models",
        "/v1beta1/v1beta1/models",
        "/healthz",
        "/",
    ],
)
def test_other_paths_are_left_alone(path: str) -> None:
    assert canonical_path(path) == path


def test_the_wrapper_rewrites_path_and_raw_path_and_keeps_the_original() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    wrapper = AliasPaths(app)
    path = "/openai/v1/files/a b"
    scopes: list[dict[str, Any]] = [
        {"type": "http", "path": path, "raw_path": b"/openai/v1/files/a%20b"},
        {"type": "http", "path": "/models/m:generateContent"},  # no raw_path
        {"type": "lifespan"},
        {"type": "http", "path": "/v1/models", "raw_path": b"/v1/models"},
    ]
    for scope in scopes:
        asyncio.run(wrapper(scope, None, None))  # type: ignore[arg-type]
    assert seen[0]["path"] == "/v1/files/a b" and seen[0]["raw_path"] == b"/v1/files/a%20b"
    assert seen[0][ORIGINAL_PATH] == path
    assert seen[1]["raw_path"] == b"/v1beta/models/m:generateContent"
    assert seen[2] == {"type": "lifespan"}
    assert seen[3] == {"type": "http", "path": "/v1/models", "raw_path": b"/v1/models"}


# --- OpenAI: /openai/v1 (Lumenfall's base URL) -----------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "model"),
    [
        ("/openai/v1", "gpt-image-2"),
        ("/openai/v1", "dall-e-2"),
        ("/v1", "chatgpt-image-latest"),
        ("/v1", "openai/gpt-image-1"),
    ],
)
def test_openai_sdk_on_each_base_url(server: str, suffix: str, model: str) -> None:
    client = openai.OpenAI(base_url=f"{server}{suffix}", api_key="k", max_retries=0)
    response = client.images.generate(model=model, prompt="a red apple", size="512x512")
    assert response.data is not None
    [image] = response.data
    if image.b64_json is None:  # DALL·E's default answer is a URL
        assert image.url is not None and image.url.startswith(f"{server}/v1/files/")
        data = httpx.get(image.url).content
    else:
        data = base64.b64decode(image.b64_json)
    assert png(data) == (512, 512)


def test_openai_sdk_lists_models_and_is_refused_in_its_envelope_under_openai_v1(server: str) -> None:
    client = openai.OpenAI(base_url=f"{server}/openai/v1", api_key="k", max_retries=0)
    assert "gpt-image-2" in [model.id for model in client.models.list()]
    with pytest.raises(openai.NotFoundError) as refused:
        client.images.generate(model="dall-e-9", prompt="a red apple")
    assert "model 'dall-e-9' is not served here" in refused.value.message


def test_unknown_paths_under_an_alias_stay_404(server: str) -> None:
    for path in ("/openai/v1/nope", "/openai/v2/images/generations", "/models/m:embedContent", "/models"):
        response = httpx.post(f"{server}{path}", json={})
        assert response.status_code == 404, path
    refused = httpx.post(f"{server}/openai/v1/nope", json={})
    assert "POST /v1/nope is not served here" in refused.json()["error"]["message"]  # the canonical path


def test_the_api_key_check_sees_the_canonical_path(server_settings: Callable[..., Settings]) -> None:
    with LiveServer(create_app(server_settings(api_keys=["secret"]))) as live:
        url = live.wait_ready()
        bare = httpx.post(f"{url}/openai/v1/images/generations", json={"prompt": "a red apple"})
        assert bare.status_code == 401
        assert bare.json()["error"]["code"] == "unauthenticated"  # OpenAI's envelope: /v1/images…
        gemini = httpx.post(f"{url}/models/gemini-2.5-flash-image:generateContent", json=GEMINI_BODY)
        assert gemini.status_code == 401 and gemini.json()["error"]["status"] == "UNAUTHENTICATED"
        client = openai.OpenAI(base_url=f"{url}/openai/v1", api_key="secret", max_retries=0)
        made = client.images.generate(model="gpt-image-1", prompt="a red apple", size="512x512")
        assert made.data is not None and made.data[0].b64_json


# --- Gemini: unversioned and doubled versions ------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "api_version"),
    [("", None), ("", "v1beta"), ("", "v1alpha"), ("/v1beta", None), ("/v1beta", "v1beta"), ("/v1", "v1")],
)
def test_google_genai_with_a_base_url_and_api_version(
    server: str, suffix: str, api_version: str | None
) -> None:
    options = types.HttpOptions(base_url=f"{server}{suffix}")
    if api_version is not None:
        options.api_version = api_version
    client = genai.Client(api_key="k", http_options=options)
    response = client.models.generate_content(
        model="gemini-3.1-flash-image",
        contents="a red apple",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    blob = response.candidates[0].content.parts[0].inline_data
    assert blob is not None and blob.data is not None
    png(blob.data)


@pytest.mark.parametrize("model", ["nano-banana-pro-preview", "gemini-2.0-flash-preview-image-generation"])
def test_unversioned_generate_content_over_raw_http(server: str, model: str) -> None:
    response = httpx.post(f"{server}/models/{model}:generateContent", json=GEMINI_BODY, timeout=120)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["modelVersion"] == model
    png(base64.b64decode(answer["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]))


def test_unversioned_stream_generate_content_over_raw_http(server: str) -> None:
    url = f"{server}/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse"
    response = httpx.post(url, json=GEMINI_BODY, timeout=120)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert '"inlineData"' in response.text


# --- LiteLLM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["/v1", "/openai/v1"])
def test_litellm_openai_image_generation(litellm: ModuleType, server: str, suffix: str) -> None:
    response = litellm.image_generation(
        model="openai/gpt-image-1",
        prompt="a red apple",
        api_base=f"{server}{suffix}",
        api_key="k",
        size="512x512",
    )
    assert png(base64.b64decode(response.data[0].b64_json)) == (512, 512)


def test_litellm_gemini_image_generation(litellm: ModuleType, server: str) -> None:
    """LiteLLM's gemini/ provider posts to {api_base}/models/{model}:generateContent: the server's
    root is its api_base (``/v1beta`` works as well, being the canonical path)."""
    response = litellm.image_generation(
        model="gemini/gemini-2.5-flash-image", prompt="a red apple", api_base=server, api_key="k"
    )
    png(base64.b64decode(response.data[0].b64_json))


@pytest.mark.parametrize("suffix", ["", "/v1beta"])
def test_litellm_gemini_imagen_calls_predict(litellm: ModuleType, server: str, suffix: str) -> None:
    """LiteLLM's gemini/imagen-… models post to {api_base}/models/{model}:predict (Imagen's form)."""
    response = litellm.image_generation(
        model="gemini/imagen-4.0-generate-001", prompt="a kite", api_base=f"{server}{suffix}", api_key="k"
    )
    assert png(base64.b64decode(response.data[0].b64_json)) == (1024, 1024)


def test_litellm_gemini_completion_returns_the_image(litellm: ModuleType, server: str) -> None:
    response = litellm.completion(
        model="gemini/gemini-3.1-flash-image",
        messages=[{"role": "user", "content": "a red apple"}],
        api_base=server,
        api_key="k",
    )
    [image] = response.choices[0].message.images
    header, data = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    png(base64.b64decode(data))
