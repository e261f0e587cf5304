"""Routes on a live server: a model served by the next engine when one is unavailable, fails,
is down or rate limits, with the engine that served reported and each engine's record kept.

The remote is another Plantain server (tiny engine) reached through the Gemini provider, behind
:class:`~tests.providers.flaky.FlakyRemote` where it must misbehave; the local engine that is
"unavailable" is flux2-klein-4b, whose weights are not here.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from tests.providers.flaky import FlakyRemote

from plantain.provenance.manifests import read_credentials
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, free_port, make_input

PRICE = 0.039  # the remote's price per image, in the server's currency


@pytest.fixture(scope="module")
def remote(server_settings: Callable[..., Settings]) -> Iterator[str]:
    """Another Plantain server: a faithful Gemini API."""
    with LiveServer(create_app(server_settings())) as live:
        live.wait_ready()
        yield live.url


def provider(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "gemini",
        "model": "gemini-2.5-flash-image",
        "base_url": url,
        "api_key": "remote-key",
        "price_per_image": PRICE,
        "retries": 2,
        "backoff_seconds": 0.0,
        **extra,
    }


def serve(
    server_settings: Callable[..., Settings], route: list[str], **providers: dict[str, Any]
) -> LiveServer:
    settings = server_settings(
        providers=providers, routes={"banana": route}, models={"gemini-2.5-flash-image": "banana"}
    )
    return LiveServer(create_app(settings))


def submit(base: str, fields: dict[str, Any]) -> dict[str, Any]:
    body = {"model": "banana", "input": {k: v for k, v in fields.items() if k != "model"}}
    answer = httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    assert answer.status_code == 201, answer.text
    task: dict[str, Any] = answer.json()
    return task


def engines(base: str) -> dict[str, dict[str, Any]]:
    return {entry["engine"]: entry for entry in httpx.get(f"{base}/v1/usage").json()["engines"]}


def test_a_local_engine_unavailable_hands_over_to_the_remote_which_is_named_and_priced(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with (
        FlakyRemote(remote) as relay,
        serve(server_settings, ["flux2-klein-4b", "cloud"], cloud=provider(relay.url)) as live,
    ):
        task = submit(live.url, {"prompt": "a lighthouse", "model": "banana", "num_images": 2, "seed": 5})
        assert task["status"] == "succeeded"
        assert task["usage"]["served_by"] == "cloud"
        assert task["usage"]["cost"]["amount"] == pytest.approx(2 * PRICE)
        stats = engines(live.url)
    assert stats["flux2-klein-4b"]["failed"] == 1 and stats["flux2-klein-4b"]["succeeded"] == 0
    assert stats["cloud"]["succeeded"] == 1 and stats["cloud"]["images"] == 2
    assert stats["cloud"]["cost"]["amount"] == pytest.approx(2 * PRICE)
    assert stats["cloud"]["success_rate"] == 1.0 and stats["cloud"]["p50_seconds"] > 0
    assert len(relay.posts()) == 2  # Gemini makes one image a call


def test_the_images_are_the_remotes_bytes_with_its_credentials_and_no_mark_of_ours(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with FlakyRemote(remote) as relay, serve(server_settings, ["cloud"], cloud=provider(relay.url)) as live:
        task = submit(live.url, {"prompt": "a red kite", "model": "banana", "seed": 11})
        output = task["output"]["images"][0]
        ours = httpx.get(output["url"]).content
    sent = relay.posts()[0].body
    parts = httpx.Response(200, content=sent).json()["candidates"][0]["content"]["parts"]
    theirs = base64.b64decode(next(part["inlineData"]["data"] for part in parts if "inlineData" in part))
    assert ours == theirs  # handed out as the provider sent it: its manifest intact
    assert read_credentials(ours).state != "absent"
    assert output["provenance"]["provider"] == "cloud"
    assert output["provenance"]["watermark"] is False
    assert output["provenance"]["content_credentials"] is True


def test_a_remote_that_fails_its_first_calls_is_retried_and_serves(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with (
        FlakyRemote(remote, fail=2, status=503) as relay,
        serve(server_settings, ["cloud", "tiny"], cloud=provider(relay.url, retries=2)) as live,
    ):
        task = submit(live.url, {"prompt": "a harbour", "model": "banana"})
        assert task["usage"]["served_by"] == "cloud"
        stats = engines(live.url)
    assert [seen.status for seen in relay.posts()] == [503, 503, 200]
    assert "tiny" not in stats and stats["cloud"]["succeeded"] == 1


def test_a_remote_that_keeps_failing_hands_over_to_the_next_engine(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with (
        FlakyRemote(remote, fail=10, status=500) as relay,
        serve(server_settings, ["cloud", "tiny"], cloud=provider(relay.url, retries=1)) as live,
    ):
        answer = httpx.post(
            f"{live.url}/v1beta/models/gemini-2.5-flash-image:generateContent",
            json={"contents": [{"parts": [{"text": "a harbour at dusk"}]}]},
            timeout=120,
        )
        assert answer.status_code == 200
        assert answer.headers["x-plantain-served-by"] == "tiny"
        stats = engines(live.url)
    assert len(relay.posts()) == 2  # the first call and its one retry
    assert stats["cloud"]["failed"] == 1 and stats["tiny"]["succeeded"] == 1


def test_a_remote_that_is_down_hands_over_to_the_next_engine(
    server_settings: Callable[..., Settings],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with serve(server_settings, ["cloud", "tiny"], cloud=provider(down, retries=1)) as live:
        task = submit(live.url, {"prompt": "a quiet street", "model": "banana"})
        assert task["usage"]["served_by"] == "tiny"
        assert engines(live.url)["cloud"]["failed"] == 1


def test_a_429_is_retried_after_its_retry_after(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with (
        FlakyRemote(remote, fail=1, status=429, retry_after="1") as relay,
        serve(server_settings, ["cloud", "tiny"], cloud=provider(relay.url, retries=1)) as live,
    ):
        task = submit(live.url, {"prompt": "a market", "model": "banana"})
        assert task["usage"]["served_by"] == "cloud"
    first, second = relay.posts()
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95  # it waited the Retry-After, not its own (zero) backoff


def test_when_every_engine_fails_the_task_fails_naming_each(
    server_settings: Callable[..., Settings],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with serve(server_settings, ["flux2-klein-4b", "cloud"], cloud=provider(down, retries=0)) as live:
        answer = httpx.post(
            f"{live.url}/v1/tasks",
            json={"model": "banana", "input": {"prompt": "x"}},
            headers={"Prefer": "wait=60"},
            timeout=120,
        )
        task = answer.json()
    assert task["status"] == "failed"
    assert task["error"]["code"] == "route_failed"
    assert "flux2-klein-4b failed" in task["error"]["message"] and "cloud failed" in task["error"]["message"]


def test_metrics_show_each_engines_tries_and_latency(
    server_settings: Callable[..., Settings],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with serve(server_settings, ["cloud", "tiny"], cloud=provider(down, retries=0)) as live:
        submit(live.url, {"prompt": "a pier", "model": "banana"})
        text = httpx.get(f"{live.url}/metrics").text
    assert 'plantain_engine_attempts_total{engine="cloud",outcome="failed"} 1.0' in text
    assert 'plantain_engine_attempts_total{engine="tiny",outcome="succeeded"} 1.0' in text
    assert 'plantain_engine_latency_seconds_count{engine="tiny"} 1.0' in text
    assert 'plantain_engine_latency_quantile_seconds{engine="tiny",quantile="0.95"}' in text


def test_a_route_naming_an_unknown_engine_is_refused_at_start(
    server_settings: Callable[..., Settings],
) -> None:
    from plantain.engines.registry import EngineRegistry
    from plantain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"routes.*'nope'.*not engines or providers"):
        EngineRegistry(server_settings(routes={"banana": ["tiny", "nope"]}))
    with pytest.raises(ConfigurationError, match=r"routes.*'tiny' more than once"):
        EngineRegistry(server_settings(routes={"banana": ["tiny", "tiny"]}))


def test_a_requests_retry_count_replaces_the_providers_retries(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with (
        FlakyRemote(remote, fail=1, status=503) as relay,
        serve(server_settings, ["cloud", "tiny"], cloud=provider(relay.url, retries=3)) as live,
    ):
        task = submit(live.url, {"prompt": "a buoy", "retry_count": 0})
        assert task["usage"]["served_by"] == "tiny"  # no retry: the 503 handed over at once
        assert "retry_count" not in task["input"].get("ignored", [])
        assert len(relay.posts()) == 1
        again = submit(live.url, {"prompt": "a buoy", "retry_count": 1})
        assert again["usage"]["served_by"] == "cloud"


def test_openai_and_chat_answers_carry_the_providers_cost_as_gateways_do(
    server_settings: Callable[..., Settings], remote: str
) -> None:
    with serve(server_settings, ["cloud"], cloud=provider(remote)) as live:
        images = httpx.post(
            f"{live.url}/v1/images/generations",
            json={"model": "gemini-2.5-flash-image", "prompt": "a dune", "n": 2},
            timeout=120,
        )
        chat = httpx.post(
            f"{live.url}/v1/chat/completions",
            json={"model": "gemini-2.5-flash-image", "messages": [{"role": "user", "content": "a dune"}]},
            timeout=120,
        )
    assert images.status_code == 200 and chat.status_code == 200, (images.text, chat.text)
    assert images.json()["usage"]["cost"] == pytest.approx(2 * PRICE)  # Lumenfall's usage.cost
    assert chat.json()["usage"]["cost"] == pytest.approx(PRICE)  # OpenRouter's
    assert images.headers["x-plantain-served-by"] == chat.headers["x-plantain-served-by"] == "cloud"


def test_a_member_that_cannot_make_the_request_is_skipped_and_counted_refused(
    server_settings: Callable[..., Settings],
) -> None:
    image = "data:image/png;base64," + base64.b64encode(make_input(64, 64).data).decode()
    with serve(server_settings, ["flux2-klein-4b", "tiny"]) as live:  # klein takes 4 inputs, tiny 14
        task = submit(live.url, {"prompt": "fuse them", "images": [image] * 5, "resolution": "512"})
        assert task["usage"]["served_by"] == "tiny"
        stats = engines(live.url)
    assert stats["flux2-klein-4b"]["refused"] == 1 and stats["flux2-klein-4b"]["failed"] == 0


def test_model_listings_say_a_providers_images_carry_none_of_our_marks(
    server_settings: Callable[..., Settings],
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with serve(server_settings, ["tiny", "cloud"], cloud=provider(down)) as live:
        cloud = httpx.get(f"{live.url}/v1/models/cloud").json()["provenance"]
        banana = httpx.get(f"{live.url}/v1/models/banana").json()["provenance"]
        tiny = httpx.get(f"{live.url}/v1beta/models/tiny").json()["provenance"]
        listed = httpx.get(f"{live.url}/v1beta/models/cloud").json()["provenance"]
    assert cloud["watermark"]["applied"] is False and cloud["content_credentials"]["applied"] is False
    assert cloud["provider"] == "cloud" and listed == cloud
    assert banana["providers"] == ["cloud"] and banana["watermark"]["applied"] is True
    assert tiny["watermark"]["applied"] is True and "provider" not in tiny
