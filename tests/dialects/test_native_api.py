"""The task API on a live server (tiny engine): submit, wait, list, cancel, SSE replay."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as server:
        server.wait_ready()
        yield server.url


def submit(
    base: str, input_: dict[str, Any], headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {"model": "tiny", "input": {"resolution": "512", **input_}, **extra}
    return httpx.post(f"{base}/v1/tasks", json=body, headers=headers or {}, timeout=120)


def events(base: str, task_id: str, last_event_id: int | None = None) -> list[dict[str, Any]]:
    headers = {"last-event-id": str(last_event_id)} if last_event_id is not None else {}
    found = []
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", headers=headers, timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                found.append(json.loads(line.removeprefix("data: ")))
    return found


def test_prefer_wait_answers_the_finished_task_with_its_images(base: str) -> None:
    image = base64.b64encode(make_input(96, 64).data).decode()
    response = submit(
        base,
        {"prompt": "a boat", "images": [f"data:image/png;base64,{image}"], "seed": 9},
        {"Prefer": "wait=60"},
    )
    assert response.status_code == 201
    task = response.json()
    assert task["status"] == "succeeded" and task["input"]["images"] == 1
    output = task["output"]["images"][0]
    assert output["seed"] == 9
    fetched = httpx.get(output["url"])
    assert fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (output["width"], output["height"]) == (624, 416)


def test_without_prefer_the_answer_is_202_and_the_events_replay(base: str) -> None:
    response = submit(base, {"prompt": "a kite", "steps": 3})
    assert response.status_code == 202 and response.json()["status"] in {"queued", "running"}
    task_id = response.json()["id"]
    story = events(base, task_id)
    assert [event["type"] for event in story] == [
        "queued",
        "started",
        "progress",
        "progress",
        "progress",
        "completed",
    ]
    assert story[-1]["outputs"][0]["url"].startswith(f"{base}/v1/files/")
    assert isinstance(story[-1]["outputs"][0]["seed"], int)
    assert story[-1]["usage"]["images"] == 1 and story[-1]["usage"]["device_seconds"] > 0
    resumed = events(base, task_id, last_event_id=3)
    assert [event["seq"] for event in resumed] == [4, 5, 6]
    listed = httpx.get(f"{base}/v1/tasks", params={"status": "succeeded", "limit": 100}).json()
    assert task_id in [item["id"] for item in listed["data"]]


def test_the_same_idempotency_key_gives_the_same_task(base: str) -> None:
    headers = {"Idempotency-Key": "order-77"}
    first = submit(base, {"prompt": "a cup"}, headers)
    again = submit(base, {"prompt": "a cup"}, headers)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = submit(base, {"prompt": "a different cup"}, headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_conflict"


def test_cancelling_a_running_task_stops_it(base: str) -> None:
    task_id = submit(base, {"prompt": "slow", "steps": 40, "resolution": "1K"}).json()["id"]
    deadline = time.monotonic() + 30
    while httpx.get(f"{base}/v1/tasks/{task_id}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert httpx.post(f"{base}/v1/tasks/{task_id}/cancel").status_code == 202
    story = events(base, task_id)
    assert story[-1]["type"] == "cancelled" and story[-1]["while"] == "running"
    assert sum(1 for event in story if event["type"] == "progress") < 40
    assert httpx.get(f"{base}/v1/tasks/{task_id}").json()["status"] == "cancelled"


def test_an_idempotent_replay_answers_as_the_first_task_stands_now(base: str) -> None:
    headers = {"Idempotency-Key": "replay-status"}
    slow = {"prompt": "a slow cup", "steps": 40, "resolution": "1K"}
    first = submit(base, slow, headers)
    assert first.status_code == 202
    while_running = submit(base, slow, headers)
    assert while_running.status_code == 202 and while_running.json()["id"] == first.json()["id"]
    httpx.post(f"{base}/v1/tasks/{first.json()['id']}/cancel")
    ended = submit(base, slow, {**headers, "Prefer": "wait=60"})  # waits for the stop, as a new one would
    assert ended.status_code == 201 and ended.json()["status"] == "cancelled"
    once_ended = submit(base, slow, headers)
    assert once_ended.status_code == 201 and once_ended.headers["idempotent-replayed"] == "true"


def test_a_cancelled_task_says_whether_it_ran_and_the_step_it_stopped_at(base: str) -> None:
    running = submit(base, {"prompt": "slow", "steps": 40, "resolution": "1K"}).json()["id"]
    queued = submit(base, {"prompt": "waits behind it", "steps": 3}).json()["id"]  # cannot join its run
    story = []
    with httpx.stream("GET", f"{base}/v1/tasks/{running}/events", timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                story.append(json.loads(line.removeprefix("data: ")))
                if story[-1]["type"] == "progress" and story[-1]["step"] == 2:
                    assert httpx.post(f"{base}/v1/tasks/{queued}/cancel").json()["status"] == "cancelled"
                    assert httpx.post(f"{base}/v1/tasks/{running}/cancel").status_code == 202
    steps = [event["step"] for event in story if event["type"] == "progress"]
    assert story[-1]["type"] == "cancelled" and story[-1]["while"] == "running"
    assert story[-1]["step"] == steps[-1] + 1 < 40  # stopped after the step following its last progress
    never_ran = events(base, queued)[-1]
    assert (never_ran["type"], never_ran["while"]) == ("cancelled", "queued") and "step" not in never_ran


def test_resuming_at_or_past_the_end_of_an_ended_task_is_a_204_at_once(base: str) -> None:
    task_id = submit(base, {"prompt": "a kite", "steps": 3}, {"Prefer": "wait=60"}).json()["id"]
    last = events(base, task_id)[-1]["seq"]
    assert [event["type"] for event in events(base, task_id, last_event_id=last - 1)] == ["completed"]
    for past in (last, last + 1, last + 1000):
        # A hang shows as a read timeout: a stream that stays open sends keep-alives every 15 s.
        response = httpx.get(
            f"{base}/v1/tasks/{task_id}/events", headers={"last-event-id": str(past)}, timeout=10
        )
        assert response.status_code == 204 and response.content == b"", past


def test_resuming_past_the_end_of_a_running_task_ends_when_it_does(
    base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plantain.dialects.native import routes

    monkeypatch.setattr(routes, "KEEPALIVE_SECONDS", 0.05)  # the loop below wakes often
    task_id = submit(base, {"prompt": "a slow kite", "steps": 40}).json()["id"]
    deadline = time.monotonic() + 90
    lines = []
    headers = {"last-event-id": "1000"}
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", headers=headers, timeout=60) as response:
        assert response.status_code == 200  # not ended yet: the stream waits for the end
        for line in response.iter_lines():
            assert time.monotonic() < deadline, "the stream did not end with its task"
            lines.append(line)
    assert httpx.get(f"{base}/v1/tasks/{task_id}").json()["status"] == "succeeded"
    assert not [line for line in lines if line.startswith("data: ")]


@pytest.mark.parametrize(
    ("input_", "extra", "field", "text"),
    [
        ({"prompt": "p", "resolution": "8K"}, {}, "input.resolution", "'8K' is not allowed"),
        ({"prompt": "p", "colour": "red"}, {}, "input.colour", "input.colour is not a known field"),
        (
            {"prompt": "p", "steps": 400},
            {},
            "input.steps",
            "input.steps: 400 is not allowed; must be between 1 and 200",
        ),
        (
            {"prompt": "p", "images": ["http://169.254.169.254/latest/meta-data/"]},
            {},
            "input.images[0]",
            "a cloud metadata address",
        ),
        ({"prompt": "p"}, {"webhook": "http://127.0.0.1:9/hook"}, "webhook", "a loopback address"),
        (
            {"prompt": "p"},
            {"webhook_events_filter": ["done"]},
            "webhook_events_filter",
            "'done' is not an event",
        ),
    ],
)
def test_bad_submissions_are_400s_naming_the_field(
    base: str, input_: dict[str, Any], extra: dict[str, Any], field: str, text: str
) -> None:
    response = submit(base, input_, **extra)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and text in error["message"], error


def test_an_unknown_task_is_a_404_in_the_task_envelope(base: str) -> None:
    response = httpx.get(f"{base}/v1/tasks/task_nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_last_event_id_beyond_any_event_number_is_a_400_naming_it(base: str) -> None:
    task_id = submit(base, {"prompt": "p"}, {"Prefer": "wait=60"}).json()["id"]
    value = str(2**63)  # one past SQLite's largest integer
    response = httpx.get(f"{base}/v1/tasks/{task_id}/events", headers={"last-event-id": value})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": f"Last-Event-ID: '{value}' is not an event number; send the id of the last event "
        "received (0 to 9223372036854775807)",
        "field": "Last-Event-ID",
        "status": 400,
    }


LIMIT_RULE = "is not allowed; must be a whole number between 1 and 100"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "abc"}, "limit", f"limit: 'abc' {LIMIT_RULE}"),
        ({"limit": "0"}, "limit", f"limit: '0' {LIMIT_RULE}"),
        ({"limit": "2.5"}, "limit", f"limit: '2.5' {LIMIT_RULE}"),
        ({"limit": "1" + "0" * 30}, "limit", f"limit: '1{'0' * 30}' {LIMIT_RULE}"),
        (
            {"cursor": "zzz"},
            "cursor",
            "cursor: 'zzz' is not a page of this list (or its task has expired); send the next_cursor "
            "of the previous page, or none for the first page",
        ),
    ],
)
def test_a_bad_list_query_is_a_400_in_the_task_envelope_naming_the_parameter(
    base: str, params: dict[str, str], field: str, message: str
) -> None:
    response = httpx.get(f"{base}/v1/tasks", params=params)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_request", "message": message, "field": field, "status": 400}
    }


def test_a_quiet_event_stream_sends_keep_alive_comments(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from plantain.dialects.native import routes

    monkeypatch.setattr(routes, "KEEPALIVE_SECONDS", 0.05)
    task_id = submit(base, {"prompt": "slow", "steps": 40, "resolution": "1K"}).json()["id"]
    lines = []
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line == ": keep-alive":
                break
    assert ": keep-alive" in lines
    cancelled = httpx.post(f"{base}/v1/tasks/{task_id}/cancel").json()
    assert cancelled["status"] == "cancelled" or cancelled["cancel_requested"] is True
