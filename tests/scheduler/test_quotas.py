"""Per-key quotas (docs/usage.md, "Quotas"): requests per minute, concurrent tasks and images per
UTC day, counted in the store, refused with 429 quota_exceeded and Retry-After in each dialect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from plantain.errors import QuotaExceededError
from plantain.scheduler.quotas import Quotas
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.storage.tasks import NewTask, TaskStore
from plantain.testing import LiveServer
from plantain.types import ImageRequest, TaskError
from plantain.usage import key_id

MIDNIGHT = 20_000 * 86400.0  # a UTC midnight


class Clocked:
    """A task store on a clock the test moves, with the quotas of ``settings``."""

    def __init__(self, path: Path, database_url: str | None = None, **settings: Any) -> None:
        self.now = MIDNIGHT + 3600
        self.store = TaskStore(
            path, retention_seconds=3600, clock=lambda: self.now, database_url=database_url
        )
        self.quotas = Quotas(Settings(data_dir=path, **settings))

    def submit(self, key: str = "k1", images: int = 1) -> str:
        request = ImageRequest.create(prompt="a cube", engine="tiny", num_images=images)
        new = NewTask(request=request, model="tiny", engine="tiny", source="tasks", api_key_id=key)
        task, _ = self.store.create(new, self.quotas.admit(key, 1, images))
        return task.id


@pytest.fixture
def clocked(tmp_path: Path, new_database: Callable[[], str | None]) -> Iterator[Callable[..., Clocked]]:
    made: list[Clocked] = []

    def make(**settings: Any) -> Clocked:
        made.append(Clocked(tmp_path / str(len(made)), new_database(), **settings))
        return made[-1]

    yield make
    for each in made:
        each.store.close()


def test_requests_per_minute_counts_a_sliding_minute(clocked: Callable[..., Clocked]) -> None:
    quota = clocked(quota_requests_per_minute=2)
    quota.submit()
    quota.now += 20
    quota.submit()
    quota.now += 10
    with pytest.raises(
        QuotaExceededError, match=r"sent 2 requests in the last minute and may send 2"
    ) as refused:
        quota.submit()
    assert refused.value.retry_after == 30  # the first request leaves the minute in 30 s
    assert refused.value.status == 429 and refused.value.code == "quota_exceeded"
    quota.submit("k2")  # another key has its own minute
    quota.now += 31
    quota.submit()


def test_concurrent_tasks_free_up_as_tasks_end(clocked: Callable[..., Clocked]) -> None:
    quota = clocked(quota_concurrent_tasks=2)
    first = quota.submit()
    quota.submit()
    with pytest.raises(QuotaExceededError, match="has 2 tasks queued or running and may have 2") as refused:
        quota.submit()
    assert refused.value.retry_after == 1
    quota.store.runs.fail(first, TaskError(code="engine_failed", message="x", status=500))
    quota.submit()


def test_images_per_day_reset_at_utc_midnight_and_outlive_expiry(clocked: Callable[..., Clocked]) -> None:
    quota = clocked(quota_images_per_day=5, quota_requests_per_minute=100)
    quota.submit(images=4)
    with pytest.raises(QuotaExceededError, match=r"asked for 4 images today \(UTC\).*asks for 2") as refused:
        quota.submit(images=2)
    assert refused.value.retry_after == 86400 - 3600  # until the next 00:00 UTC
    quota.submit(images=1)
    quota.now += 3600 + 60  # its tasks expire (retention 3600 s): the day's count stays
    quota.store.runs.expire()
    with pytest.raises(QuotaExceededError):
        quota.submit(images=1)
    quota.now = MIDNIGHT + 86400
    quota.submit(images=5)


def test_a_key_quota_overrides_only_what_it_names(clocked: Callable[..., Clocked]) -> None:
    quota = clocked(
        quota_requests_per_minute=1,
        quota_images_per_day=1,
        key_quotas={"vip": {"requests_per_minute": 3, "images_per_day": None}},
    )
    for _ in range(3):
        quota.submit("vip", images=4)  # 3 a minute, images unlimited
    with pytest.raises(QuotaExceededError, match="API key vip sent 3"):
        quota.submit("vip")
    quota.submit("other")
    with pytest.raises(QuotaExceededError, match="API key other sent 1"):
        quota.submit("other")


def test_with_no_quota_nothing_is_counted_against_anyone(clocked: Callable[..., Clocked]) -> None:
    quota = clocked()
    assert quota.quotas.admit("k1") is None
    for _ in range(20):
        quota.submit(images=10)


KEYS = ["key-one", "key-two", "key-three"]


@pytest.fixture
def limited(server_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = server_settings(api_keys=KEYS, quota_requests_per_minute=2, quota_images_per_day=3)
    with LiveServer(create_app(settings)) as live:
        live.wait_ready()
        yield live.url


def native(url: str, key: str, **fields: Any) -> httpx.Response:
    body = {"model": "tiny", "input": {"prompt": "a cube", "resolution": "512", **fields}}
    return httpx.post(f"{url}/v1/tasks", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_each_dialect_refuses_over_quota_in_its_own_envelope(limited: str) -> None:
    key = KEYS[0]
    assert native(limited, key).status_code == 202
    gemini = httpx.post(
        f"{limited}/v1beta/models/tiny:generateContent",
        json={"contents": [{"parts": [{"text": "a cube"}]}]},
        headers={"x-goog-api-key": key},
        timeout=120,
    )
    assert gemini.status_code == 200
    # The third request of the minute, whichever dialect it comes in by.
    refused = native(limited, key)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert f"API key {key_id(key)} sent 2 requests in the last minute" in refused.json()["error"]["message"]
    gemini = httpx.post(
        f"{limited}/v1beta/models/tiny:generateContent",
        json={"contents": [{"parts": [{"text": "a cube"}]}]},
        headers={"x-goog-api-key": key},
    )
    assert gemini.status_code == 429 and gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    details = {detail["@type"].rsplit(".", 1)[1]: detail for detail in gemini.json()["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == f"{gemini.headers['retry-after']}s"
    assert details["QuotaFailure"]["violations"] == [
        {"quotaMetric": "plantain/requests_per_minute", "quotaId": "requests_per_minute", "quotaValue": "2"}
    ]
    client = openai.OpenAI(base_url=f"{limited}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as limited_error:
        client.images.generate(model="tiny", prompt="a cube")
    assert limited_error.value.code == "quota_exceeded"
    assert native(limited, KEYS[1]).status_code == 202  # other keys are not held back


def test_usage_shows_what_remains_and_a_replay_costs_nothing(limited: str) -> None:
    key = KEYS[2]
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "only-once"}
    body = {"model": "tiny", "input": {"prompt": "a cube", "resolution": "512", "num_images": 2}}
    for _ in range(3):  # the replays answer the first task and count nothing
        assert httpx.post(f"{limited}/v1/tasks", json=body, headers=headers, timeout=60).status_code in (
            201,
            202,
        )
    quota = httpx.get(f"{limited}/v1/usage", headers={"Authorization": f"Bearer {key}"}).json()["quota"]
    assert quota["requests_per_minute"] == {"limit": 2, "used": 1, "remaining": 1}
    assert quota["images_per_day"] == {"limit": 3, "used": 2, "remaining": 1}
    assert quota["concurrent_tasks"]["limit"] is None and quota["concurrent_tasks"]["remaining"] is None
    too_many = native(limited, key, num_images=2)
    assert (
        too_many.status_code == 429
        and "asked for 2 images today (UTC)" in too_many.json()["error"]["message"]
    )


def test_concurrent_submissions_never_pass_the_quota_together(
    server_settings: Callable[..., Settings],
) -> None:
    """Ten at once against a quota of three concurrent tasks: exactly three are queued."""
    settings = server_settings(api_keys=KEYS, quota_concurrent_tasks=3, batch_max_images=1)

    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"model": "tiny", "input": {"prompt": "a cube", "resolution": "1K", "steps": 40}}
            headers = {"Authorization": f"Bearer {KEYS[0]}"}
            answers = await asyncio.gather(
                *(client.post(f"{url}/v1/tasks", json=body, headers=headers) for _ in range(10))
            )
            for answer in answers:
                if answer.status_code == 202:
                    await client.post(f"{url}/v1/tasks/{answer.json()['id']}/cancel", headers=headers)
            return sorted(answer.status_code for answer in answers)

    with LiveServer(create_app(settings)) as live:
        live.wait_ready()
        assert asyncio.run(burst(live.url)) == [202] * 3 + [429] * 7


def test_a_quota_holds_across_two_front_doors_on_one_database(
    server_settings: Callable[..., Settings], postgres_url: str
) -> None:
    """Ten at once split across two front doors sharing PostgreSQL, against a quota of three
    concurrent tasks: exactly three are queued, whichever door took them."""
    settings = server_settings(
        api_keys=KEYS, quota_concurrent_tasks=3, database_url=postgres_url, serve_worker=False
    )

    async def burst(urls: list[str]) -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            body = {"model": "tiny", "input": {"prompt": "a cube", "resolution": "512"}}
            headers = {"Authorization": f"Bearer {KEYS[0]}"}
            answers = await asyncio.gather(
                *(client.post(f"{urls[n % 2]}/v1/tasks", json=body, headers=headers) for n in range(10))
            )
            return sorted(answer.status_code for answer in answers)

    with LiveServer(create_app(settings)) as first, LiveServer(create_app(settings)) as second:
        for live in (first, second):
            live.wait_ready()
            # FastAPI builds each route's dependencies on its first request; two apps of one
            # process (sharing the dialects' routers) doing that at once on two threads can race
            # (a pydantic warning, an error here). One refused request each builds them first.
            headers = {"Authorization": f"Bearer {KEYS[0]}"}
            assert httpx.post(f"{live.url}/v1/tasks", json={}, headers=headers).status_code == 400
        assert asyncio.run(burst([first.url, second.url])) == [202] * 3 + [429] * 7
