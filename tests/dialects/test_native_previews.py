"""What the web playground builds on: ``GET /v1/engines``, ``input.previews`` streamed as live
``preview`` events on a task's SSE stream, and the pages served without a key on a server that
wants one for its API."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

KEY = "pages-test-key"


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as server:
        yield server.wait_ready()


def submit(base: str, **input_: Any) -> dict[str, Any]:
    body = {"model": "tiny", "input": {"prompt": "a lighthouse", "resolution": "512", **input_}}
    response = httpx.post(f"{base}/v1/tasks", json=body, timeout=60)
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    return task


def sse(base: str, task_id: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    """Every message of the stream: (id, event, data)."""
    messages, fields = [], {}
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", timeout=120) as response:
        for line in response.iter_lines():
            if not line:
                if "data" in fields:
                    messages.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return messages


def test_engines_lists_what_a_form_needs(base: str) -> None:
    listing = httpx.get(f"{base}/v1/engines").json()
    assert listing["default"] == "tiny" and [card["name"] for card in listing["data"]] == ["tiny"]
    tiny = listing["data"][0]
    assert tiny["max_input_images"] == 14 and "edit" in tiny["tasks"] and tiny["previews"] is True
    assert tiny["steps"] == 4 and tiny["random_weights"] is True
    assert listing["aspect_ratios"][0] == "auto" and {"21:9", "1:8", "8:1"} <= set(listing["aspect_ratios"])
    assert listing["resolutions"] == ["512", "1K", "2K", "4K"]
    assert listing["output_formats"] == ["png", "jpeg", "webp", "avif"]
    assert listing["auth"] is False


def test_previews_stream_live_between_the_stored_events(base: str) -> None:
    blocker = submit(base, steps=40, resolution="1K")  # the preview task waits queued behind it
    task = submit(base, previews=2, steps=6, aspect_ratio="16:9")
    assert httpx.get(f"{base}/v1/tasks/{task['id']}").json()["status"] == "queued"
    messages = sse(base, task["id"])
    kinds = [event for _, event, _ in messages]
    previews = [(id_, data) for id_, event, data in messages if event == "preview"]
    assert [data["index"] for _, data in previews] == [0, 1], kinds
    assert all(id_ is None for id_, _ in previews)  # live only: a reconnect never asks for them
    assert kinds.index("started") < kinds.index("preview") and kinds[-1] == "completed"
    uri = previews[0][1]["image"]
    assert uri.startswith("data:image/jpeg;base64,")
    width, height = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size
    assert abs(width / height - 16 / 9) < 0.05
    assert httpx.get(f"{base}/v1/tasks/{blocker['id']}").json()["status"] in {"running", "succeeded"}


def test_a_task_without_previews_streams_none(base: str) -> None:
    task = submit(base)
    assert "preview" not in [event for _, event, _ in sse(base, task["id"])]


@pytest.mark.parametrize("value", [4, -1])
def test_previews_outside_0_to_3_are_refused_naming_the_field(base: str, value: int) -> None:
    body = {"input": {"prompt": "x", "previews": value}}
    error = httpx.post(f"{base}/v1/tasks", json=body).json()["error"]
    assert error["field"] == "input.previews" and str(value) in error["message"] and "3" in error["message"]


def test_pages_open_without_the_key_the_api_wants(server_settings: Callable[..., Settings]) -> None:
    with LiveServer(create_app(server_settings(api_keys=[KEY], max_input_images=3))) as server:
        url = server.url
        root = httpx.get(f"{url}/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "playground"
        for page in ("/playground", "/arena"):
            answer = httpx.get(f"{url}{page}")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
        script = httpx.get(f"{url}/web/common.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        assert httpx.get(f"{url}/v1/engines").status_code == 401
        engines = httpx.get(f"{url}/v1/engines", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert engines["auth"] is True
        assert engines["data"][0]["max_input_images"] == 3  # the server's limit, below tiny's 14
        escape = httpx.get(f"{url}/web/%2e%2e/web/pages.py")  # the directory's files only
        assert escape.status_code == 404, escape.text
