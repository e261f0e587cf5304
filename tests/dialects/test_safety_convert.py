"""Each dialect's safety knob -> the core level (pure conversions; the live answers are tested in
tests/compat/test_safety_dialects.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plantain.dialects.gemini import convert as gemini
from plantain.dialects.gemini.safety import blocked_response
from plantain.dialects.native import convert as tasks
from plantain.dialects.openai import convert as openai
from plantain.dialects.openai.errors import error_body
from plantain.errors import ContentBlockedError, InvalidRequestError


def gemini_level(*thresholds: str | None) -> str | None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": value} for value in thresholds]
    body = gemini.parse_request(
        as_json({"contents": [{"parts": [{"text": "a cube"}]}], "safetySettings": settings})
    )
    return gemini.to_image_request(body, engine="tiny").safety


def as_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("thresholds", "level"),
    [
        ((), None),
        (("HARM_BLOCK_THRESHOLD_UNSPECIFIED",), None),
        ((None,), None),
        (("BLOCK_LOW_AND_ABOVE",), "strict"),
        (("BLOCK_MEDIUM_AND_ABOVE",), "standard"),
        (("block_only_high",), "relaxed"),
        (("BLOCK_NONE",), "off"),
        (("OFF",), "off"),
        (("BLOCK_NONE", "BLOCK_ONLY_HIGH", "HARM_BLOCK_THRESHOLD_UNSPECIFIED"), "relaxed"),
        (("BLOCK_NONE", "BLOCK_LOW_AND_ABOVE", "BLOCK_ONLY_HIGH"), "strict"),
    ],
)
def test_gemini_thresholds_give_the_strictest_level_sent(
    thresholds: tuple[str | None, ...], level: str | None
) -> None:
    assert gemini_level(*thresholds) == level


def test_an_unknown_gemini_threshold_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequestError, match=r"safetySettings\[1\]\.threshold: 'BLOCK_SOME'") as caught:
        gemini_level("BLOCK_NONE", "BLOCK_SOME")
    assert caught.value.field == "safetySettings[1].threshold" and "BLOCK_ONLY_HIGH" in caught.value.message


def test_a_gemini_prompt_block_is_prompt_feedback_and_an_image_block_a_candidate() -> None:
    prompt = ContentBlockedError("contents: refused", field="contents", stage="prompt", category="hate")
    assert blocked_response(prompt, "m", "r").wire() == {
        "promptFeedback": {
            "blockReason": "SAFETY",
            "blockReasonMessage": "contents: refused",
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "HIGH", "blocked": True}
            ],
        },
        "modelVersion": "m",
        "responseId": "r",
    }
    image = ContentBlockedError("output image 1 of 1: refused", stage="image", category="nsfw")
    assert blocked_response(image, "m", "r").wire()["candidates"] == [
        {"finishReason": "IMAGE_SAFETY", "finishMessage": "output image 1 of 1: refused", "index": 0}
    ]


@pytest.mark.parametrize(("moderation", "level"), [(None, None), ("auto", None), ("LOW", "relaxed")])
def test_openai_moderation_picks_the_level(moderation: str | None, level: str | None) -> None:
    params = openai.parse_params({"prompt": "a cube", **({"moderation": moderation} if moderation else {})})
    assert openai.to_image_request(params, "tiny").safety == level


def test_openai_renders_a_block_as_moderation_blocked() -> None:
    error = ContentBlockedError("prompt: refused (category hate)", field="prompt", category="hate")
    status, body = error_body(error)
    assert status == 400
    assert body["error"]["code"] == "moderation_blocked"
    assert body["error"]["type"] == "image_generation_user_error" and body["error"]["param"] is None
    assert body["error"]["message"].endswith("prompt: refused (category hate)")


@pytest.mark.parametrize(
    ("tolerance", "level"),
    [
        (None, None),
        (0, "strict"),
        (1, "strict"),
        (2, "standard"),
        (3, "standard"),
        (4, "relaxed"),
        ("5", "relaxed"),
        (6, "off"),
    ],
)
def test_task_safety_tolerance_maps_to_levels(tolerance: Any, level: str | None) -> None:
    extra = {} if tolerance is None else {"safety_tolerance": tolerance}
    body, _ = tasks.parse_create(as_json({"input": {"prompt": "a cube", **extra}}))
    assert tasks.to_image_request(body.input, []).safety == level


@pytest.mark.parametrize("tolerance", [-1, 7, "high"])
def test_task_safety_tolerance_out_of_range_is_refused_naming_it(tolerance: Any) -> None:
    with pytest.raises(InvalidRequestError, match=r"input\.safety_tolerance") as caught:
        tasks.parse_create(as_json({"input": {"prompt": "a cube", "safety_tolerance": tolerance}}))
    assert caught.value.field == "input.safety_tolerance"
