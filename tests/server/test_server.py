"""The server shell: health, readiness, API keys and error envelopes, on a real port."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, free_port


def wait_ready(base: str, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base}/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


KEY = {"x-goog-api-key": "sesame"}


@pytest.fixture(scope="module")
def keyed_server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = server_settings(api_keys=["sesame"])
    with LiveServer(create_app(settings)) as server:
        yield server.url


def test_health_is_live_at_once_and_ready_after_loading(keyed_server: str) -> None:
    assert httpx.get(f"{keyed_server}/healthz").json() == {"status": "ok"}
    ready = wait_ready(keyed_server)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_readiness_reports_an_engine_that_cannot_load(server_settings: Callable[..., Settings]) -> None:
    settings = server_settings(default_engine="qwen-image")  # not pulled
    with LiveServer(create_app(settings)) as server:
        deadline = time.monotonic() + 30
        while (response := httpx.get(f"{server.url}/readyz")).json()["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert response.status_code == 503
        assert "plantain pull qwen-image" in response.json()["error"]
        assert httpx.get(f"{server.url}/healthz").status_code == 200


@pytest.mark.parametrize(
    ("headers", "params"),
    [({"x-goog-api-key": "sesame"}, {}), ({}, {"key": "sesame"}), ({"authorization": "Bearer sesame"}, {})],
)
def test_a_configured_key_is_accepted_in_each_place(
    keyed_server: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = httpx.get(f"{keyed_server}/v1beta/models/nope", headers=headers, params=params)
    assert response.status_code == 404  # past the key check, to the unknown model
    assert response.json()["error"]["status"] == "NOT_FOUND"


def test_missing_and_wrong_keys_in_the_gemini_shape(keyed_server: str) -> None:
    missing = httpx.post(f"{keyed_server}/v1beta/models/gemini-2.5-flash-image:generateContent", json={})
    assert missing.status_code == 401
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    wrong = httpx.post(
        f"{keyed_server}/v1beta/models/gemini-2.5-flash-image:generateContent",
        json={},
        headers={"x-goog-api-key": "nope"},
    )
    assert (wrong.status_code, wrong.json()["error"]["status"], wrong.json()["error"]["code"]) == (
        403,
        "PERMISSION_DENIED",
        403,
    )


def test_missing_and_wrong_keys_in_the_openai_shape(keyed_server: str) -> None:
    missing = httpx.post(f"{keyed_server}/v1/images/generations", json={"prompt": "x"})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    wrong = httpx.post(
        f"{keyed_server}/v1/images/generations",
        json={"prompt": "x"},
        headers={"authorization": "Bearer nope"},
    )
    assert wrong.status_code == 403
    assert set(wrong.json()["error"]) == {"message", "type", "param", "code"}


def test_health_needs_no_key(keyed_server: str) -> None:
    assert httpx.get(f"{keyed_server}/healthz").status_code == 200


def test_plantain_serve_starts_and_becomes_ready(data_dir: Path, hub_cache: Path) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    env = {**os.environ, "PLANTAIN_DATA_DIR": str(data_dir), "PLANTAIN_HUB_CACHE": str(hub_cache)}
    command = [sys.executable, "-m", "plantain", "serve", "--engine", "tiny", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.ConnectError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        body = {"model": "tiny", "input": {"prompt": "a red bicycle", "resolution": "512"}}
        task = httpx.post(f"http://127.0.0.1:{port}/v1/tasks", json=body, timeout=30).json()
        page = httpx.get(f"http://127.0.0.1:{port}/", follow_redirects=True)  # the URL it prints
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert f"serving on http://127.0.0.1:{port}" in stderr
    assert f"open http://127.0.0.1:{port}/ in a browser" in stderr
    assert page.status_code == 200 and page.url.path == "/playground" and "<title>" in page.text
    # Plantain's own INFO lines reach the operator, not only uvicorn's access log.
    assert "plantain.server.app: [- -] engines ready: tiny" in stderr  # a line of no task
    task_id = task["id"]
    queued = rf"plantain\.scheduler\.frontdoor: \[{task_id} (req_\w+)\] task {task_id} queued for request \1"
    assert re.search(queued, stderr)


def test_serve_refuses_a_network_address_without_keys(data_dir: Path) -> None:
    from click.testing import CliRunner

    from plantain.cli.main import cli

    result = CliRunner().invoke(
        cli, ["--data-dir", str(data_dir), "serve", "-e", "tiny", "--host", "0.0.0.0"]
    )
    assert result.exit_code == 1
    assert "refusing to serve 0.0.0.0 without API keys: set PLANTAIN_API_KEYS" in result.stderr
    unknown = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "serve", "-e", "nope"])
    assert unknown.exit_code == 1 and "engine 'nope' is not known" in unknown.stderr


def test_result_files_are_fetched_by_url_alone(keyed_server: str) -> None:
    # The unguessable, expiring id is the key: an unknown one is a 404, not a 401.
    response = httpx.get(f"{keyed_server}/v1/files/not-a-real-id")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(("path", "headers"), [("/healthz", {}), ("/readyz", {}), ("/metrics", KEY)])
def test_head_answers_as_get_does_without_the_body(
    keyed_server: str, path: str, headers: dict[str, str]
) -> None:
    # Load balancers, uptime checkers and `curl -I` probe with HEAD.
    wait_ready(keyed_server)
    head = httpx.head(f"{keyed_server}{path}", headers=headers)
    get = httpx.get(f"{keyed_server}{path}", headers=headers)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) > 0


def test_head_of_a_result_file_gives_its_type_and_length(keyed_server: str) -> None:
    wait_ready(keyed_server)
    body = {"model": "tiny", "input": {"prompt": "a lamp", "resolution": "512"}}
    task = httpx.post(
        f"{keyed_server}/v1/tasks", json=body, headers={**KEY, "Prefer": "wait=60"}, timeout=90
    ).json()
    url = task["output"]["images"][0]["url"]
    head, get = httpx.head(url), httpx.get(url)
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "image/png"
    assert int(head.headers["content-length"]) == len(get.content)


def test_a_full_queue_is_a_429_with_retry_after_in_each_dialect(
    server_settings: Callable[..., Settings],
) -> None:
    import openai
    from google import genai
    from google.genai import errors, types

    with LiveServer(create_app(server_settings(max_queued_tasks=1))) as server:
        assert wait_ready(server.url).status_code == 200
        oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0, timeout=120)
        with ThreadPoolExecutor(2) as pool:
            running = pool.submit(oai.images.generate, prompt="long", size="2048x2048")
            time.sleep(1.0)  # it runs: the queue is empty again
            queued = pool.submit(oai.images.generate, prompt="waits", size="512x512")
            time.sleep(1.0)  # it waits: the queue is full
            with pytest.raises(openai.RateLimitError) as refused:
                oai.images.generate(prompt="one too many", size="512x512")
            assert refused.value.code == "queue_full"
            assert int(refused.value.response.headers["retry-after"]) >= 1
            gemini = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server.url))
            with pytest.raises(errors.ClientError) as gemini_refused:
                gemini.models.generate_content(model="gemini-2.5-flash-image", contents="one too many")
            assert (gemini_refused.value.code, gemini_refused.value.status) == (429, "RESOURCE_EXHAUSTED")
            assert running.result().data and queued.result().data  # both still finish
