"""Search grounding on a live server (tiny engine, tiny planner, tiny reranker) against a real
local search API and web (search_server.py): every dialect's switch, where each shows the sources,
that the engine gets the retrieved reference image, that a request without search makes no
outbound request, and the refusal on a server without a search provider."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from PIL import Image
from tests.search.search_server import COLOURS, SearchServer

from plantain.client.wire import Task
from plantain.engines.base import EngineJob
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

PROMPT = "a bunch of ripe bananas at a market"
PAGES = {"https://example.org/bananas", "https://example.org/plantains", "https://example.org/markets"}


class Grounded:
    """The live server, its search server, the jobs its tiny engine ran and what its planner
    was asked (the user turns of its generations)."""

    def __init__(self, base: str, search: SearchServer, jobs: list[EngineJob], asked: list[str]) -> None:
        self.base, self.search, self.jobs, self.asked = base, search, jobs, asked

    def last_inputs(self) -> list[tuple[int, int, int]]:
        """The colour of each input image of the last engine run."""
        return [image.convert("RGB").getpixel((0, 0)) for image in self.jobs[-1].images]  # type: ignore[misc]


@pytest.fixture(scope="module")
def grounded(server_settings: Callable[..., Settings], running: SearchServer) -> Iterator[Grounded]:
    settings = server_settings(
        search_provider="searxng",
        search_url=running.base,
        allowed_hosts=[running.host_port],  # the image candidates live on 127.0.0.1 here
        grounding_reranker="tiny",
        planner="on",
        planner_model="tiny",
        planner_max_tokens=12,
        batch_max_images=1,
    )
    app = create_app(settings)
    jobs = spy_on_engine(app, "tiny")
    asked = spy_on_planner(app)
    with LiveServer(app) as live:
        yield Grounded(live.wait_ready(), running, jobs, asked)


@pytest.fixture(scope="module")
def plain(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        yield live.wait_ready()


def spy_on_engine(app: Any, name: str) -> list[EngineJob]:
    """Record the jobs ``name`` runs (what the engine was actually given)."""
    engine = app.state.scheduler.registry.get(name)
    jobs: list[EngineJob] = []
    lock = threading.Lock()
    run = engine.run

    def recorded(batch: list[EngineJob], *args: Any, **kwargs: Any) -> Any:
        with lock:
            jobs.extend(batch)
        return run(batch, *args, **kwargs)

    engine.run = recorded
    return jobs


def spy_on_planner(app: Any) -> list[str]:
    """Record the user turn of every generation the planner's (real, tiny) model is asked for."""
    model = app.state.scheduler.planner.model
    asked: list[str] = []
    generate = model.generate

    def recorded(system: str, user: str, **kwargs: Any) -> Any:
        asked.append(user)
        return generate(system, user, **kwargs)

    model.generate = recorded
    return asked


def gemini(base: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base))


def test_a_gemini_chat_turn_with_google_search_is_grounded(grounded: Grounded) -> None:
    grounded.search.reset()
    config = types.GenerateContentConfig(
        tools=[types.Tool(google_search=types.GoogleSearch())],
        image_config=types.ImageConfig(image_size="512"),
    )
    client = gemini(grounded.base)  # held: a client closes when it is collected
    chat = client.chats.create(model="gemini-2.5-flash-image", config=config)
    response = chat.send_message(PROMPT)
    candidate = response.candidates[0]  # type: ignore[index]
    parts = candidate.content.parts  # type: ignore[union-attr]
    texts = [part.text for part in parts if part.text and not part.thought]  # type: ignore[union-attr]
    assert len(texts) == 1 and any(part.inline_data for part in parts)  # type: ignore[union-attr]
    metadata = candidate.grounding_metadata
    assert metadata is not None and metadata.web_search_queries  # the planner's, or the prompt
    pages = {chunk.web.uri for chunk in metadata.grounding_chunks or [] if chunk.web}
    assert pages == PAGES  # the local search server's pages, deduplicated
    [image_chunk] = [chunk.image for chunk in metadata.grounding_chunks or [] if chunk.image]
    assert image_chunk.image_uri.startswith(grounded.search.base + "/img/")  # type: ignore[union-attr]
    [support] = metadata.grounding_supports or []
    assert support.segment.text == texts[0]  # type: ignore[union-attr]
    assert support.grounding_chunk_indices == [0, 1, 2]
    # the engine was given the reference the reranker put first, fetched from the search's web
    used = image_chunk.image_uri.rsplit("/", 1)[1].removesuffix(".png")  # type: ignore[union-attr]
    assert grounded.last_inputs() == [COLOURS[used]]
    assert grounded.search.api_requests() and grounded.search.image_requests()


def test_the_same_turn_without_search_makes_no_outbound_request(grounded: Grounded) -> None:
    grounded.search.reset()
    config = types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512"))
    client = gemini(grounded.base)
    response = client.models.generate_content(model="gemini-2.5-flash-image", contents=PROMPT, config=config)
    assert response.candidates[0].grounding_metadata is None  # type: ignore[index]
    assert grounded.search.requests == []
    assert grounded.last_inputs() == []  # a text-to-image request stays one


