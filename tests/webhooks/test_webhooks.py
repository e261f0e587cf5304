"""Webhooks as a user's receiver meets them: real deliveries from a live server to a real local
receiver, verified with the ``standardwebhooks`` package from PyPI."""

from __future__ import annotations

import asyncio
import json
import random
import stat
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from tests.callers import serving

from plantain.settings import Settings
from plantain.testing import Delivery, WebhookReceiver, free_port
from plantain.webhooks.delivery import RetryPolicy
from plantain.webhooks.signing import generate_secret

SECRET = generate_secret()
FAST_RETRIES = {"webhook_retry_seconds": 0.05, "webhook_retry_max_seconds": 0.2}


@pytest.fixture
def webhook_settings(server_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**fields: Any) -> Settings:
        base = {"allowed_hosts": ["127.0.0.1"], "webhook_secret": SECRET, **FAST_RETRIES}
        return server_settings(**{**base, **fields})

    return make


def submit(base: str, receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "tiny",
        "input": {"prompt": "a kite", "resolution": "512", "steps": 2},
        "webhook": receiver.url,
        **extra,
    }
    response = httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def verified(delivery: Delivery, secret: str = SECRET) -> dict[str, Any]:
    payload: dict[str, Any] = standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
    return payload


def has_type(kind: str) -> Callable[[list[Delivery]], bool]:
    return lambda seen: any(d.status < 300 and d.json()["type"] == kind for d in seen)


def test_every_event_arrives_signed_in_order_and_links_to_the_image(
    webhook_settings: Callable[..., Settings],
) -> None:
    with WebhookReceiver() as receiver, serving(webhook_settings()) as (base, _):
        task = submit(base, receiver)
        seen = receiver.wait_for(has_type("task.completed"))
        payloads = [verified(delivery) for delivery in seen]

        types = [payload["type"] for payload in payloads]
        assert types[:2] == ["task.queued", "task.started"] and types[-1] == "task.completed"
        assert set(types[2:-1]) == {"task.progress"}
        seqs = [payload["data"]["event"]["seq"] for payload in payloads]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        ids = [delivery.headers["webhook-id"] for delivery in seen]
        assert ids == [f"msg_{task['id']}_{seq}" for seq in seqs]  # stable: derived from the event

        completed = payloads[-1]["data"]
        assert completed["id"] == task["id"] and completed["status"] == "succeeded"
        image_url = completed["output"]["images"][0]["url"]
        assert image_url.startswith(base)
        assert httpx.get(image_url).content == httpx.get(task["output"]["images"][0]["url"]).content


def test_the_events_filter_picks_what_is_sent(webhook_settings: Callable[..., Settings]) -> None:
    with WebhookReceiver() as receiver, serving(webhook_settings()) as (base, scheduler):
        task = submit(base, receiver, webhook_events_filter=["completed"])
        seen = receiver.wait_for(has_type("task.completed"))
        _settle(scheduler)
        assert [verified(d)["type"] for d in receiver.deliveries] == ["task.completed"]
        assert [m.event_type for m in scheduler.store.outbox.messages(task["id"])] == ["completed"]
        assert len(seen) == 1


def test_a_receiver_failing_its_first_deliveries_gets_the_same_message_again(
    webhook_settings: Callable[..., Settings],
) -> None:
    failing = WebhookReceiver(respond=lambda n: 503 if n <= 3 else 204)
    with failing as receiver, serving(webhook_settings()) as (base, scheduler):
        task = submit(base, receiver, webhook_events_filter=["completed"])
        seen = receiver.wait_for(has_type("task.completed"))
        assert [d.status for d in seen] == [503, 503, 503, 204]
        assert len({d.headers["webhook-id"] for d in seen}) == 1  # one message, four attempts
        assert all(verified(d)["data"]["id"] == task["id"] for d in seen)  # each attempt re-signed
        _settle(scheduler)  # the receiver answered the 4th attempt; the outbox records it just after
        [message] = scheduler.store.outbox.messages(task["id"])
        assert (message.status, message.attempts) == ("delivered", 4)


def test_attempts_are_bounded(webhook_settings: Callable[..., Settings]) -> None:
    with (
        WebhookReceiver(respond=lambda n: 500) as receiver,
        serving(webhook_settings(webhook_max_attempts=3)) as (base, scheduler),
    ):
        task = submit(base, receiver, webhook_events_filter=["completed"])
        _settle(scheduler)
        [message] = scheduler.store.outbox.messages(task["id"])
        assert (message.status, message.attempts) == ("failed", 3)
        assert "HTTP 500" in (message.last_error or "")
        assert len(receiver.deliveries) == 3


def test_410_gone_stops_the_webhooks_of_that_task(webhook_settings: Callable[..., Settings]) -> None:
    with WebhookReceiver(respond=lambda n: 410) as receiver, serving(webhook_settings()) as (base, scheduler):
        task = submit(base, receiver)
        _settle(scheduler)
        messages = scheduler.store.outbox.messages(task["id"])
        assert {m.status for m in messages} == {"gone"}  # later events were not even queued
        assert [verified(d)["type"] for d in receiver.deliveries] == ["task.queued"]  # nothing after


