"""The safety stage through each dialect, with the official SDKs, against live servers (tiny engine,
tiny ViT safety classifier whose head is pinned so that every image gets one known score).

``prompts``: images score 0.0003 nsfw, so only prompts are ever refused.
``images``: images score 0.5 nsfw; the thresholds (strict 0, standard 0.4, relaxed 1.01) block
every output at strict and standard (the default) and none at relaxed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from plantain.safety.tiny import build_classifier
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.storage.blobs import Blobs
from plantain.testing import LiveServer

MODEL = "gemini-2.5-flash-image"
ALL_NONE = [
    types.SafetySetting(category=category, threshold=types.HarmBlockThreshold.BLOCK_NONE)
    for category in (
        types.HarmCategory.HARM_CATEGORY_HARASSMENT,
        types.HarmCategory.HARM_CATEGORY_HATE_SPEECH,
        types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT,
        types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT,
    )
]
ONLY_HIGH = [
    types.SafetySetting(
        category=types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT,
        threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
    )
]


class Server:
    def __init__(self, url: str, files: Blobs) -> None:
        self.url = url
        self.files = files  # where output images are stored
        self.gemini = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)

    def task(self, input_: dict[str, Any]) -> httpx.Response:
        body = {"model": "tiny", "input": {"resolution": "512", **input_}}
        return httpx.post(f"{self.url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)

    def task_count(self) -> int:
        return len(httpx.get(f"{self.url}/v1/tasks", params={"limit": 100}).json()["data"])

    def stored_files(self) -> set[str]:
        return set(self.files.keys())


def classifier(tmp_path_factory: pytest.TempPathFactory, nsfw_logit: float) -> Path:
    directory = tmp_path_factory.mktemp("safety") / "classifier"
    build_classifier(directory, nsfw_logit=nsfw_logit)
    return directory


def serve(settings: Settings) -> Iterator[Server]:
    app = create_app(settings)
    with LiveServer(app) as live:
        live.wait_ready()
        yield Server(live.url, app.state.scheduler.store.blobs)


@pytest.fixture(scope="module")
def prompts(
    server_settings: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    path = classifier(tmp_path_factory, nsfw_logit=-8.0)
    settings = server_settings(safety_classifier=str(path), safety_terms={"brand": ["acme corp*"]})
    yield from serve(settings)


@pytest.fixture(scope="module")
def images(
    server_settings: Callable[..., Settings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    path = classifier(tmp_path_factory, nsfw_logit=0.0)
    thresholds = {"strict": 0.0, "standard": 0.4, "relaxed": 1.01}
    yield from serve(server_settings(safety_classifier=str(path), safety_image_thresholds=thresholds))


def gemini_config(safety: list[types.SafetySetting] | None = None) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        image_config=types.ImageConfig(image_size="512"), safety_settings=safety
    )


def has_image(response: types.GenerateContentResponse) -> bool:
    assert response.candidates and response.candidates[0].content
    parts = response.candidates[0].content.parts
    return bool(parts and parts[0].inline_data and parts[0].inline_data.data)


# --- prompts ----------------------------------------------------------------------------------


def test_gemini_reports_a_blocked_prompt_as_prompt_feedback_without_candidates(prompts: Server) -> None:
    response = prompts.gemini.models.generate_content(
        model=MODEL, contents="a naked man on a beach", config=gemini_config()
    )
    feedback = response.prompt_feedback
    assert response.candidates is None and feedback is not None
    assert feedback.block_reason == types.BlockedReason.SAFETY
    assert feedback.block_reason_message and "category sexual" in feedback.block_reason_message
    assert feedback.safety_ratings and feedback.safety_ratings[0].blocked
    assert feedback.safety_ratings[0].category == types.HarmCategory.HARM_CATEGORY_SEXUALLY_EXPLICIT
    assert feedback.safety_ratings[0].probability == types.HarmProbability.HIGH


def test_gemini_thresholds_pick_the_level(prompts: Server) -> None:
    relaxed = prompts.gemini.models.generate_content(
        model=MODEL, contents="a naked man on a beach", config=gemini_config(ONLY_HIGH)
    )
    assert relaxed.prompt_feedback is None and has_image(relaxed)
    # BLOCK_NONE everywhere is "off", which this server raises to its minimum, relaxed.
    gravest = prompts.gemini.models.generate_content(
        model=MODEL, contents="a nude child", config=gemini_config(ALL_NONE)
    )
    assert gravest.prompt_feedback is not None and gravest.candidates is None
    assert gravest.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT


def test_gemini_reports_an_operator_list_as_a_blocklist(prompts: Server) -> None:
    response = prompts.gemini.models.generate_content(
        model=MODEL, contents="the ACME Corporation logo", config=gemini_config()
    )
    assert response.prompt_feedback is not None
    assert response.prompt_feedback.block_reason == types.BlockedReason.BLOCKLIST
    assert response.prompt_feedback.safety_ratings is None


def test_gemini_streaming_reports_a_blocked_prompt_in_its_one_chunk(prompts: Server) -> None:
    chunks = list(
        prompts.gemini.models.generate_content_stream(
            model=MODEL, contents="a very gory battlefield", config=gemini_config()
        )
    )
    assert len(chunks) == 1 and chunks[0].prompt_feedback is not None
    assert chunks[0].prompt_feedback.block_reason == types.BlockedReason.SAFETY


def test_openai_refuses_a_blocked_prompt_as_moderation_blocked(prompts: Server) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        prompts.openai.images.generate(model="tiny", prompt="a naked man on a beach", size="512x512")
    error = caught.value
    assert error.code == "moderation_blocked" and error.type == "image_generation_user_error"
    assert error.param is None and "category sexual" in error.message
    allowed = prompts.openai.images.generate(
        model="tiny", prompt="a naked man on a beach", size="512x512", moderation="low"
    )
    assert allowed.data and allowed.data[0].b64_json


def test_the_task_api_refuses_a_blocked_prompt_at_submission_and_queues_nothing(prompts: Server) -> None:
    before = prompts.task_count()
    response = prompts.task({"prompt": "a nude child", "safety_tolerance": 6})  # 6 is raised to relaxed
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_blocked" and error["status"] == 400 and error["field"] == "input.prompt"
    assert "category sexual/minors" in error["message"] and "level is relaxed" in error["message"]
    assert prompts.task_count() == before


@pytest.mark.parametrize(
    ("tolerance", "level"),
    [(0, "strict"), (2, "standard"), (4, "relaxed"), (6, "relaxed"), (None, "standard")],
)
def test_a_safe_prompt_succeeds_at_every_level(prompts: Server, tolerance: int | None, level: str) -> None:
    extra = {} if tolerance is None else {"safety_tolerance": tolerance}
    task = prompts.task({"prompt": "a red bicycle leaning on a wall", **extra}).json()
    assert task["status"] == "succeeded" and task["input"]["safety"] == level


def test_the_server_keeps_serving_after_blocks(prompts: Server) -> None:
    for _ in range(2):
        assert prompts.task({"prompt": "a naked man"}).status_code == 400
        assert prompts.task({"prompt": "a quiet harbour"}).json()["status"] == "succeeded"


# --- output images ----------------------------------------------------------------------------


def test_gemini_reports_a_blocked_image_as_an_image_safety_candidate(images: Server) -> None:
    response = images.gemini.models.generate_content(model=MODEL, contents="a cat", config=gemini_config())
    assert response.prompt_feedback is None and response.candidates
    candidate = response.candidates[0]
    assert candidate.finish_reason == types.FinishReason.IMAGE_SAFETY and candidate.content is None
    # google-genai drops finishMessage from Gemini API answers; REST callers read it.
    raw = httpx.post(
        f"{images.url}/v1beta/models/{MODEL}:generateContent",
        json={
            "contents": [{"parts": [{"text": "a cat"}]}],
            "generationConfig": {"imageConfig": {"imageSize": "512"}},
        },
        timeout=120,
    ).json()
    assert raw["candidates"][0]["finishReason"] == "IMAGE_SAFETY" and "content" not in raw["candidates"][0]
    assert "category nsfw" in raw["candidates"][0]["finishMessage"]
    relaxed = images.gemini.models.generate_content(
        model=MODEL, contents="a cat", config=gemini_config(ONLY_HIGH)
    )
    assert has_image(relaxed)


def test_gemini_streaming_reports_a_blocked_image(images: Server) -> None:
    chunks = list(
        images.gemini.models.generate_content_stream(model=MODEL, contents="a cat", config=gemini_config())
    )
    assert len(chunks) == 1 and chunks[0].candidates
    assert chunks[0].candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY


def test_gemini_batch_entries_report_a_blocked_image(images: Server) -> None:
    src = [
        types.InlinedRequest(contents="a cat", config=gemini_config()),
        types.InlinedRequest(contents="a dog", config=gemini_config(ONLY_HIGH)),
    ]
    job = images.gemini.batches.create(model=MODEL, src=src)
    assert job.name is not None
    deadline = time.monotonic() + 120
    while not (job := images.gemini.batches.get(name=job.name)).done:
        assert time.monotonic() < deadline and job.name is not None
        time.sleep(0.1)
    assert job.dest is not None and job.dest.inlined_responses is not None
    blocked, allowed = job.dest.inlined_responses
    assert blocked.error is None and blocked.response and blocked.response.candidates
    assert blocked.response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert allowed.response is not None and has_image(allowed.response)


def test_openai_refuses_a_blocked_image_and_streams_no_preview_of_it(images: Server) -> None:
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            images.openai.images.generate(
                model="tiny", prompt="a cat", size="512x512", stream=stream, partial_images=2
            )
        assert caught.value.code == "moderation_blocked" and "category nsfw" in caught.value.message
    allowed = images.openai.images.generate(model="tiny", prompt="a cat", size="512x512", moderation="low")
    assert allowed.data and allowed.data[0].b64_json


def test_a_task_whose_image_is_blocked_fails_with_the_reason_and_stores_nothing(images: Server) -> None:
    stored = images.stored_files()
    task = images.task({"prompt": "a cat", "num_images": 2}).json()
    assert task["status"] == "failed" and task["output"] is None and task["attempts"] == 1
    error = task["error"]
    assert (error["code"], error["status"], error["category"]) == ("content_blocked", 400, "nsfw")
    assert error["message"].startswith("output image 1 of 2:") and "category nsfw" in error["message"]
    assert images.stored_files() == stored
    relaxed = images.task({"prompt": "a cat", "safety_tolerance": 4}).json()
    assert relaxed["status"] == "succeeded" and len(images.stored_files()) == len(stored) + 1
