"""inference.sh's app API on a live server (tiny engine), over plain HTTP as their REST docs
describe it: runs (sync, queued, streamed), the task object, refusals, and the webhook."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks
from PIL import Image
from tests.callers import serving

from plantain.dialects.inference_sh import render
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, WebhookReceiver, make_input
from plantain.types import EventType, Task, TaskEvent
from plantain.webhooks.signing import generate_secret

COMPLETED, FAILED, CANCELLED, QUEUED, RUNNING = 10, 11, 12, 2, 7


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as server:
        yield server.wait_ready()


def run(base: str, app: str, body: Any, **params: Any) -> httpx.Response:
    return httpx.post(f"{base}/v1/apps/{app}/run", json=body, params=params, timeout=120)


def data_uri(width: int = 96, height: int = 64) -> str:
    return "data:image/png;base64," + base64.b64encode(make_input(width, height).data).decode()


def fetched_size(url: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(httpx.get(url).content)).size


def stream_lines(base: str, task_id: str, accept: str = "application/x-ndjson") -> list[dict[str, Any]]:
    updates = []
    with httpx.stream("GET", f"{base}/tasks/{task_id}/stream", headers={"accept": accept}, timeout=120) as r:
        assert r.status_code == 200
        kind = r.headers["content-type"]
        for line in r.iter_lines():
            if accept == "text/event-stream":
                assert kind.startswith("text/event-stream")
                if line.startswith("data: "):
                    updates.append(json.loads(line.removeprefix("data: ")))
            elif line.strip():
                assert kind.startswith("application/x-ndjson")
                updates.append(json.loads(line))
    return updates


# --- runs -------------------------------------------------------------------------------------


def test_a_synchronous_run_answers_the_images_and_output_meta(base: str) -> None:
    response = run(
        base, "plantain/tiny", {"prompt": "a lighthouse", "resolution": "0.5K", "seed": 5, "num_images": 2}
    )
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["messages"] == []
    task = envelope["data"]
    assert (task["status"], task["status_text"], task["progress"], task["app"]) == (
        COMPLETED,
        "completed",
        100,
        "plantain/tiny",
    )
    output = task["output"]
    assert output["description"] == ""
    assert [fetched_size(url) for url in output["images"]] == [(512, 512)] * 2
    meta = output["output_meta"]
    assert [item["type"] for item in meta["inputs"]] == ["text"] and meta["inputs"][0]["tokens"] > 0
    assert [(o["width"], o["height"], o["resolution_mp"], o["extra"]["seed"]) for o in meta["outputs"]] == [
        (512, 512, 0.262, 5),
        (512, 512, 0.262, 6),
    ]
    assert meta["resolution"] == {"tier": "0.5K", "aspect_ratio": "auto", "width": 512, "height": 512}
    assert meta["parameters"]["num_images"] == 2 and meta["parameters"]["seed"] == 5
    assert meta["parameters"]["steps"] >= 1 and meta["parameters"]["ignored"] == []
    assert meta["usage"]["images"] == 2 and meta["usage"]["device_seconds"] > 0
    assert set(meta["cost"]) == {"amount", "currency"}
    assert meta["served_by"] == "tiny" and meta["model"] == "tiny"


def test_the_body_may_be_the_run_request_and_the_version_pin_is_ignored(base: str) -> None:
    body = {"input": {"prompt": "a fox", "images": [data_uri()], "aspect_ratio": "auto"}}
    response = run(base, "google/gemini-2-5-flash-image@x7k2", body)
    assert response.status_code == 200, response.text
    task = response.json()["data"]
    assert (
        task["app"] == "google/gemini-2-5-flash-image"
    )  # runs on the default engine, as the Gemini name does
    assert task["input"]["images"] == 1 and task["input"]["aspect_ratio"] == "auto"
    assert fetched_size(task["output"]["images"][0]) == (1248, 832)  # the input's 3:2 shape at 1K
    assert [item["type"] for item in task["output"]["output_meta"]["inputs"]] == ["text", "image"]


def test_an_aspect_ratio_and_jpeg_are_made_as_asked(base: str) -> None:
    task = run(
        base, "plantain/tiny", {"prompt": "dunes", "aspect_ratio": "16:9", "output_format": "jpeg"}
    ).json()
    url = task["data"]["output"]["images"][0]
    image = Image.open(io.BytesIO(httpx.get(url).content))
    assert (image.format, image.size) == ("JPEG", (1344, 768))


def test_ignored_parameters_are_reported_in_messages_header_and_meta(base: str) -> None:
    body = {
        "prompt": "a bee",
        "resolution": "0.5K",
        "temperature": 1.5,
        "top_k": 40,
        "enable_google_search": False,
        "retry_count": 3,
    }
    response = run(base, "plantain/tiny", body)
    assert response.status_code == 200, response.text
    # retry_count is used (a provider's retries), enable_google_search is grounding (off here)
    ignored = ["temperature", "top_k"]
    [message] = response.json()["messages"]
    assert message["level"] == "warning" and message["meta"]["ignored"] == ignored
    assert response.headers["x-plantain-ignored-parameters"] == ", ".join(ignored)
    assert response.json()["data"]["output"]["output_meta"]["parameters"]["ignored"] == ignored


@pytest.mark.parametrize(
    ("fields", "level"),
    [
        ({"safety_tolerance": "BLOCK_MOST"}, "strict"),
        ({"safety_filter": "block_medium_and_above"}, "standard"),
        ({"safety_filter": "block_only_high", "safety_tolerance": "BLOCK_MOST"}, "strict"),  # the stricter
    ],
)
def test_safety_vocabularies_map_to_levels(base: str, fields: dict[str, str], level: str) -> None:
    task = run(base, "plantain/tiny", {"prompt": "a tree", "resolution": "0.5K", **fields}).json()["data"]
    assert task["status"] == COMPLETED and task["input"]["safety_level"] == level


def test_the_sdk_path_queues_then_the_stream_shows_progress_then_the_output(base: str) -> None:
    body = {"app": "plantain/tiny@v1", "input": {"prompt": "a kite", "resolution": "0.5K"}}
    response = httpx.post(f"{base}/apps/run", json=body, timeout=60)
    assert response.status_code == 200, response.text
    task = response.json()["data"]
    assert task["status"] in {QUEUED, RUNNING, COMPLETED}  # answered at once: no wait asked for
    updates = stream_lines(base, task["id"])
    statuses = [update["status"] for update in updates]
    assert statuses[-1] == COMPLETED and set(statuses) <= {QUEUED, RUNNING, COMPLETED}
    progress = [update["progress"] for update in updates]
    assert progress == sorted(progress) and progress[-1] == 100
    running = [update for update in updates if update["status"] == RUNNING]
    assert all(update["output"] == {"progress": update["progress"]} for update in running)
    assert updates[-1]["output"]["images"][0].startswith(f"{base}/v1/files/")
    again = httpx.get(f"{base}/tasks/{task['id']}").json()["data"]
    assert again["status"] == COMPLETED and again["output"] == updates[-1]["output"]


def test_a_streamed_run_with_sse_ends_with_the_output(base: str) -> None:
    body = {"prompt": "a comet", "resolution": "0.5K"}
    updates = []
    with httpx.stream(
        "POST",
        f"{base}/v1/apps/plantain/tiny/run",
        params={"stream": "true"},
        json=body,
        headers={"accept": "text/event-stream"},
        timeout=120,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        updates = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert len(updates) >= 2 and updates[-1]["status"] == COMPLETED
    assert any(0 < update["progress"] < 100 for update in updates)  # steps in between


def test_cancel_of_an_ended_task_leaves_it_and_unknown_tasks_are_404(base: str) -> None:
    task = run(base, "plantain/tiny", {"prompt": "a cup", "resolution": "0.5K"}).json()["data"]
    cancelled = httpx.post(f"{base}/tasks/{task['id']}/cancel").json()["data"]
    assert cancelled["status"] == COMPLETED
    missing = httpx.get(f"{base}/tasks/nope")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404 and "nope" in missing.json()["detail"]


# --- refusals ---------------------------------------------------------------------------------


def test_an_unknown_app_is_a_404_naming_the_served_ones(base: str) -> None:
    response = run(base, "acme/painter", {"prompt": "x"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/errors/model_not_found" and problem["field"] == "app"
    assert "'acme/painter'" in problem["detail"]
    assert (
        "google/gemini-3-1-flash-image-preview" in problem["detail"] and "plantain/tiny" in problem["detail"]
    )


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"temperature": 3}, "input.temperature", ["3", "2"]),
        ({"top_p": 1.5}, "input.top_p", ["1.5", "1"]),
        ({"resolution": "3K"}, "input.resolution", ["'3K'", "0.5K, 1K, 2K, 4K"]),
        ({"num_images": 11}, "input.num_images", ["11", "10"]),
        ({"aspect_ratio": "5:1"}, "input.aspect_ratio", ["'5:1'", "16:9"]),
        ({"safety_filter": "block_all"}, "input.safety_filter", ["'block_all'", "block_only_high"]),
        ({"output_format": "tiff"}, "input.output_format", ["'tiff'", "webp"]),
        ({"colour": "red"}, "input.colour", ["'red'", "Extra inputs"]),
        ({"images": ["./photo.png"]}, "input.images[0]", ["'./photo.png'", "base64"]),
        ({"images": ["aGVsbG8gd29ybGQ="] * 15}, "input.images", ["15", "14"]),
    ],
)
def test_bad_input_is_a_400_naming_field_value_and_limit(
    base: str, fields: dict[str, Any], field: str, words: list[str]
) -> None:
    response = run(base, "plantain/tiny", {"prompt": "x", **fields})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field and problem["status"] == 400
    assert all(word in problem["detail"] for word in words), problem["detail"]


def test_an_image_over_the_inline_limit_is_refused_before_decoding(base: str) -> None:
    huge = "A" * (10 * 1024 * 1024)  # 7.5 MiB decoded: over the 7 MiB max_image_bytes
    response = run(base, "plantain/tiny", {"prompt": "x", "images": [huge]})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["field"] == "input.images[0]" and "max_image_bytes" in problem["detail"]


def test_a_missing_prompt_and_scheduled_runs_are_refused(base: str) -> None:
    missing = run(base, "plantain/tiny", {"images": []})
    assert missing.status_code == 400 and missing.json()["detail"] == "input.prompt is required"
    later = httpx.post(
        f"{base}/apps/run", json={"app": "plantain/tiny", "input": {"prompt": "x"}, "run_at": "2030-01-01"}
    )
    assert later.status_code == 400 and later.json()["field"] == "run_at"
    no_app = httpx.post(f"{base}/apps/run", json={"input": {"prompt": "x"}})
    assert no_app.status_code == 400 and no_app.json()["field"] == "app"


# --- webhooks ---------------------------------------------------------------------------------


def test_the_webhook_is_their_terminal_body_signed_the_standard_way(
    server_settings: Callable[..., Settings],
) -> None:
    secret = generate_secret()
    settings = server_settings(allowed_hosts=["127.0.0.1"], webhook_secret=secret)
    with WebhookReceiver() as receiver, serving(settings) as (base, _):
        body = {
            "app": "plantain/tiny",
            "input": {"prompt": "a gull", "resolution": "0.5K"},
            "webhook": receiver.url,
            "wait": True,
        }
        task = httpx.post(f"{base}/apps/run", json=body, timeout=120).json()["data"]
        [delivery] = receiver.wait_for(lambda seen: len(seen) >= 1)
        payload = standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
        assert set(payload) == {"id", "status", "output", "error", "session_id", "created_at", "updated_at"}
        assert (payload["id"], payload["status"], payload["error"]) == (task["id"], "completed", None)
        assert (
            payload["output"]["images"][0].startswith(base)
            and payload["output"]["output_meta"]["served_by"] == "tiny"
        )
        assert fetched_size(payload["output"]["images"][0]) == (512, 512)
    assert len(receiver.deliveries) == 1  # terminal state only: no queued/started/progress calls


# --- their REST docs' curl example, host changed ---------------------------------------------

CURL_BODY = '{"app": "google/gemini-2-5-flash-image", "input": {"prompt": "a banana in space"}}'


def test_their_curl_example_queues_the_run_and_the_task_finishes(base: str) -> None:
    """``curl -X POST https://api.inference.sh/apps/run -H "Authorization: Bearer $KEY" -H
    "Content-Type: application/json" -d '{"app": …, "input": {…}}'``, only the host changed."""
    curl = shutil.which("curl")
    headers = {"Authorization": "Bearer inf_local", "Content-Type": "application/json"}
    if curl is None:
        answer = httpx.post(f"{base}/apps/run", headers=headers, content=CURL_BODY, timeout=60)
        status, created = answer.status_code, answer.json()
    else:
        command = [curl, "-s", "-w", "\n%{http_code}", "-X", "POST", f"{base}/apps/run"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        out = subprocess.run(
            [*command, "-d", CURL_BODY], capture_output=True, text=True, timeout=60, check=True
        )
        text, _, code = out.stdout.rpartition("\n")
        status, created = int(code), json.loads(text)
    assert status == 200, created
    task_id = created["data"]["id"]
    updates = stream_lines(base, task_id)
    assert updates[-1]["status"] == COMPLETED
    assert updates[-1]["output"]["images"][0].startswith(f"{base}/v1/files/")


# --- progress ---------------------------------------------------------------------------------


def test_progress_starts_over_when_a_task_is_queued_again() -> None:
    task = Task(
        id="t",
        status="queued",
        model="tiny",
        engine="tiny",
        source="inference_sh",
        request={"prompt": "p"},
        input_count=0,
        attempts=1,
        cancel_requested=False,
        webhook_url=None,
        webhook_events=None,
        result=None,
        error=None,
        created_at=0.0,
        started_at=None,
        completed_at=None,
        expires_at=None,
    )
    kinds: list[tuple[EventType, dict[str, Any]]] = [
        ("queued", {}),
        ("started", {}),
        ("progress", {"step": 3, "total": 4}),
        ("queued", {"requeued": "restart"}),  # its worker went away: it runs over
    ]
    events = [
        TaskEvent(task_id="t", seq=n, type=k, data=d, created_at=0.0) for n, (k, d) in enumerate(kinds, 1)
    ]
    assert render.progress_of(task, events[:3]) == 75
    assert render.progress_of(task, events) == 0
    assert render.progress_of(task.model_copy(update={"status": "succeeded"}), events) == 100
