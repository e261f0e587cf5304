"""Usage and cost on a live server (tiny engine): the same tokens in every dialect, device seconds
and their cost, per-key totals at /v1/usage that survive a restart and task expiry, /metrics."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types
from prometheus_client.parser import text_string_to_metric_families

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.storage.sqlite import MIGRATIONS
from plantain.storage.tasks import TaskStore
from plantain.testing import LiveServer, make_input

PROMPT = "a lighthouse on a cliff at dusk, oil paint"  # 42 characters: 10 estimated tokens
PROMPT_TOKENS = len(PROMPT) // 4
PRICE = 7.2  # per device-hour: a second costs 0.002


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    """A server that needs no key (every caller is anonymous), pricing in EUR."""
    settings = server_settings(price_per_device_hour=PRICE, price_currency="EUR")
    with LiveServer(create_app(settings)) as server:
        yield server.wait_ready()


@pytest.fixture(scope="module")
def gemini(base: str) -> genai.Client:
    return genai.Client(api_key="any", http_options=types.HttpOptions(base_url=base))


def task(base: str, model: str, key: str | None = None, **input_: Any) -> dict[str, Any]:
    body = {"model": model, "input": {"prompt": PROMPT, "resolution": "512", **input_}}
    headers = {"Prefer": "wait=60", **({"Authorization": f"Bearer {key}"} if key else {})}
    response = httpx.post(f"{base}/v1/tasks", json=body, headers=headers, timeout=120)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def usage(base: str, key: str | None = None, **params: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = httpx.get(f"{base}/v1/usage", params=params, headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


# --- every dialect reports the same tokens --------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "output_tokens", "inputs", "image_tokens"),
    [
        ("gemini-2.5-flash-image", 1290, 0, 0),
        ("gemini-3-pro-image-preview", 1120, 1, 560),
        ("gemini-3.1-flash-image-preview", 747, 0, 0),  # the 512 tier
    ],
)
def test_gemini_counts_tokens_by_model_table_and_sends_cost_headers(
    gemini: genai.Client, model: str, output_tokens: int, inputs: int, image_tokens: int
) -> None:
    images = [types.Part.from_bytes(data=make_input().data, mime_type="image/png")] * inputs
    response = gemini.models.generate_content(
        model=model,
        contents=[*images, PROMPT],
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    metadata = response.usage_metadata
    assert metadata is not None
    assert metadata.prompt_token_count == PROMPT_TOKENS + image_tokens
    assert metadata.candidates_token_count == output_tokens
    assert metadata.total_token_count == PROMPT_TOKENS + image_tokens + output_tokens
    assert response.sdk_http_response is not None and response.sdk_http_response.headers is not None
    headers = {name.lower(): value for name, value in response.sdk_http_response.headers.items()}
    seconds = float(headers["x-plantain-device-seconds"])
    assert seconds > 0 and headers["x-plantain-cost-currency"] == "EUR"
    assert float(headers["x-plantain-cost"]) == pytest.approx(seconds * PRICE / 3600, abs=1e-9)


def test_openai_usage_counts_the_same_tokens_as_gemini(base: str) -> None:
    client = openai.OpenAI(api_key="any", base_url=f"{base}/v1")
    raw = client.images.with_raw_response.edit(
        model="gemini-3.1-flash-image-preview",
        image=("in.png", io.BytesIO(make_input().data), "image/png"),
        prompt=PROMPT,
        size="512x512",
    )
    response = raw.parse()
    assert response.usage is not None
    assert response.usage.input_tokens == PROMPT_TOKENS + 258
    assert response.usage.input_tokens_details.text_tokens == PROMPT_TOKENS
    assert response.usage.input_tokens_details.image_tokens == 258
    assert response.usage.output_tokens == 747
    assert response.usage.total_tokens == PROMPT_TOKENS + 258 + 747
    seconds = float(raw.headers["x-plantain-device-seconds"])
    assert float(raw.headers["x-plantain-cost"]) == pytest.approx(seconds * PRICE / 3600, abs=1e-9)


def test_a_task_reports_tokens_images_device_seconds_and_cost(base: str) -> None:
    body = task(base, "gemini-3.1-flash-image-preview", num_images=2)
    reported = body["usage"]
    assert reported["tokens"] == {
        "input": PROMPT_TOKENS,
        "output": 2 * 747,
        "total": PROMPT_TOKENS + 2 * 747,
        "input_text": PROMPT_TOKENS,
        "input_image": 0,
    }
    assert reported["images"] == 2 and reported["device_seconds"] > 0
    assert reported["cost"]["currency"] == "EUR"
    assert reported["cost"]["amount"] == pytest.approx(reported["device_seconds"] * PRICE / 3600, abs=1e-9)
    assert ended(base, body["id"])[-1]["usage"] == reported


def ended(base: str, task_id: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The task's events, read from its SSE stream, which ends with the task's last event."""
    stream = httpx.get(f"{base}/v1/tasks/{task_id}/events", headers=headers, timeout=120).text
    return [
        json.loads(line.removeprefix("data: ")) for line in stream.splitlines() if line.startswith("data: ")
    ]


