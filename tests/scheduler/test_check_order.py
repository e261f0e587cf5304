"""A refused request fetches and decodes nothing (docs/limits.md, "The order of checks").

Every check that needs no image bytes — each field, the model, the prompt's length, the output
size, the prompt's safety screen — comes before any input URL is fetched or any input decoded, in
every dialect: a client cannot make the server fetch (14 URLs x 7 MiB) with a request it refuses.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.callers import GEMINI_MODEL, Refusal, envelope

from plantain.errors import FetchError
from plantain.net.fetch import FetchLimits, fetch_bytes
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import FileHost, LiveServer, make_input

PNG = make_input(64, 48).data
TRUNCATED = PNG[:60]  # a PNG header, then nothing: unreadable once decoded
BLOCKED = "a naked man"  # refused by the built-in safety terms at the default level
MAX_PROMPT = 200
GEMINI_PATHS = {
    "gemini": f"/v1beta/models/{GEMINI_MODEL}:generateContent",
    "vertex": f"/v1/projects/p/locations/us-central1/publishers/google/models/{GEMINI_MODEL}:generateContent",
}


@pytest.fixture(scope="module")
def host() -> Iterator[FileHost]:
    with FileHost() as served:
        served.files["ok.png"] = PNG
        yield served


@pytest.fixture(scope="module")
def url(server_settings: Callable[..., Settings], host: FileHost) -> Iterator[str]:
    settings = server_settings(
        allowed_hosts=[host.host_port],
        max_prompt_chars=MAX_PROMPT,
        max_output_pixels=600_000,  # 512 fits; 1K (1024x1024) does not
    )
    with LiveServer(create_app(settings)) as live:
        yield live.wait_ready()


@pytest.fixture
def fetched(host: FileHost) -> list[str]:
    """The paths the file host serves during the test."""
    host.requests.clear()
    return host.requests


def submit_task(url: str, host: FileHost, model: str | None = None, **fields: Any) -> httpx.Response:
    task_input = {"prompt": "make it night", "images": [f"{host.base}/ok.png"], "resolution": "512", **fields}
    body = {"input": task_input, **({"model": model} if model else {})}
    return httpx.post(f"{url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=90)


TASK_REFUSALS: dict[str, tuple[dict[str, Any], Refusal]] = {
    "bad aspect_ratio": (
        {"aspect_ratio": "7:3"},
        Refusal(400, "invalid_request", "input.aspect_ratio", "input.aspect_ratio: '7:3' is not allowed"),
    ),
    "bad resolution": (
        {"resolution": "3K"},
        Refusal(400, "invalid_request", "input.resolution", "input.resolution: '3K' is not allowed"),
    ),
    "11 images": (
        {"num_images": 11},
        Refusal(400, "invalid_request", "input.num_images", "must be between 1 and 10"),
    ),
    "overlong prompt": (
        {"prompt": "x" * (MAX_PROMPT + 1)},
        Refusal(400, "invalid_request", "input.prompt", f"over the limit of {MAX_PROMPT} (max_prompt_chars)"),
    ),
    "blocked prompt": (
        {"prompt": BLOCKED},
        Refusal(400, "content_blocked", "input.prompt", "refused by the safety policy (category sexual"),
    ),
    "unknown model": (
        {"model": "gemini-9-ultra"},
        Refusal(404, "model_not_found", "model", "model 'gemini-9-ultra' is not served here"),
    ),
    "size over max_output_pixels": (
        {"resolution": "1K", "aspect_ratio": "1:1"},
        Refusal(400, "unsupported_size", "input.resolution", "(max_output_pixels)"),
    ),
}


@pytest.mark.parametrize("case", TASK_REFUSALS)
def test_a_task_refused_for_any_field_fetches_none_of_its_urls(
    url: str, host: FileHost, fetched: list[str], case: str
) -> None:
    fields, expected = TASK_REFUSALS[case]
    response = submit_task(url, host, **fields)
    got = envelope("tasks", response)
    assert (response.status_code, got.code, got.field) == (expected.status, expected.code, expected.field)
    assert expected.message in got.message
    assert fetched == []


def test_a_task_that_passes_its_checks_fetches_each_url_once(
    url: str, host: FileHost, fetched: list[str]
) -> None:
    response = submit_task(url, host)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "succeeded"
    assert fetched == ["/ok.png"]


def test_an_idempotent_replay_answers_its_first_task_without_fetching_again(
    url: str, host: FileHost, fetched: list[str]
) -> None:
    body = {"input": {"prompt": "make it dusk", "images": [f"{host.base}/ok.png"], "resolution": "512"}}
    headers = {"Idempotency-Key": "replay-fetches-once", "Prefer": "wait=60"}
    first = httpx.post(f"{url}/v1/tasks", json=body, headers=headers, timeout=90)
    again = httpx.post(f"{url}/v1/tasks", json=body, headers=headers, timeout=90)
    assert first.status_code == 201, first.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert fetched == ["/ok.png"]


def generate(url: str, host: FileHost, path: str, config: dict[str, Any], prompt: str) -> httpx.Response:
    file_part = {"fileData": {"mimeType": "image/png", "fileUri": f"{host.base}/ok.png"}}
    body = {
        "contents": [{"role": "user", "parts": [file_part, {"text": prompt}]}],
        "generationConfig": {"imageConfig": {"imageSize": "512"}, **config},
    }
    return httpx.post(f"{url}{GEMINI_PATHS[path]}", json=body, timeout=90)


GEMINI_REFUSALS: dict[str, tuple[dict[str, Any], Refusal]] = {
    "candidateCount 11": (
        {"candidateCount": 11},
        Refusal(400, "invalid_request", "generationConfig.candidateCount", "must be between 1 and 10"),
    ),
    "bad aspectRatio": (
        {"imageConfig": {"imageSize": "512", "aspectRatio": "7:3"}},
        Refusal(
            400,
            "invalid_request",
            "generationConfig.imageConfig.aspectRatio",
            "generationConfig.imageConfig.aspectRatio: '7:3' is not allowed",
        ),
    ),
}


@pytest.mark.parametrize("path", GEMINI_PATHS)
@pytest.mark.parametrize("case", GEMINI_REFUSALS)
def test_a_gemini_request_refused_for_its_config_fetches_no_file_data(
    url: str, host: FileHost, fetched: list[str], case: str, path: str
) -> None:
    config, expected = GEMINI_REFUSALS[case]
    response = generate(url, host, path, config, "make it night")
    got = envelope("gemini", response)
    assert (response.status_code, got.code, got.field) == (expected.status, expected.code, expected.field)
    assert expected.message in got.message
    assert fetched == []


@pytest.mark.parametrize("path", GEMINI_PATHS)
def test_a_gemini_prompt_blocked_fetches_no_file_data(
    url: str, host: FileHost, fetched: list[str], path: str
) -> None:
    response = generate(url, host, path, {}, BLOCKED)
    assert response.status_code == 200  # Gemini answers a refusal as prompt feedback
    assert response.json()["promptFeedback"]["blockReason"] == "SAFETY"
    assert fetched == []
    assert generate(url, host, path, {}, "make it night").status_code == 200
    assert fetched == ["/ok.png"]


# --- inline images: the prompt is screened before they are decoded --------------------------


def test_a_blocked_prompt_with_an_unreadable_task_image_is_refused_as_blocked(url: str) -> None:
    body = {"input": {"prompt": BLOCKED, "images": [base64.b64encode(TRUNCATED).decode()]}}
    response = httpx.post(f"{url}/v1/tasks", json=body, timeout=30)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == (
        "content_blocked",
        "input.prompt",
    )


def test_a_blocked_prompt_with_an_unreadable_openai_upload_is_refused_as_moderation(url: str) -> None:
    response = httpx.post(
        f"{url}/v1/images/edits",
        data={"prompt": BLOCKED, "size": "512x512"},
        files={"image": ("a.png", TRUNCATED, "image/png")},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "moderation_blocked"


def test_a_blocked_prompt_with_unreadable_inline_data_is_gemini_prompt_feedback(url: str) -> None:
    inline = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(TRUNCATED).decode()}}
    body = {"contents": [{"role": "user", "parts": [inline, {"text": BLOCKED}]}]}
    response = httpx.post(f"{url}{GEMINI_PATHS['gemini']}", json=body, timeout=30)
    assert response.status_code == 200
    assert response.json()["promptFeedback"]["blockReason"] == "SAFETY"


# --- the fetch log --------------------------------------------------------------------------


def test_each_fetch_is_logged_with_the_request_id_its_task_is_logged_with(
    url: str, host: FileHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantain")
    signed = f"{host.base}/ok.png?signature=secret"  # a query may be a credential: never logged
    response = submit_task(url, host, images=[signed])
    assert response.status_code == 201, response.text
    task_id = response.json()["id"]
    queued = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"task {task_id} queued")]
    assert len(queued) == 1
    request_id = queued[0].rsplit(" ", 1)[-1]
    fetches = [r.getMessage() for r in caplog.records if r.name == "plantain.net.fetch"]
    assert len(fetches) == 1
    assert re.fullmatch(
        rf"fetch for request {request_id}, input\.images\[0\]: {re.escape(host.base)}/ok\.png, "
        rf"{len(PNG)} bytes in \d+ ms",
        fetches[0],
    ), fetches[0]
    assert request_id.startswith("req_") and "secret" not in caplog.text


def test_a_failed_fetch_is_logged_with_why_and_without_its_query(
    host: FileHost, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="plantain.net.fetch")
    limits = FetchLimits(max_bytes=10_000, timeout_seconds=5.0, allowed_hosts=[host.host_port])
    with pytest.raises(FetchError):
        fetch_bytes(f"{host.base}/missing?token=secret", field="f", limits=limits, request_id="req_1")
    assert re.fullmatch(
        rf"fetch for request req_1, f: {re.escape(host.base)}/missing, failed: f: "
        rf"{re.escape(host.base)}/missing answered HTTP 404 in \d+ ms",
        caplog.records[-1].getMessage(),
    ), caplog.records[-1].getMessage()
    assert "secret" not in caplog.text
