"""The planner stage on a live server (tiny engine, tiny random-weight planner): the engine gets
the rewrite, every dialect carries the text and the revised prompt, a request can turn it off,
and a server without a planner refuses a request that asks for one, naming the caller's field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

GEMINI = "/v1beta/models/gemini-2.5-flash-image:generateContent"


@pytest.fixture(scope="module")
def planned(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(
        create_app(server_settings(planner="on", planner_model="tiny", planner_max_tokens=12))
    ) as live:
        yield live.wait_ready()


@pytest.fixture(scope="module")
def plain(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        yield live.wait_ready()


def task(base: str, **fields: Any) -> dict[str, Any]:
    body = {"model": "tiny", "input": {"prompt": "a red kite over the sea", "resolution": "512", **fields}}
    answer = httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_the_task_shows_the_rewrite_the_text_and_the_planners_time(planned: str) -> None:
    done = task(planned, seed=3)
    output = done["output"]
    assert done["status"] == "succeeded"
    assert output["revised_prompt"] and output["revised_prompt"] != "a red kite over the sea"  # the rewrite
    assert output["description"]  # the tiny planner writes printable noise, never nothing
    assert output["plan"]["model"] == "tiny" and output["plan"]["output_tokens"] > 0
    assert done["usage"]["planner_seconds"] > 0
    again = task(planned, seed=3)  # greedy decoding: the same request is planned the same way
    assert again["output"]["revised_prompt"] == output["revised_prompt"]


def test_a_request_can_turn_the_stage_off(planned: str) -> None:
    done = task(planned, rewrite=False)
    assert done["output"].get("revised_prompt") is None and done["usage"]["planner_seconds"] == 0


def test_gemini_answers_a_text_part_before_the_image_and_the_thought_when_asked(planned: str) -> None:
    body = {
        "contents": [{"parts": [{"text": "a red kite over the sea"}]}],
        "generationConfig": {
            "thinkingConfig": {"includeThoughts": True},
            "imageConfig": {"imageSize": "512"},
        },
    }
    parts = httpx.post(planned + GEMINI, json=body, timeout=120).json()["candidates"][0]["content"]["parts"]
    kinds = ["thought" if p.get("thought") else "text" if "text" in p else "image" for p in parts]
    assert kinds == ["thought", "text", "image"]
    off = {**body, "generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}
    parts = httpx.post(planned + GEMINI, json=off, timeout=120).json()["candidates"][0]["content"]["parts"]
    assert all("inlineData" in part for part in parts)  # thinking off: no planning, no text


def test_openai_and_chat_carry_the_revised_prompt_and_the_text(planned: str) -> None:
    images = httpx.post(
        f"{planned}/v1/images/generations",
        json={"model": "tiny", "prompt": "a kite", "size": "512x512"},
        timeout=120,
    ).json()
    assert isinstance(images["data"][0]["revised_prompt"], str) and images["data"][0]["revised_prompt"]
    chat = httpx.post(
        f"{planned}/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": "a kite"}],
            "image_config": {"image_size": "512"},
        },
        timeout=120,
    )
    assert chat.status_code == 200, chat.text
    assert isinstance(chat.json()["choices"][0]["message"]["content"], str)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/tasks", {"model": "tiny", "input": {"prompt": "x", "rewrite": True}}, "input.rewrite"),
        (
            "/v1/images/generations",
            {"model": "tiny", "prompt": "x", "rewrite_prompt": True},
            "rewrite_prompt",
        ),
    ],
)
def test_a_server_without_a_planner_refuses_a_request_that_asks_for_one(
    plain: str, path: str, body: dict[str, Any], field: str
) -> None:
    answer = httpx.post(plain + path, json=body, timeout=60)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert field in error["message"] and "planner" in error["message"]


def test_the_python_client_reads_the_text_and_the_rewrite(planned: str) -> None:
    from plantain.client import Client

    with Client(planned) as client:
        done = client.run("tiny", {"prompt": "a lighthouse at dusk", "resolution": "512"})
    assert done.output is not None and isinstance(done.output.revised_prompt, str)
    assert isinstance(done.output.description, str)
    assert done.usage is not None and done.usage.planner_seconds > 0 and done.usage.served_by == "tiny"