def test_without_keys_every_caller_is_anonymous_and_sees_all(base: str) -> None:
    since = time.time()
    done = task(base, "tiny")
    found = usage(base, since=since)
    assert found["key_id"] == "anonymous" and found["group_by"] == []
    [entry] = found["data"]
    assert entry["requests"] == entry["succeeded"] == entry["images"] == 1
    assert entry["tokens"]["output"] == 1290
    assert entry["device_seconds"] == pytest.approx(done["usage"]["device_seconds"], abs=1e-3)
    later = usage(base, since=time.time() + 60)["data"]
    assert later == [{**entry, **_zeros(), "cost": {"amount": 0.0, "currency": "EUR"}}]


def _zeros() -> dict[str, Any]:
    tokens = dict.fromkeys(("input", "output", "total", "input_text", "input_image"), 0)
    counts = dict.fromkeys(("requests", "succeeded", "failed", "cancelled", "images"), 0)
    return {**counts, "tokens": tokens, "device_seconds": 0.0}


@pytest.mark.parametrize(
    ("params", "field"),
    [({"since": "yesterday"}, "since"), ({"until": "nan"}, "until"), ({"group_by": "colour"}, "group_by")],
)
def test_a_bad_usage_query_names_the_parameter(base: str, params: dict[str, str], field: str) -> None:
    response = httpx.get(f"{base}/v1/usage", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


OUT_OF_RANGE = [
    ("since", "1e20"),
    ("until", "-6.6e307"),
    ("since", "253402300800"),  # the first second of the year 10000
    ("until", "0001-01-01T00:00:00+01:00"),  # an hour before the year 1, in UTC
]


def test_a_time_no_date_can_hold_is_a_400_naming_the_parameter_and_the_range(base: str) -> None:
    for field, value in OUT_OF_RANGE:
        response = httpx.get(f"{base}/v1/usage", params={field: value})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == {
            "code": "invalid_request",
            "message": f"{field}: {value!r} is out of range; send a time from 0001-01-01T00:00:00Z to "
            "9999-12-31T23:59:59Z",
            "field": field,
            "status": 400,
        }
    found = usage(base, since="-62135596800", until="9999-12-31T23:59:59Z")  # the range's very ends
    assert (found["since"], found["until"]) == ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00")


# --- per-key totals, restarts, expiry and /metrics ----------------------------------------------

ALPHA, BETA = "alpha-key-1234", "beta-key-5678"


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def test_totals_are_per_key_and_survive_a_restart_and_task_expiry(
    server_settings: Callable[..., Settings],
) -> None:
    settings = server_settings(api_keys=[ALPHA, BETA], price_per_device_hour=36.0)
    with LiveServer(create_app(settings)) as server:
        url = server.wait_ready()
        made = _use_as_alpha_and_beta(url)
    _expire_everything(settings.data_dir)
    with LiveServer(create_app(settings)) as server:
        url = server.wait_ready()
        gone = httpx.get(f"{url}/v1/tasks/{made['alpha'][0]['id']}", headers={"x-goog-api-key": ALPHA})
        assert gone.status_code == 404
        _check_alpha(usage(url, ALPHA), made["alpha"])
        _check_beta(usage(url, BETA, group_by="dialect,model"), made["beta"])
        _check_metrics(url, made)


def _use_as_alpha_and_beta(url: str) -> dict[str, list[dict[str, Any]]]:
    """Alpha: a task with two images, and two cancelled ones (one running, one queued behind it).
    Beta: one OpenAI image."""
    alpha = [task(url, "tiny", ALPHA, num_images=2)]
    auth = {"Authorization": f"Bearer {ALPHA}"}
    submitted = [_submit(url, auth, steps=200)]  # still running when it is cancelled
    _wait_until_started(url, submitted[0], auth)
    submitted.append(_submit(url, auth, steps=1))  # queued behind it
    for task_id in reversed(submitted):
        httpx.post(f"{url}/v1/tasks/{task_id}/cancel", headers=auth)
    for task_id in submitted:
        assert ended(url, task_id, auth)[-1]["type"] == "cancelled"
        alpha.append(httpx.get(f"{url}/v1/tasks/{task_id}", headers=auth).json())
    client = openai.OpenAI(api_key=BETA, base_url=f"{url}/v1")
    image = client.images.generate(model="gpt-image-1", prompt=PROMPT, size="512x512")
    assert image.usage is not None and image.usage.output_tokens == 1290
    beta = httpx.get(f"{url}/v1/tasks", params={"limit": 1}, headers={"x-goog-api-key": BETA}).json()
    return {"alpha": alpha, "beta": beta["data"]}


def _submit(url: str, headers: dict[str, str], steps: int) -> str:
    body = {"model": "tiny", "input": {"prompt": PROMPT, "resolution": "512", "steps": steps}}
    task_id: str = httpx.post(f"{url}/v1/tasks", json=body, headers=headers).json()["id"]
    return task_id


def _wait_until_started(url: str, task_id: str, headers: dict[str, str]) -> None:
    with httpx.stream("GET", f"{url}/v1/tasks/{task_id}/events", headers=headers, timeout=60) as events:
        for line in events.iter_lines():
            if line.startswith("event: started"):
                return
    raise AssertionError(f"task {task_id} ended without starting")


def _expire_everything(data_dir: Path) -> None:
    """What the server does once retention has passed, with the clock moved a day on."""
    store = TaskStore(data_dir, retention_seconds=60, clock=lambda: time.time() + 86400)
    try:
        assert store.runs.expire() == 4
    finally:
        store.close()


def _check_alpha(found: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
    assert [task["status"] for task in tasks] == ["succeeded", "cancelled", "cancelled"]
    assert tasks[1]["usage"]["device_seconds"] > 0 and tasks[2]["usage"]["device_seconds"] == 0
    assert found["key_id"] == key_id(ALPHA)
    [entry] = found["data"]
    assert (entry["requests"], entry["succeeded"], entry["cancelled"], entry["images"]) == (3, 1, 2, 2)
    assert entry["tokens"] == {
        "input": PROMPT_TOKENS,
        "output": 2 * 1290,
        "total": PROMPT_TOKENS + 2 * 1290,
        "input_text": PROMPT_TOKENS,
        "input_image": 0,
    }
    seconds = sum(task["usage"]["device_seconds"] for task in tasks)
    assert entry["device_seconds"] == pytest.approx(seconds, abs=1e-3)
    assert entry["cost"] == {"amount": pytest.approx(seconds / 100, abs=1e-8), "currency": "USD"}


def _check_beta(found: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
    assert found["key_id"] == key_id(BETA) and found["group_by"] == ["dialect", "model"]
    [entry] = found["data"]  # alpha's tasks are not beta's to see
    assert (entry["dialect"], entry["model"], entry["requests"], entry["images"]) == (
        "openai",
        "gpt-image-1",
        1,
        1,
    )
    assert entry["device_seconds"] == pytest.approx(tasks[0]["usage"]["device_seconds"], abs=1e-3)


def _check_metrics(url: str, made: dict[str, list[dict[str, Any]]]) -> None:
    assert httpx.get(f"{url}/metrics").status_code == 401
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {BETA}"})
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("plantain_requests_total", dialect="tasks", model="tiny", status="succeeded") == 1
    assert value("plantain_requests_total", dialect="tasks", model="tiny", status="cancelled") == 2
    assert value("plantain_requests_total", dialect="openai", model="gpt-image-1", status="succeeded") == 1
    assert value("plantain_images_total", engine="tiny") == 3
    assert value("plantain_tokens_total", kind="output") == 3 * 1290
    assert value("plantain_tokens_total", kind="input_text") == 2 * PROMPT_TOKENS
    every = [task["usage"] for task in made["alpha"] + made["beta"]]
    seconds = sum(used["device_seconds"] for used in every)
    assert value("plantain_device_seconds_total", engine="tiny") == pytest.approx(seconds, abs=1e-3)
    assert value("plantain_cost_total", currency="USD") == pytest.approx(seconds / 100, abs=1e-8)
    alpha, beta = key_id(ALPHA), key_id(BETA)
    assert value("plantain_usage_by_key_total", key_id=alpha, kind="requests", currency="") == 3
    assert value("plantain_usage_by_key_total", key_id=beta, kind="images", currency="") == 1
    assert value("plantain_usage_by_key_total", key_id=beta, kind="output_tokens", currency="") == 1290
    assert value("plantain_queued_tasks") == 0 and value("plantain_running_tasks") == 0
    assert value("plantain_task_latency_seconds_count", phase="run") == 3  # the queued cancel never ran
    assert value("plantain_task_latency_seconds_bucket", phase="queue", le="+Inf") == 3


def test_a_database_from_before_the_ledger_migrates_and_its_tasks_have_no_usage(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "plantain.db", isolation_level=None) as old:
        for script in MIGRATIONS[:3]:
            old.executescript(script)
        old.execute("PRAGMA user_version = 3")
        old.execute(
            "INSERT INTO tasks (id, queue_order, status, model, engine, source, request, created_at, "
            "completed_at) VALUES ('task_old', 1, 'succeeded', 'tiny', 'tiny', 'tasks', ?, 1, 2)",
            (json.dumps({"prompt": "p", "size": "1K"}),),
        )
    old.close()
    store = TaskStore(tmp_path, retention_seconds=60)
    try:
        migrated = store.get("task_old")
        assert migrated.api_key_id == "anonymous" and migrated.usage is None
        assert store.ledger.totals() == []  # not counted: its usage was never known
    finally:
        store.close()
