"""Structured logs: a task's lines carry its id, on whichever thread they are logged; the text and
JSON formats show the ids; ``log_format`` picks the format."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from tests.callers import serving

from plantain import logs
from plantain.errors import EngineRunError
from plantain.server.app import log_to_stderr
from plantain.settings import Settings
from plantain.testing import WebhookReceiver

BODY = {"model": "tiny", "input": {"prompt": "a kite", "resolution": "512", "steps": 2}}


@contextmanager
def captured(log_format: logs.LogFormat = "json") -> Iterator[io.StringIO]:
    """What Plantain's loggers write at INFO, in ``log_format``, while the block runs."""
    stream = io.StringIO()
    handler = logs.handler(log_format, stream)
    plantain_logger = logging.getLogger("plantain")
    level = plantain_logger.level
    plantain_logger.addHandler(handler)
    plantain_logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        plantain_logger.removeHandler(handler)
        plantain_logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def of_task(stream: io.StringIO, task_id: str) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["task_id"] == task_id]


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def submit(base: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/v1/tasks", json={**BODY, **extra}, headers={"Prefer": "wait=60"}, timeout=120
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def test_a_tasks_lines_carry_its_id_from_queued_to_its_webhook(
    server_settings: Callable[..., Settings],
) -> None:
    settings = server_settings(allowed_hosts=["127.0.0.1"])
    with (
        WebhookReceiver(respond=lambda n: 410) as receiver,
        serving(settings) as (base, scheduler),
        captured() as out,
    ):
        task = submit(base, webhook=receiver.url)
        wait_for(lambda: scheduler.store.outbox.pending_count() == 0)
    own = of_task(out, task["id"])
    queued = [line for line in own if "queued for request" in line["message"]]
    assert len(queued) == 1 and queued[0]["request_id"].startswith("req_")
    assert queued[0]["request_id"] in queued[0]["message"]  # the same request the line names
    webhook = [line for line in own if line["logger"] == "plantain.webhooks.delivery"]
    assert webhook and "410" in webhook[0]["message"]  # logged on a delivery thread


def test_a_failed_tasks_lines_carry_its_id_on_the_worker_and_post_processing(
    server_settings: Callable[..., Settings],
) -> None:
    with serving(server_settings()) as (base, scheduler), captured() as out:
        engine = scheduler.registry.get("tiny")
        engine.run = _raise(EngineRunError("the device fell over"))  # on the worker thread
        on_worker = submit(base)
        del engine.run
        scheduler.finishing.screen = _raise(RuntimeError("a bug in screening"))  # on post-processing
        on_post = submit(base)
    assert on_worker["status"] == on_post["status"] == "failed"
    worker_lines = of_task(out, on_worker["id"])
    assert any("failed: the device fell over" in line["message"] for line in worker_lines)
    post_lines = of_task(out, on_post["id"])
    unexpected = [line for line in post_lines if "failed unexpectedly" in line["message"]]
    assert unexpected and "RuntimeError: a bug in screening" in unexpected[0]["exc_info"]


def test_the_text_format_shows_the_ids() -> None:
    with captured("text") as out:
        with logs.task_context(task_id="task_a", request_id="req_b"):
            logging.getLogger("plantain.scheduler").info("inside")
        logging.getLogger("plantain.scheduler").info("outside")
    assert out.getvalue().splitlines() == [
        "INFO:     plantain.scheduler: [task_a req_b] inside",
        "INFO:     plantain.scheduler: [- -] outside",
    ]


def test_the_json_format_is_one_object_a_line() -> None:
    with captured("json") as out:
        with logs.task_context(request_id="req_b"), logs.task_context(task_id="task_a"):
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("plantain.x").exception("went %s", "wrong")
        logging.getLogger("plantain.x").warning("plain")
    first, second = lines(out)
    assert first["task_id"] == "task_a" and first["request_id"] == "req_b"  # nested contexts add up
    assert (first["level"], first["logger"], first["message"]) == ("ERROR", "plantain.x", "went wrong")
    assert "ValueError: bad" in first["exc_info"] and first["time"].endswith("+00:00")
    assert second["task_id"] is None and second["request_id"] is None and "exc_info" not in second


def test_a_thread_gets_the_context_only_where_it_is_set() -> None:
    seen: list[str | None] = []
    with logs.task_context(task_id="task_a"):
        thread = threading.Thread(target=lambda: seen.append(logs.current_task_id()))
        thread.start()
        thread.join()
    assert seen == [None]  # why the post-processing stage and the deliverer set it themselves
    assert logs.current_task_id() is None


def test_log_format_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAIN_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    assert Settings.model_fields["log_format"].default == "text"


def test_an_unknown_log_format_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="log_format"):
        Settings(log_format="xml")  # type: ignore[arg-type]


def test_serve_logs_in_the_configured_format(settings: Settings) -> None:
    plantain_logger = logging.getLogger("plantain")
    level, before = plantain_logger.level, list(plantain_logger.handlers)
    plantain_logger.handlers.clear()  # as in a fresh `plantain serve` process
    try:
        log_to_stderr(settings.model_copy(update={"log_format": "json"}))
        assert isinstance(plantain_logger.handlers[0].formatter, logs.JsonFormatter)
    finally:
        plantain_logger.handlers[:] = before
        plantain_logger.setLevel(level)


def test_uvicorn_logs_json_too_when_asked() -> None:
    try:
        uvicorn.Config("plantain.server.app:app", log_config=logs.uvicorn_log_config("json"))
        access = logging.getLogger("uvicorn.access").handlers
        assert isinstance(access[0].formatter, logs.JsonFormatter)
    finally:
        uvicorn.Config("plantain.server.app:app")  # uvicorn's own lines again, for the tests after


def _raise(error: Exception) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    return fail
