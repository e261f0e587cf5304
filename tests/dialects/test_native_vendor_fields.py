"""The task API takes the vendors' field names a body written for inference.sh's image apps
carries: its safety fields set the safety level, the fields with no meaning here are accepted,
checked against the vendor's range and reported in ``input.ignored``; an unknown field is still
refused, named as unknown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from plantain.dialects.native import convert as tasks
from plantain.errors import InvalidRequestError
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

# What inference.sh's Gemini image apps take, as a new user pastes it into /v1/tasks.
INFERENCE_SH_INPUT: dict[str, Any] = {
    "prompt": "a lighthouse at dusk",
    "resolution": "0.5K",
    "num_images": 1,
    "aspect_ratio": "1:1",
    "safety_tolerance": "BLOCK_SOME",
    "safety_filter": "block_medium_and_above",
    "enable_google_search": False,
    "temperature": 1.0,
    "top_p": 0.95,
    "top_k": 40,
    "max_tokens": 32768,
    "retry_count": 3,
}
# retry_count is used (a provider's retries) and enable_google_search is grounding (false here)
IGNORED = ["temperature", "top_p", "top_k", "max_tokens"]


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as server:
        yield server.url


def submit(base: str, input_: dict[str, Any], **extra: Any) -> httpx.Response:
    body = {"model": "tiny", "input": input_, **extra}
    return httpx.post(f"{base}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)


def parsed(input_: dict[str, Any]) -> Any:
    """The core request the task API makes of ``input_`` (no server)."""
    body, _ = tasks.parse_create(json.dumps({"input": input_}).encode())
    return tasks.to_image_request(body.input, [])


def refusal(input_: dict[str, Any], **extra: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        body, _ = tasks.parse_create(json.dumps({"input": input_, **extra}).encode())
        tasks.to_image_request(body.input, [])
    return caught.value


# --- over HTTP ------------------------------------------------------------------------------


def test_the_inference_sh_body_runs_with_its_fields_reported(base: str) -> None:
    answer = submit(base, INFERENCE_SH_INPUT)
    assert answer.status_code == 201, answer.text
    task = answer.json()
    assert task["status"] == "succeeded"
    assert task["input"]["ignored"] == IGNORED
    assert task["input"]["safety"] == "standard"  # BLOCK_SOME and block_medium_and_above
    assert task["input"]["resolution"] == "512"  # their 0.5K
    assert task["output"]["images"][0]["width"] == 512


def test_a_task_api_body_reports_nothing_ignored(base: str) -> None:
    answer = submit(base, {"prompt": "a boat", "resolution": "512", "safety_tolerance": 2})
    assert answer.status_code == 201, answer.text
    assert answer.json()["input"]["ignored"] == []


def test_an_unknown_field_is_refused_as_unknown_over_http(base: str) -> None:
    answer = submit(base, {"prompt": "a boat", "colour": "red"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["field"] == "input.colour"
    assert error["message"].startswith("input.colour is not a known field of the task API")
    assert "Extra inputs" not in error["message"]


def test_a_vendor_value_out_of_range_is_refused_over_http(base: str) -> None:
    answer = submit(base, {"prompt": "a boat", "temperature": 3})
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "input.temperature"


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("temperature", 2.5, "a number between 0 and 2"),
        ("temperature", -0.1, "a number between 0 and 2"),
        ("top_p", 1.5, "a number between 0 and 1"),
        ("top_k", 0, "a whole number between 1 and 1000"),
        ("max_tokens", 0, "a whole number between 1 and 65536"),
        ("retry_count", 11, "a whole number between 0 and 10"),
        ("enable_google_search", "sometimes", "true or false"),
    ],
)
def test_an_ignored_field_is_still_checked_against_the_vendors_range(
    field: str, value: Any, limit: str
) -> None:
    error = refusal({"prompt": "p", field: value})
    assert error.field == f"input.{field}"
    assert error.message.startswith(f"input.{field}: {value!r} is not allowed; must be {limit}")


@pytest.mark.parametrize(
    ("extra", "level"),
    [
        ({"safety_tolerance": "BLOCK_MOST"}, "strict"),
        ({"safety_tolerance": "BLOCK_SOME"}, "standard"),
        ({"safety_tolerance": "block_few"}, "relaxed"),  # either case
        ({"safety_tolerance": "BLOCK_NONE"}, "off"),
        ({"safety_filter": "block_low_and_above"}, "strict"),
        ({"safety_filter": "block_only_high"}, "relaxed"),
        ({"safety_filter": "BLOCK_NONE"}, "off"),
        ({"safety_tolerance": 2, "safety_filter": "block_medium_and_above"}, "standard"),  # agree
        (
            {"safety_tolerance": "BLOCK_NONE", "safety_filter": "block_low_and_above"},
            "strict",
        ),  # the stricter
    ],
)
def test_the_vendors_safety_fields_set_the_level(extra: dict[str, Any], level: str) -> None:
    assert parsed({"prompt": "p", **extra}).safety == level


def test_the_task_apis_number_and_a_disagreeing_safety_filter_are_refused_naming_both() -> None:
    error = refusal({"prompt": "p", "safety_tolerance": 0, "safety_filter": "block_none"})
    assert "input.safety_tolerance and input.safety_filter disagree" in error.message
    assert "'strict'" in error.message and "'off'" in error.message


@pytest.mark.parametrize(
    ("extra", "field", "text"),
    [
        (
            {"safety_tolerance": "BLOCK_ALL"},
            "input.safety_tolerance",
            "0 (strictest) to 6, or one of BLOCK_MOST",
        ),
        ({"safety_tolerance": 9}, "input.safety_tolerance", "9 is not allowed"),
        ({"safety_tolerance": True}, "input.safety_tolerance", "True is not allowed"),
        ({"safety_filter": "none"}, "input.safety_filter", "block_low_and_above"),
    ],
)
def test_a_safety_value_neither_vocabulary_has_is_refused(
    extra: dict[str, Any], field: str, text: str
) -> None:
    error = refusal({"prompt": "p", **extra})
    assert error.field == field and text in error.message


@pytest.mark.parametrize(
    ("input_", "extra", "field"), [({"colour": "red"}, {}, "input.colour"), ({}, {"priority": 1}, "priority")]
)
def test_unknown_fields_are_refused_naming_them(
    input_: dict[str, Any], extra: dict[str, Any], field: str
) -> None:
    error = refusal({"prompt": "p", **input_}, **extra)
    assert error.field == field
    assert error.message.startswith(f"{field} is not a known field of the task API")


def test_ignored_fields_are_reported_as_sent_and_only_those() -> None:
    request = parsed({"prompt": "p", "top_p": 0.5, "enable_google_search": True})
    assert request.ignored == ("top_p",)
    assert request.grounding  # the vendor's search switch is search grounding (docs/grounding.md)
