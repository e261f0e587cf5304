"""Issue 22 through the APIs on a live server: LoRAs from the allow-list in every dialect (and
paths refused), named presets, 4K made by the upscaler and said so, and the licence gate."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain.engines import tiny
from plantain.engines.lora_tiny import build_tiny_lora
from plantain.engines.qwen_image_tiny import build_tiny_qwen_image
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer
from plantain.upscale.tiny import build_tiny_upscaler


@pytest.fixture(scope="module")
def base(
    server_settings: Callable[..., Settings], data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    extras = tmp_path_factory.mktemp("extras")
    build_tiny_lora(tiny_dir, "Flux2KleinPipeline", extras / "style")
    # Qwen-Image runs its tiny checkpoint with its own preset (klein's needs the tiny's encoder
    # layers) and makes 1K at most: 2K and 4K come from the upscaler.
    build_tiny_qwen_image(extras / "qwen-image")
    settings = server_settings(
        serve_engines=["tiny", "qwen-image", "qwen-image-2.1"],
        weights={"tiny": tiny_dir, "qwen-image": extras / "qwen-image", "qwen-image-2.1": extras / "absent"},
        upscaler=build_tiny_upscaler(extras / "x4.safetensors", "compact", scale=4),  # the fast tiny one
        loras={"tiny": {"style": {"source": str(extras / "style")}}},
        watermark=False,  # its serial changes pixels from task to task; these tests compare pixels
    )
    with LiveServer(create_app(settings)) as server:
        yield server.wait_ready()


def run_task(base: str, model: str = "tiny", **input_: Any) -> dict[str, Any]:
    body = {"model": model, "input": {"prompt": "a lighthouse", "resolution": "512", "seed": 5, **input_}}
    response = httpx.post(f"{base}/v1/tasks", json=body, params={"wait": "true"}, timeout=300)
    assert response.status_code in (200, 201, 202), response.text
    task: dict[str, Any] = response.json()
    while task["status"] in ("queued", "running"):
        task = httpx.get(f"{base}/v1/tasks/{task['id']}", params={"wait": 30}, timeout=60).json()
    assert task["status"] == "succeeded", task
    return task


def pixels(task: dict[str, Any]) -> bytes:
    url = task["output"]["images"][0]["url"]
    return Image.open(io.BytesIO(httpx.get(url, timeout=60).content)).convert("RGB").tobytes()


def refused(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_lora_from_the_allow_list_changes_the_image_and_scale_zero_does_not(base: str) -> None:
    plain = run_task(base)
    styled = run_task(base, loras=[{"name": "style"}])
    off = run_task(base, loras=[{"name": "style", "scale": 0}])
    assert pixels(styled) != pixels(plain)
    assert pixels(off) == pixels(plain)
    assert styled["input"]["loras"] == [{"name": "style", "scale": None}]
    again = run_task(base, loras=[{"name": "style", "scale": 1.0}])
    assert pixels(again) == pixels(styled)


def test_task_api_refuses_a_path_or_an_unknown_lora_naming_the_field(base: str) -> None:
    for name in ("/etc/passwd", "../style", "https://example.com/x.safetensors", "other"):
        body = {"model": "tiny", "input": {"prompt": "x", "loras": [{"name": name}]}}
        error = refused(httpx.post(f"{base}/v1/tasks", json=body, timeout=60))
        assert error["field"] == "input.loras[0].name", error
        assert "its LoRAs are style" in error["message"] and repr(name) in error["message"]


def test_gemini_takes_loras_in_image_config_and_refuses_others_by_its_field_name(base: str) -> None:
    url = f"{base}/v1beta/models/tiny:generateContent"
    config = {"imageConfig": {"imageSize": "512", "loras": [{"name": "style", "scale": 0.5}]}, "seed": 3}
    body = {"contents": [{"parts": [{"text": "a lighthouse"}]}], "generationConfig": config}
    assert httpx.post(url, json=body, timeout=300).status_code == 200
    config["imageConfig"]["loras"] = [{"name": "/models/evil.safetensors"}]
    error = refused(httpx.post(url, json=body, timeout=60))
    assert error["status"] == "INVALID_ARGUMENT"
    assert "generationConfig.imageConfig.loras[0].name" in error["message"]
    assert "a path or URL" in error["message"]


def test_openai_and_chat_take_loras_and_presets_as_extension_fields(base: str) -> None:
    body = {"model": "tiny", "prompt": "a lighthouse", "size": "1024x1024", "loras": [{"name": "nope"}]}
    error = refused(httpx.post(f"{base}/v1/images/generations", json=body, timeout=60))
    assert error["param"] == "loras[0].name"
    body = {"model": "tiny", "prompt": "a lighthouse", "preset": "lightning"}
    error = refused(httpx.post(f"{base}/v1/images/generations", json=body, timeout=60))
    assert error["param"] == "preset" and "engine tiny" in error["message"]
    chat = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "a lighthouse"}],
        "loras": [{"name": "x"}],
    }
    error = refused(httpx.post(f"{base}/v1/chat/completions", json=chat, timeout=60))
    assert error["param"] == "loras[0].name"


def test_an_edit_form_takes_loras_as_json_text(base: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "red").save(buffer, format="PNG")
    files = {"image": ("in.png", buffer.getvalue(), "image/png")}
    data = {"model": "tiny", "prompt": "make it blue", "loras": '[{"name": "style"}]', "seed": "4"}
    response = httpx.post(f"{base}/v1/images/edits", data=data, files=files, timeout=300)
    assert response.status_code == 200, response.text
    data["loras"] = '[{"name": "~/x"}]'
    error = refused(httpx.post(f"{base}/v1/images/edits", data=data, files=files, timeout=60))
    assert error["param"] == "loras[0].name"


def test_4k_on_an_engine_without_native_4k_is_upscaled_and_says_from_what(base: str) -> None:
    task = run_task(base, "qwen-image", resolution="4K", steps=1)
    image = task["output"]["images"][0]
    assert (image["width"], image["height"]) == (4096, 4096)
    upscaled = task["output"]["upscaled"]
    assert (upscaled["from_width"], upscaled["from_height"]) == (1024, 1024)
    assert (upscaled["width"], upscaled["height"]) == (4096, 4096)
    assert (
        upscaled["upscaler"] == "RealESRGAN Compact 4x (x4.safetensors)" and upscaled["refine_strength"] == 0
    )


def test_gemini_4k_answers_with_the_upscaled_header(base: str) -> None:
    body = {
        "contents": [{"parts": [{"text": "a lighthouse"}]}],
        "generationConfig": {"imageConfig": {"imageSize": "2K", "aspectRatio": "21:9"}, "seed": 1},
    }
    response = httpx.post(f"{base}/v1beta/models/qwen-image:generateContent", json=body, timeout=600)
    assert response.status_code == 200, response.text
    header = response.headers["x-plantain-upscaled"]
    assert header == "1536x672 upscaled to 3072x1344 by RealESRGAN Compact 4x (x4.safetensors)"
    part = response.json()["candidates"][0]["content"]["parts"][-1]
    data = base64.b64decode(part["inlineData"]["data"])
    assert Image.open(io.BytesIO(data)).size == (3072, 1344)
    small = {**body, "generationConfig": {"imageConfig": {"imageSize": "512"}, "seed": 1}}
    plain = httpx.post(f"{base}/v1beta/models/qwen-image:generateContent", json=small, timeout=300)
    assert plain.status_code == 200 and "x-plantain-upscaled" not in plain.headers


def test_the_engines_list_shows_cards(base: str) -> None:
    cards = {card["name"]: card for card in httpx.get(f"{base}/v1/engines").json()["data"]}
    assert cards["tiny"]["loras"] == ["style"]
    assert cards["qwen-image"]["tiers"]["2K"] == {
        "made": "upscaled",
        "size": "2048x2048",
        "from": "1024x1024",
        "upscaler": "RealESRGAN Compact 4x (x4.safetensors)",
    }
    licence = cards["qwen-image-2.1"]["licence"]
    assert licence["id"] == "qwen-research" and licence["commercial_use"] is False
    assert licence["accepted"] is False


def test_an_engine_under_an_unaccepted_licence_is_refused_in_each_dialect(base: str) -> None:
    body = {"model": "qwen-image-2.1", "input": {"prompt": "a lighthouse"}}
    error = refused(httpx.post(f"{base}/v1/tasks", json=body, timeout=60), 403)
    assert error["code"] == "licence_not_accepted"
    assert "Qwen Research License" in error["message"] and "accept_licences" in error["message"]
    gemini = {"contents": [{"parts": [{"text": "a lighthouse"}]}]}
    url = f"{base}/v1beta/models/qwen-image-2.1:generateContent"
    error = refused(httpx.post(url, json=gemini, timeout=60), 403)
    assert error["status"] == "PERMISSION_DENIED" and "accept_licences" in error["message"]


def test_a_bad_lora_entry_is_named_by_its_path_in_each_dialect(base: str) -> None:
    body = {"model": "tiny", "prompt": "x", "loras": [{"name": "style", "scale": 9}]}
    error = refused(httpx.post(f"{base}/v1/images/generations", json=body, timeout=60))
    assert error["param"] == "loras[0].scale" and "9" in error["message"]
    body = {"model": "tiny", "prompt": "x", "loras": [{"name": "style", "weights": "/x"}]}
    error = refused(httpx.post(f"{base}/v1/images/generations", json=body, timeout=60))
    assert error["param"] == "loras[0].weights"
    task = {"model": "tiny", "input": {"prompt": "x", "loras": [{"name": "style", "scale": -5}]}}
    error = refused(httpx.post(f"{base}/v1/tasks", json=task, timeout=60))
    assert error["field"] == "input.loras[0].scale"
