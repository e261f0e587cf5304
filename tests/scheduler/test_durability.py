"""Kill -9 a real `plantain serve` mid-run, start it again on the same data directory: nothing
is lost and nothing completes twice. SIGTERM drains with the port open, then exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.callers import envelope

from plantain.engines import tiny
from plantain.settings import Settings
from plantain.testing import WebhookReceiver, free_port


@contextmanager
def serving(data_dir: Path, tiny_dir: Path, port: int, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PLANTAIN_DATA_DIR": str(data_dir),
        "PLANTAIN_WEIGHTS": json.dumps({"tiny": str(tiny_dir)}),
        **{f"PLANTAIN_{name.upper()}": value for name, value in settings.items()},
    }
    command = [sys.executable, "-m", "plantain.cli.main", "serve", "--engine", "tiny", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "the server exited during start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:  # still draining a long run: a test failed mid-way
                process.kill()
                process.wait(60)


def submit(base: str, prompt: str, hook: dict[str, Any] | None = None, **input_: Any) -> str:
    body = {"model": "tiny", "input": {"prompt": prompt, "resolution": "512", **input_}, **(hook or {})}
    response = httpx.post(f"{base}/v1/tasks", json=body, timeout=60)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def task(base: str, task_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base}/v1/tasks/{task_id}").json())


def event_types(base: str, task_id: str) -> list[str]:
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", timeout=120) as response:
        return [json.loads(line[6:])["type"] for line in response.iter_lines() if line.startswith("data: ")]


def test_a_sigkill_mid_run_loses_nothing_and_completes_nothing_twice(tmp_path: Path, data_dir: Path) -> None:
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    allow = {"allowed_hosts": '["127.0.0.1"]'}
    with WebhookReceiver() as receiver:
        _kill_mid_run_then_restart(base, tmp_path, tiny_dir, port, allow, receiver)


def _kill_mid_run_then_restart(
    base: str, tmp_path: Path, tiny_dir: Path, port: int, allow: dict[str, str], receiver: WebhookReceiver
) -> None:
    with serving(tmp_path, tiny_dir, port, **allow) as process:
        done = submit(base, "finished before the kill", steps=2)
        assert event_types(base, done)[-1] == "completed"
        hook = {"webhook": receiver.url, "webhook_events_filter": ["completed"]}
        running = submit(base, "running at the kill", hook, steps=60, resolution="1K", seed=5)
        queued = [submit(base, f"queued {n}", steps=2) for n in range(3)]
        cancelled = submit(base, "cancelled while queued", steps=2)
        assert httpx.post(f"{base}/v1/tasks/{cancelled}/cancel").json()["status"] == "cancelled"
        wait_until_running(base, running)
        time.sleep(0.5)  # some steps in
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    with serving(tmp_path, tiny_dir, port, **allow):
        before = task(base, done)
        assert before["status"] == "succeeded"
        assert httpx.get(before["output"]["images"][0]["url"]).status_code == 200  # still served
        for task_id in [running, *queued]:
            assert event_types(base, task_id).count("completed") == 1
            assert task(base, task_id)["status"] == "succeeded"
        rerun = task(base, running)
        assert rerun["attempts"] == 2
        assert rerun["output"]["images"][0]["seed"] == 5
        assert event_types(base, done).count("completed") == 1
        story = event_types(base, running)
        assert (story.count("queued"), story.count("started")) == (2, 2)  # queued again at the restart
        assert task(base, cancelled)["status"] == "cancelled"
        assert event_types(base, cancelled) == ["queued", "cancelled"]
        seen = receiver.wait_for(lambda got: any(d.json()["data"]["id"] == running for d in got))
        assert [d.json()["data"]["status"] for d in seen] == ["succeeded"]


def test_sigterm_gives_the_running_task_its_grace_then_queues_it_for_the_next_start(
    tmp_path: Path, data_dir: Path
) -> None:
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(tmp_path, tiny_dir, port, drain_seconds="1") as process:
        long_run = submit(base, "too long for the grace", steps=200, resolution="2K")
        wait_until_running(base, long_run)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert time.monotonic() - stopped_at < 30  # the grace, then the next step: not 200 steps

    with serving(tmp_path, tiny_dir, port):
        deadline = time.monotonic() + 60
        while (rerun := task(base, long_run))["status"] != "running":  # the next start runs it again
            assert time.monotonic() < deadline, rerun
            time.sleep(0.05)
        assert rerun["attempts"] == 2
        httpx.post(f"{base}/v1/tasks/{long_run}/cancel")  # 200 slow steps need not finish here
        story = event_types(base, long_run)
        assert (story.count("queued"), story.count("started")) == (2, 2)  # queued again by the drain
        assert story[-1] == "cancelled" and "failed" not in story


def wait_until_running(base: str, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while task(base, task_id)["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def wait_until_draining(base: str) -> httpx.Response:
    """Readiness once the server has handled the signal (it arrives asynchronously)."""
    deadline = time.monotonic() + 10
    while (ready := httpx.get(f"{base}/readyz")).status_code == 200:
        assert time.monotonic() < deadline, "the signal was not handled"
        time.sleep(0.02)
    return ready


# Each door's submission while the server drains: (path, body) by dialect.
SUBMISSIONS = {
    "tasks": ("/v1/tasks", {"model": "tiny", "input": {"prompt": "too late"}}),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash-image:generateContent",
        {"contents": [{"parts": [{"text": "too late"}]}]},
    ),
    "openai": ("/v1/images/generations", {"prompt": "too late"}),
}


@pytest.mark.slow
def test_sigterm_drains_with_the_port_open_until_the_running_task_ends_then_exits_0(
    tmp_path: Path, data_dir: Path
) -> None:
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(tmp_path, tiny_dir, port, drain_seconds="300") as process:
        made = submit(base, "made before the signal", steps=2)
        assert event_types(base, made)[-1] == "completed"
        file_url = task(base, made)["output"]["images"][0]["url"]
        running = submit(base, "finishes during the drain", steps=40, resolution="1K")
        wait_until_running(base, running)
        process.send_signal(signal.SIGTERM)

        ready = wait_until_draining(base)
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        for dialect, (path, body) in SUBMISSIONS.items():
            response = httpx.post(f"{base}{path}", json=body, timeout=30)
            refusal = envelope(dialect, response)
            assert response.status_code == refusal.status == 503, dialect
            assert refusal.code == "shutting_down", dialect
            assert "the server is shutting down" in refusal.message, dialect
            assert response.headers["retry-after"] == "300", dialect
        assert httpx.get(file_url).status_code == 200  # results can still be fetched
        assert task(base, running)["status"] == "running"
        assert event_types(base, running)[-1] == "completed"  # the drain lets it finish
        assert process.wait(60) == 0  # then ends: not the whole 300 s


@pytest.mark.slow
def test_a_second_sigterm_stops_the_running_task_and_exits_at_once(tmp_path: Path, data_dir: Path) -> None:
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(tmp_path, tiny_dir, port, drain_seconds="300") as process:
        long_run = submit(base, "stopped by the second signal", steps=200, resolution="2K")
        wait_until_running(base, long_run)
        process.send_signal(signal.SIGTERM)
        assert wait_until_draining(base).json() == {"status": "draining"}  # the first is handled
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0  # neither the 300 s drain nor the 200 steps

    with serving(tmp_path, tiny_dir, port):
        assert task(base, long_run)["status"] in {"queued", "running"}  # it runs again: not lost
        httpx.post(f"{base}/v1/tasks/{long_run}/cancel")  # 200 slow steps need not finish here
        assert event_types(base, long_run)[-1] == "cancelled"
