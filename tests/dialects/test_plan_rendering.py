"""The planner stage in every dialect (docs/planner.md): where each answer shows its text and
revised prompt, and how each dialect's request turns it on or off (``ImageRequest.plan``).

Pure conversions, on synthetic results: the end-to-end path is tested where the worker makes plans.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from plantain.dialects.chat import convert as chat
from plantain.dialects.gemini import batch_convert, render
from plantain.dialects.gemini import convert as gemini
from plantain.dialects.inference_sh import render as inference_sh
from plantain.dialects.native import convert as native
from plantain.dialects.openai import convert as openai
from plantain.errors import InvalidRequestError
from plantain.limits import DEFAULT_LIMITS
from plantain.storage.batches import Batch, Member
from plantain.types import (
    Cost,
    GeneratedImage,
    ImageRequest,
    ImageResult,
    PlanResult,
    Task,
    TaskOutput,
    TaskResult,
    TokenUsage,
    Usage,
)

PLAN = PlanResult(
    model="tiny-planner",
    original_prompt="a cat",
    revised_prompt="a ginger cat asleep on a sunlit windowsill, soft morning light",
    text="Here is a ginger cat asleep in the sun.",
    seconds=0.25,
    input_tokens=12,
    output_tokens=30,
)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def result_of(count: int = 1, plan: PlanResult | None = PLAN, *, decodable: bool = False) -> ImageResult:
    """``count`` images: three-byte stand-ins, or real PNGs where the answer looks into them."""
    images = tuple(
        GeneratedImage(
            data=png() if decodable else bytes([0xFB, 0xFF, index]),
            media_type="image/png",
            width=8,
            height=8,
            seed=index,
        )
        for index in range(count)
    )
    return ImageResult(engine="tiny", images=images, steps=4, guidance=1.0, seconds=0.1, plan=plan)


def task_of(planned: PlanResult | None = PLAN, **request: Any) -> Task:
    output = TaskOutput(file_id="f1", media_type="image/png", width=8, height=8, seed=7)
    usage = Usage(
        tokens=TokenUsage(input_text=3, output=1290),
        images=1,
        device_seconds=0.1,
        cost=Cost(amount=0.0, currency="USD"),
    )
    return Task(
        id="t1",
        status="succeeded",
        model="tiny",
        engine="tiny",
        source="tasks",
        request={"prompt": "a cat", "size": "1K", **request},
        input_count=0,
        attempts=1,
        cancel_requested=False,
        webhook_url=None,
        webhook_events=None,
        result=TaskResult(engine="tiny", outputs=(output,), steps=4, guidance=1.0, seconds=0.1, plan=planned),
        error=None,
        created_at=1.0,
        started_at=2.0,
        completed_at=3.0,
        expires_at=None,
        usage=usage,
    )


def file_url(file_id: str) -> str:
    return f"http://x/v1/files/{file_id}"


IMAGE_PART = {"inlineData": {"mimeType": "image/png", "data": "+/8A"}}


# --- Gemini -------------------------------------------------------------------------------------


def test_gemini_answers_the_text_before_the_image_in_every_candidate() -> None:
    request = ImageRequest.create(prompt="a cat", num_images=2)
    body = render.to_response(result_of(2), request, "gemini-2.5-flash-image", "rid").wire()
    for candidate in body["candidates"]:
        parts = candidate["content"]["parts"]
        assert parts[0] == {"text": PLAN.text}
        assert parts[1]["inlineData"]["mimeType"] == "image/png"
        assert len(parts) == 2


def test_gemini_include_thoughts_puts_the_revised_prompt_first_as_a_thought() -> None:
    request = ImageRequest.create(prompt="a cat")
    body = render.to_response(result_of(), request, "m", "rid", include_thoughts=True).wire()
    assert body["candidates"][0]["content"]["parts"] == [
        {"text": PLAN.revised_prompt, "thought": True},
        {"text": PLAN.text},
        IMAGE_PART,
    ]


def test_gemini_without_a_plan_answers_image_parts_only_even_with_include_thoughts() -> None:
    request = ImageRequest.create(prompt="a cat")
    body = render.to_response(result_of(plan=None), request, "m", "rid", include_thoughts=True).wire()
    assert body["candidates"][0]["content"]["parts"] == [IMAGE_PART]
    assert body["usageMetadata"]["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 1290}]


def test_gemini_counts_the_planners_output_as_text_tokens_of_the_candidates() -> None:
    request = ImageRequest.create(prompt="x" * 40)
    usage = render.to_response(result_of(), request, "gemini-2.5-flash-image", "rid").wire()["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1290 + 30
    assert usage["totalTokenCount"] == 10 + 1290 + 30
    assert usage["candidatesTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 30},
        {"modality": "IMAGE", "tokenCount": 1290},
    ]


def test_gemini_stream_chunks_carry_the_text_parts_before_each_image() -> None:
    request = ImageRequest.create(prompt="a cat", num_images=2)
    chunks = [
        chunk.wire()
        for chunk in render.to_stream_chunks(result_of(2), request, "m", "rid", include_thoughts=True)
    ]
    for chunk in chunks:
        parts = chunk["candidates"][0]["content"]["parts"]
        assert parts[:2] == [{"text": PLAN.revised_prompt, "thought": True}, {"text": PLAN.text}]
        assert "inlineData" in parts[2]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 2 * 1290 + 30


def test_gemini_batch_output_carries_the_text_part_and_its_tokens() -> None:
    task = task_of()
    batch = Batch("b1", "gemini", "gemini-2.5-flash-image", "", 1.0, None, (Member(0, task.id, None),))
    operation = batch_convert.operation(batch, [task], {task.id: result_of()})
    entry = operation["metadata"]["output"]["inlinedResponses"]["inlinedResponses"][0]["response"]
    assert entry["candidates"][0]["content"]["parts"] == [{"text": PLAN.text}, IMAGE_PART]
    assert entry["usageMetadata"]["candidatesTokenCount"] == 1290 + 30


def gemini_request(thinking: dict[str, Any] | None) -> tuple[ImageRequest, bool]:
    config: dict[str, Any] = {} if thinking is None else {"thinkingConfig": thinking}
    raw = {"contents": [{"parts": [{"text": "a cat"}]}], "generationConfig": config}
    body = gemini.parse_request(json.dumps(raw).encode())
    return gemini.to_image_request(body, engine="tiny"), gemini.include_thoughts(body)


@pytest.mark.parametrize(
    ("thinking", "plan", "thoughts"),
    [
        (None, None, False),
        ({"thinkingBudget": 0}, False, False),
        ({"thinking_budget": 0, "includeThoughts": True}, False, True),
        ({"thinkingBudget": -1}, None, False),
        ({"thinkingBudget": 1024}, None, False),
        ({"includeThoughts": True}, None, True),
        ({"thinkingLevel": "low"}, None, False),
    ],
)
def test_gemini_thinking_config_steers_the_planner(
    thinking: dict[str, Any] | None, plan: bool | None, thoughts: bool
) -> None:
    request, include = gemini_request(thinking)
    assert (request.plan, include) == (plan, thoughts)
    assert "thinkingConfig" not in request.ignored  # it is acted on now


@pytest.mark.parametrize(
    ("thinking", "field"),
    [
        ({"thinkingBudget": -5}, "generationConfig.thinkingConfig.thinkingBudget"),
        ({"thinkingBudget": "lots"}, "generationConfig.thinkingConfig.thinkingBudget"),
        ({"includeThoughts": "perhaps"}, "generationConfig.thinkingConfig.includeThoughts"),
    ],
)
def test_gemini_a_bad_thinking_config_is_refused_naming_the_field(
    thinking: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        gemini_request(thinking)
    assert caught.value.field == field and field in caught.value.message


# --- OpenAI Images ------------------------------------------------------------------------------


def test_openai_revised_prompt_is_the_planners_in_body_and_stream() -> None:
    params = openai.parse_params({"prompt": "a cat"})
    counted = TokenUsage(input_text=3, output=1290)
    body = openai.response_body(result_of(2, decodable=True), params, 1, counted=counted)
    assert [item["revised_prompt"] for item in body["data"]] == [PLAN.revised_prompt] * 2
    urls = openai.response_body(result_of(decodable=True), params, 1, ["http://x/1"], counted=counted)
    assert urls["data"][0]["revised_prompt"] == PLAN.revised_prompt
    events = openai.stream_events(result_of(decodable=True), params, 1, "image_generation", counted=counted)
    data = json.loads(events[0].split("data: ", 1)[1])
    assert data["revised_prompt"] == PLAN.revised_prompt


def test_openai_without_a_plan_revised_prompt_stays_null_and_the_stream_unchanged() -> None:
    params = openai.parse_params({"prompt": "a cat"})
    counted = TokenUsage(input_text=3, output=1290)
    body = openai.response_body(result_of(plan=None, decodable=True), params, 1, counted=counted)
    assert body["data"][0]["revised_prompt"] is None
    events = openai.stream_events(
        result_of(plan=None, decodable=True), params, 1, "image_generation", counted=counted
    )
    assert "revised_prompt" not in json.loads(events[0].split("data: ", 1)[1])


@pytest.mark.parametrize(("value", "plan"), [(None, None), (False, False), (True, True), ("false", False)])
def test_openai_rewrite_prompt_is_the_switch_in_json_and_form_fields(value: Any, plan: bool | None) -> None:
    fields = {"prompt": "a cat"} | ({} if value is None else {"rewrite_prompt": value})
    params = openai.parse_params(fields)
    assert openai.to_image_request(params, "tiny").plan is plan


def test_openai_a_bad_rewrite_prompt_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        openai.parse_json(json.dumps({"prompt": "a cat", "rewrite_prompt": "sometimes"}).encode())
    assert caught.value.field == "rewrite_prompt"
    assert "'sometimes'" in caught.value.message and "boolean" in caught.value.message


def test_openai_an_error_about_plan_names_rewrite_prompt() -> None:
    error = InvalidRequestError("plan: no planner is configured", field="plan")
    assert error.renamed(openai.PARAM_NAMES).field == "rewrite_prompt"


# --- chat completions ---------------------------------------------------------------------------


def test_chat_content_is_the_planners_text() -> None:
    counted = TokenUsage(input_text=3, output=1290)
    body = chat.completion_body(result_of(2), "c1", "m", 1, counted=counted)
    assert [choice["message"]["content"] for choice in body["choices"]] == [PLAN.text] * 2
    empty = chat.completion_body(result_of(plan=None), "c1", "m", 1, counted=counted)
    assert empty["choices"][0]["message"]["content"] == ""


def chunk_bodies(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line != chat.DONE]


def test_chat_stream_sends_the_text_as_a_content_delta_before_the_images() -> None:
    counted = TokenUsage(input_text=3, output=1290)
    bodies = chunk_bodies(chat.closing_chunks(result_of(2), "c1", "m", 1, counted=counted))
    assert [choice["delta"] for choice in bodies[0]["choices"]] == [{"content": PLAN.text}] * 2
    assert "images" in bodies[1]["choices"][0]["delta"] and "images" in bodies[2]["choices"][0]["delta"]
    plain = chunk_bodies(chat.closing_chunks(result_of(plan=None), "c1", "m", 1, counted=counted))
    assert "images" in plain[0]["choices"][0]["delta"]  # no empty content chunk without a plan


def chat_request(**fields: Any) -> ImageRequest:
    raw = {"model": "tiny", "messages": [{"role": "user", "content": "a cat"}], **fields}
    return chat.to_image_request(chat.parse_request(json.dumps(raw).encode()), "tiny", DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("fields", "plan"),
    [
        ({}, None),
        ({"rewrite_prompt": False}, False),
        ({"rewrite_prompt": True}, True),
        ({"reasoning": {"enabled": False}}, False),
        ({"reasoning": {"effort": "none"}}, False),
        ({"reasoning": {"effort": "None"}}, False),
        ({"reasoning": {"max_tokens": 0}}, False),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning": {"effort": "high"}}, None),
        ({"reasoning": {"enabled": True}}, None),
        ({"reasoning_effort": "low"}, None),
        ({"reasoning": {"enabled": False}, "rewrite_prompt": True}, True),  # Plantain's switch wins
    ],
)
def test_chat_rewrite_prompt_and_reasoning_switch_the_planner(
    fields: dict[str, Any], plan: bool | None
) -> None:
    request = chat_request(**fields)
    assert request.plan is plan
    assert "reasoning" not in request.ignored and "reasoning_effort" not in request.ignored


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rewrite_prompt": "maybe"}, "rewrite_prompt"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"reasoning_effort": "loads"}, "reasoning_effort"),
        ({"reasoning": {"enabled": "nah"}}, "reasoning.enabled"),
    ],
)
def test_chat_a_bad_switch_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        chat_request(**fields)
    assert caught.value.field == field and field in caught.value.message


# --- the task API -------------------------------------------------------------------------------


def test_native_output_shows_the_description_revised_prompt_and_plan_numbers() -> None:
    output = native.task_body(task_of(), file_url, base="http://x")["output"]
    assert output["description"] == PLAN.text
    assert output["revised_prompt"] == PLAN.revised_prompt
    assert output["plan"] == {
        "model": "tiny-planner",
        "seconds": 0.25,
        "input_tokens": 12,
        "output_tokens": 30,
    }
    assert output["seconds"] == 0.1  # the engine's, as before


def test_native_output_without_a_plan_is_as_before() -> None:
    body = native.task_body(task_of(planned=None), file_url, base="http://x")
    assert set(body["output"]) == {"images", "steps", "guidance", "seconds"}
    assert "rewrite" not in body["input"]


def native_request(**input_: Any) -> ImageRequest:
    body, _ = native.parse_create(json.dumps({"input": {"prompt": "a cat", **input_}}).encode())
    return native.to_image_request(body.input, [])


@pytest.mark.parametrize(("value", "plan"), [(None, None), (False, False), (True, True)])
def test_native_input_rewrite_is_the_switch_and_is_echoed(value: bool | None, plan: bool | None) -> None:
    request = native_request(**({} if value is None else {"rewrite": value}))
    assert request.plan is plan
    echo = native.task_body(task_of(**request.model_dump(include={"plan"})), file_url, base="http://x")
    assert echo["input"].get("rewrite") is plan


def test_native_a_bad_rewrite_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        native_request(rewrite="often")
    assert caught.value.field == "input.rewrite" and "'often'" in caught.value.message


def test_native_an_error_about_plan_names_input_rewrite() -> None:
    error = InvalidRequestError("plan: no planner is configured", field="plan")
    assert error.renamed(native.FIELD_NAMES).field == "input.rewrite"


# --- inference.sh ---------------------------------------------------------------------------------


def test_inference_sh_description_is_the_planners_text_and_output_meta_has_the_revised_prompt() -> None:
    output = inference_sh.output_body(task_of(), file_url)
    assert output is not None
    assert output["description"] == PLAN.text
    meta = output["output_meta"]
    assert meta["revised_prompt"] == PLAN.revised_prompt
    assert meta["plan"] == {"model": "tiny-planner", "seconds": 0.25, "input_tokens": 12, "output_tokens": 30}


def test_inference_sh_without_a_plan_is_as_before() -> None:
    output = inference_sh.output_body(task_of(planned=None), file_url)
    assert output is not None and output["description"] == ""
    assert "revised_prompt" not in output["output_meta"] and "plan" not in output["output_meta"]