def test_the_task_shows_what_was_searched_and_used_and_usage_counts_it(grounded: Grounded) -> None:
    body = {"model": "tiny", "input": {"prompt": PROMPT, "resolution": "512", "grounding": True}}
    task = httpx.post(
        f"{grounded.base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120
    ).json()
    assert task["status"] == "succeeded", task
    assert task["input"]["grounding"] is True
    grounding = task["output"]["grounding"]
    assert grounding["provider"] == "searxng" and grounding["searches"] >= 2  # pages, then images
    assert {source["uri"] for source in grounding["sources"]} == PAGES
    references = grounding["references"]
    assert [reference["used"] for reference in references] == [True] + [False] * (len(references) - 1)
    scores = [reference["score"] for reference in references]
    assert scores == sorted(scores, reverse=True)  # best first
    # the facts reached the rewrite: a search snippet, tags and entities gone, in what it was asked
    assert any("Bananas are yellow & curved." in user for user in grounded.asked)
    usage = task["usage"]
    assert usage["search_seconds"] > 0 and usage["searches"] == grounding["searches"]
    assert usage["planner_output_tokens"] > 0 and usage["planner_input_tokens"] > 0
    read = Task.model_validate(task).output  # the Python client reads it too
    assert read is not None and read.grounding == grounding
    totals = httpx.get(f"{grounded.base}/v1/usage").json()["data"][0]
    assert totals["search"]["searches"] >= grounding["searches"]
    assert totals["planner"]["output_tokens"] >= usage["planner_output_tokens"]


def test_the_vendor_switch_works_on_the_task_api(grounded: Grounded) -> None:
    body = {"model": "tiny", "input": {"prompt": PROMPT, "resolution": "512", "enable_google_search": True}}
    task = httpx.post(
        f"{grounded.base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120
    ).json()
    assert task["output"]["grounding"]["sources"] and task["input"]["ignored"] == []


def test_chat_completions_annotate_the_message_with_url_citations(grounded: Grounded) -> None:
    for extra in ({"plugins": [{"id": "web"}]}, {"web_search_options": {}}, {"model": "tiny:online"}):
        body = {"model": "tiny", "messages": [{"role": "user", "content": PROMPT}], **extra}
        message = httpx.post(f"{grounded.base}/v1/chat/completions", json=body, timeout=120).json()
        message = message["choices"][0]["message"]
        citations = [note["url_citation"] for note in message["annotations"]]
        assert {citation["url"] for citation in citations} == PAGES
        assert all(citation["end_index"] == len(message["content"]) for citation in citations)


def test_openai_images_and_inference_sh_report_the_grounding(grounded: Grounded) -> None:
    images = httpx.post(
        f"{grounded.base}/v1/images/generations",
        json={"model": "tiny", "prompt": PROMPT, "size": "512x512", "grounding": True},
        timeout=120,
    ).json()
    assert {source["uri"] for source in images["grounding"]["sources"]} == PAGES
    app = httpx.post(
        f"{grounded.base}/v1/apps/plantain/tiny/run",
        json={"prompt": PROMPT, "resolution": "0.5K", "enable_google_search": True},
        timeout=120,
    ).json()
    meta = app["data"]["output"]["output_meta"]
    assert {source["uri"] for source in meta["grounding"]["sources"]} == PAGES
    assert "enable_google_search" not in meta["parameters"]["ignored"]


def test_a_text_to_image_grounded_request_keeps_its_size(grounded: Grounded) -> None:
    body = {
        "model": "tiny",
        "input": {"prompt": PROMPT, "aspect_ratio": "16:9", "resolution": "512", "seed": 5},
    }
    plain_task = httpx.post(f"{grounded.base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}).json()
    body["input"]["grounding"] = True
    task = httpx.post(
        f"{grounded.base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120
    ).json()
    made = Image.open(io.BytesIO(httpx.get(task["output"]["images"][0]["url"]).content))
    first = plain_task["output"]["images"][0]
    assert made.size == (first["width"], first["height"])  # a reference does not change the shape
    assert task["output"]["images"][0]["seed"] == 5


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1beta/models/gemini-2.5-flash-image:generateContent",
            {"contents": [{"parts": [{"text": PROMPT}]}], "tools": [{"googleSearch": {}}]},
            "tools",
        ),
        ("/v1/tasks", {"model": "tiny", "input": {"prompt": PROMPT, "grounding": True}}, "input.grounding"),
        (
            "/v1/chat/completions",
            {"model": "tiny", "messages": [{"role": "user", "content": PROMPT}], "plugins": [{"id": "web"}]},
            "plugins",
        ),
        ("/v1/images/generations", {"model": "tiny", "prompt": PROMPT, "grounding": True}, "grounding"),
        (
            "/v1/apps/plantain/tiny/run",
            {"prompt": PROMPT, "enable_google_search": True},
            "input.enable_google_search",
        ),
    ],
)
def test_a_server_without_a_search_provider_refuses_naming_the_field_and_setting(
    plain: str, path: str, body: dict[str, Any], field: str
) -> None:
    answer = httpx.post(plain + path, json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    text = answer.text
    assert field in text and "search_provider" in text


def test_other_gemini_tools_are_reported_ignored(plain: str) -> None:
    body = {"contents": [{"parts": [{"text": PROMPT}]}], "tools": [{"codeExecution": {}}]}
    path = "/v1beta/models/gemini-2.5-flash-image:generateContent"
    answer = httpx.post(
        plain + path, json={**body, "generationConfig": {"imageConfig": {"imageSize": "512"}}}
    )
    assert answer.status_code == 200, answer.text
    assert "tools.codeExecution" in answer.headers["x-plantain-ignored-parameters"]