def test_a_receiver_down_across_a_restart_gets_its_webhook_after_it(
    server_settings: Callable[..., Settings],
) -> None:
    """No configured secret: the generated one lives in the data directory, so the restarted server
    signs with the same secret the receiver was given."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    settings = server_settings(allowed_hosts=["127.0.0.1"], **FAST_RETRIES)
    with serving(settings) as (base, scheduler):
        body = {"input": {"prompt": "a kite", "resolution": "512", "steps": 1}, "webhook": url}
        response = httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
        task_id = response.json()["id"]
        _wait(lambda: all(m.attempts >= 2 for m in scheduler.store.outbox.messages(task_id)))
    secret_file = settings.data_dir / "webhook_secret"
    secret = secret_file.read_text().strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600

    with WebhookReceiver(port=port) as receiver, serving(settings) as (_, scheduler):
        seen = receiver.wait_for(has_type("task.completed"))
        _settle(scheduler)
    assert [verified(d, secret)["type"] for d in seen][-1] == "task.completed"
    ids = [d.headers["webhook-id"] for d in receiver.deliveries]
    assert len(ids) == len(set(ids))  # after the restart, each message arrived once


def test_retry_delays_double_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(first_delay=5, max_delay=60, max_attempts=12)
    rng = random.Random(7)
    for failures, full in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (11, 60)]:
        delays = [policy.delay(failures, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not one fixed value


def test_an_invalid_secret_is_refused_at_start(tmp_path: Path) -> None:
    from plantain.errors import ConfigurationError
    from plantain.settings import load_settings

    with pytest.raises(ConfigurationError, match=r"PLANTAIN_WEBHOOK_SECRET\): the value is not allowed"):
        load_settings(data_dir=tmp_path, webhook_secret="whsec_not base64!")


CLIENTS = 50


async def submit_all(base: str, webhook: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def one(index: int) -> httpx.Response:
            body = {
                "model": "tiny",
                "input": {"prompt": f"a kite number {index}", "resolution": "512", "steps": 1, "seed": index},
                "webhook": webhook,
                "webhook_events_filter": ["completed"],
            }
            # Every fifth client sends its request twice at once with one Idempotency-Key.
            key = {"idempotency-key": f"client-{index}"}
            sends = 2 if index % 5 == 0 else 1
            responses = await asyncio.gather(
                *(client.post("/v1/tasks", json=body, headers=key) for _ in range(sends))
            )
            assert len({r.json()["id"] for r in responses}) == 1, "one key, one task"
            return responses[0]

        return await asyncio.gather(*(one(index) for index in range(CLIENTS)))


def test_fifty_concurrent_submissions_all_complete_once(server_settings: Callable[..., Settings]) -> None:
    secret = generate_secret()
    settings = server_settings(allowed_hosts=["127.0.0.1"], webhook_secret=secret)
    with WebhookReceiver() as receiver, serving(settings) as (base, _):
        responses = asyncio.run(submit_all(base, receiver.url))
        assert {r.status_code for r in responses} == {202}
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == CLIENTS

        seen = receiver.wait_for(
            lambda got: sum(has_type("task.completed")([d]) for d in got) >= CLIENTS, 300
        )
        completed = Counter(verified(d, secret)["data"]["id"] for d in seen)
        assert set(completed) == ids and set(completed.values()) == {1}

        listed = httpx.get(f"{base}/v1/tasks", params={"status": "succeeded", "limit": 100}).json()["data"]
        assert {task["id"] for task in listed} == ids
        assert {task["attempts"] for task in listed} == {1}
        seeds = sorted(task["output"]["images"][0]["seed"] for task in listed)
        assert seeds == list(range(CLIENTS))
        for task_id in ids:
            assert _event_types(base, task_id).count("completed") == 1


def _event_types(base: str, task_id: str) -> list[str]:
    types: list[Any] = []
    with httpx.stream("GET", f"{base}/v1/tasks/{task_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                types.append(json.loads(line.removeprefix("data: "))["type"])
    return types


def _settle(scheduler: Any, timeout: float = 30) -> None:
    """Wait until no webhook is pending (delivered, gone or given up)."""
    _wait(lambda: scheduler.store.outbox.pending_count() == 0, timeout)


def _wait(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_cli_prints_the_secret_the_server_signs_with(
    webhook_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from plantain.cli.main import cli

    printed = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "webhook-secret"])
    assert printed.exit_code == 0
    secret = printed.stdout.strip()
    assert secret.startswith("whsec_") and (tmp_path / "webhook_secret").read_text().strip() == secret
    again = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "webhook-secret"])
    assert again.stdout.strip() == secret  # kept, not generated anew

    settings = webhook_settings(data_dir=tmp_path, webhook_secret=None)
    with WebhookReceiver() as receiver, serving(settings) as (base, _):
        submit(base, receiver, webhook_events_filter=["completed"])
        [delivery] = receiver.wait_for(has_type("task.completed"))
        assert verified(delivery, secret)["type"] == "task.completed"
