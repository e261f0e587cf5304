"""Which earlier image a conversational edit means, resolved by the planner on a live server: a
scripted planner model answers the resolution (the tiny one writes noise, so the dialect's rule
would always stand), and the engine must get the image it named, in Gemini and chat."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.planner.fakes import Scripted

from plantain.engines.base import EngineJob
from plantain.planner import prompts
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

RED, GREEN = (220, 20, 20), (20, 200, 40)
GEMINI = "/v1beta/models/gemini-2.5-flash-image:generateContent"


class Resolver:
    """What the scripted planner answers: :attr:`answer` to the resolution, a fixed prompt to
    anything else; and the resolution listings it was shown."""

    def __init__(self, settings: Settings) -> None:
        self.answer = "1"
        self.model = Scripted(settings, self._reply)

    def _reply(self, system: str, user: str) -> str:
        return self.answer if system == prompts.RESOLVE_SYSTEM else "a small car painted blue"

    @property
    def listings(self) -> list[str]:
        return [call.user for call in self.model.calls if call.system == prompts.RESOLVE_SYSTEM]


class Resolving:
    def __init__(self, base: str, model: Resolver, jobs: list[EngineJob]) -> None:
        self.base, self.model, self.jobs = base, model, jobs

    def last_inputs(self) -> list[tuple[int, int, int]]:
        return [image.convert("RGB").getpixel((0, 0)) for image in self.jobs[-1].images]  # type: ignore[misc]

    def last_task(self) -> dict[str, Any]:
        task: dict[str, Any] = httpx.get(f"{self.base}/v1/tasks?limit=1").json()["data"][0]
        return task


@pytest.fixture(scope="module")
def resolving(server_settings: Callable[..., Settings]) -> Iterator[Resolving]:
    settings = server_settings(planner="on", planner_model="tiny")
    app = create_app(settings)
    scheduler = app.state.scheduler
    model = Resolver(settings)
    scheduler.planner.model = model.model
    engine = scheduler.registry.get("tiny")
    jobs: list[EngineJob] = []
    lock, run = threading.Lock(), engine.run

    def recorded(batch: list[EngineJob], *args: Any, **kwargs: Any) -> Any:
        with lock:
            jobs.extend(batch)
        return run(batch, *args, **kwargs)

    engine.run = recorded
    with LiveServer(app) as live:
        yield Resolving(live.wait_ready(), model, jobs)


def png(colour: tuple[int, int, int]) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def gemini_body(request: str) -> dict[str, Any]:
    """A red car sent by the user, a green one answered, then the edit."""
    red, green = {"inlineData": {"mimeType": "image/png", "data": png(RED)}}, png(GREEN)
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "a red car"}, red]},
            {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": green}}]},
            {"role": "user", "parts": [{"text": request}]},
        ],
        "generationConfig": {"imageConfig": {"imageSize": "512"}},
    }


def test_the_planner_picks_the_earlier_image_the_edit_means(resolving: Resolving) -> None:
    resolving.model.answer = "1"  # the user's red car, not the green answer the rule would take
    answer = httpx.post(resolving.base + GEMINI, json=gemini_body("make the first one blue"), timeout=60)
    assert answer.status_code == 200, answer.text
    assert resolving.last_inputs() == [RED]
    listing = resolving.model.listings[-1]
    assert '1. user: "a red car" [image 1]' in listing and "2. model: [image 2]" in listing
    plan = resolving.last_task()["output"]["plan"]
    assert plan["edited"] == "contents[0].parts[1].inlineData"
    assert plan["input_tokens"] == 30  # the resolution's generation counts, beside the rewrite and answer


def test_the_rule_stands_when_the_planner_agrees_or_does_not_decide(resolving: Resolving) -> None:
    for answer in ("2", "I am not sure"):
        resolving.model.answer = answer
        response = httpx.post(resolving.base + GEMINI, json=gemini_body("now make it blue"), timeout=60)
        assert response.status_code == 200, response.text
        assert resolving.last_inputs() == [GREEN]
        assert resolving.last_task()["output"]["plan"].get("edited") is None


def test_a_zero_makes_a_new_image_from_the_text_alone(resolving: Resolving) -> None:
    resolving.model.answer = "0"
    response = httpx.post(resolving.base + GEMINI, json=gemini_body("draw a boat instead"), timeout=60)
    assert response.status_code == 200, response.text
    assert resolving.last_inputs() == []
    assert resolving.last_task()["output"]["plan"]["edited"] == ""


def test_chat_completions_resolve_the_same_way(resolving: Resolving) -> None:
    resolving.model.answer = "1"
    red, green = f"data:image/png;base64,{png(RED)}", f"data:image/png;base64,{png(GREEN)}"
    sent = [{"type": "text", "text": "a red car"}, {"type": "image_url", "image_url": {"url": red}}]
    answered = [{"type": "image_url", "image_url": {"url": green}}]
    messages = [
        {"role": "system", "content": "You edit cars."},
        {"role": "user", "content": sent},
        {"role": "assistant", "content": "Here it is.", "images": answered},
        {"role": "user", "content": "make the first one blue"},
    ]
    body = {"model": "tiny", "messages": messages, "image_config": {"image_size": "512"}}
    answer = httpx.post(f"{resolving.base}/v1/chat/completions", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    assert resolving.last_inputs() == [RED]
    assert '2. model: "Here it is." [image 2]' in resolving.model.listings[-1]


def test_a_single_earlier_image_needs_no_resolution(resolving: Resolving) -> None:
    before = len(resolving.model.listings)
    body = gemini_body("make it blue")
    body["contents"] = body["contents"][1:]  # only the green answer, then the edit
    assert httpx.post(resolving.base + GEMINI, json=body, timeout=60).status_code == 200
    assert resolving.last_inputs() == [GREEN] and len(resolving.model.listings) == before
