"""Property tests: the decode path (fuzz/decode.py's harness) and the three dialect converters.

Whatever a caller sends, the answer is a request or a 4xx PlantainError — never another
exception, which the server would turn into a 500. The standalone harness runs the decode
property for longer (``python -m fuzz.decode``); here it runs a few hundred cases per test run.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.decode import Findings, run
from plantain.dialects.gemini import convert as gemini
from plantain.dialects.native import convert as tasks
from plantain.dialects.openai import convert as openai
from plantain.errors import PlantainError
from plantain.imaging.sizes import ASPECT_RATIOS
from plantain.testing import make_input
from plantain.types import ImageRequest, InputImage

PROPERTY = settings(
    max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


def test_decode_path_refuses_every_bad_input_with_a_plantain_error() -> None:
    findings = Findings(case_seconds=2.0)
    run(300, findings)
    assert findings.executions > 300
    assert findings.crashes == [], findings.crashes[0][1]
    assert findings.slow == []
    assert findings.accepted > 0  # the seeds themselves decode: the property is not vacuous


# --- converters -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
IMAGE_B64 = base64.b64encode(make_input(16, 16).data).decode()


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` four times in five, else ``bad``."""
    return st.integers(0, 4).flatmap(lambda roll: bad if roll == 0 else good)


B64_VALUES = mostly(
    st.sampled_from([IMAGE_B64, IMAGE_B64.replace("+", "-").replace("/", "_")]),
    st.sampled_from(["", "!!!", "aGVsbG8="]),
)
PROMPTS = mostly(st.text(min_size=1, max_size=40).filter(str.strip), st.text(max_size=3))
COUNTS = mostly(st.integers(1, 10), st.integers(-3, 14))
SEEDS = mostly(st.integers(0, 2**32), st.integers(-(2**65), 2**65))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``strategy``; one time in ten a wrong-typed JSON value or the key left out (None,
    dropped by ``compact``), so that many bodies are valid and the rest are wrong in one place."""
    return st.integers(0, 19).flatmap(
        lambda roll: JSON if roll == 0 else st.none() if roll == 1 else strategy
    )


def compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: compact(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [compact(item) for item in value]
    return value


SIZES = mostly(st.sampled_from(["512", "1K", "1k"]), st.sampled_from(["2K", "4K", "8K", ""]))
RATIOS = mostly(st.sampled_from(ASPECT_RATIOS), st.sampled_from(["3:1", "auto", ""]))

GEMINI_PART = st.one_of(
    st.fixed_dictionaries({"text": maybe(PROMPTS)}),
    st.fixed_dictionaries({"text": PROMPTS}),
    st.fixed_dictionaries(
        {
            "inlineData": st.fixed_dictionaries(
                {"mimeType": maybe(mostly(st.just("image/png"), st.text())), "data": B64_VALUES}
            )
        }
    ),
    st.fixed_dictionaries({"thought": maybe(st.booleans()), "text": st.text(max_size=10)}),
)
GEMINI_PARTS = st.tuples(GEMINI_PART, st.lists(GEMINI_PART, max_size=2)).map(
    lambda parts: [parts[0], *parts[1]]
)
GEMINI_BODY = st.fixed_dictionaries(
    {
        "contents": maybe(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "role": maybe(mostly(st.just("user"), st.just("model"))),
                        "parts": maybe(GEMINI_PARTS),
                    }
                ),
                min_size=1,
                max_size=3,
            )
        ),
        "generationConfig": maybe(
            st.fixed_dictionaries(
                {
                    "responseModalities": maybe(
                        mostly(
                            st.just(["IMAGE"]),
                            st.lists(st.sampled_from(["IMAGE", "TEXT", "AUDIO"]), max_size=2),
                        )
                    ),
                    "candidateCount": maybe(COUNTS),
                    "seed": maybe(SEEDS),
                    "temperature": maybe(mostly(st.floats(0, 2), st.floats())),
                    "imageConfig": maybe(
                        st.fixed_dictionaries({"aspectRatio": maybe(RATIOS), "imageSize": maybe(SIZES)})
                    ),
                }
            )
        ),
    }
)


def _assert_request_or_client_error(convert: Any, body: Any) -> ImageRequest | None:
    raw = json.dumps(compact(body)).encode()
    try:
        return convert(raw)  # type: ignore[no-any-return]
    except PlantainError as exc:
        assert 400 <= exc.status < 500, f"{type(exc).__name__} ({exc.status}): {exc}"
        assert exc.message
        return None


def _gemini(raw: bytes) -> ImageRequest:
    return gemini.to_image_request(gemini.parse_request(raw), engine="tiny")


@PROPERTY
@given(GEMINI_BODY)
def test_gemini_converter_answers_every_body_with_a_request_or_a_400(body: dict[str, Any]) -> None:
    request = _assert_request_or_client_error(_gemini, body)
    if request is not None:
        config = compact(body).get("generationConfig") or {}
        assert request.num_images == (config.get("candidateCount") or 1)


OPENAI_BODY = st.fixed_dictionaries(
    {
        "prompt": maybe(PROMPTS),
        "n": maybe(COUNTS),
        "size": maybe(st.sampled_from(["auto", "1024x1024", "1536x1024", "1344x768", "999x999", "big"])),
        "quality": maybe(st.sampled_from(["auto", "low", "high", "hd", "ultra"])),
        "output_format": maybe(st.sampled_from(["png", "jpeg", "jpg", "webp", "gif"])),
        "output_compression": maybe(mostly(st.integers(0, 100), st.integers(-10, 120))),
        "response_format": maybe(st.sampled_from(["b64_json", "url", "file"])),
        "seed": maybe(SEEDS),
    }
)


def _openai(raw: bytes) -> ImageRequest:
    return openai.to_image_request(openai.parse_json(raw), "tiny")


@PROPERTY
@given(OPENAI_BODY)
def test_openai_converter_answers_every_body_with_a_request_or_a_400(body: dict[str, Any]) -> None:
    request = _assert_request_or_client_error(_openai, body)
    if request is not None:
        assert request.num_images == (compact(body).get("n") or 1)


TASK_BODY = st.fixed_dictionaries(
    {
        "model": maybe(st.sampled_from(["tiny", "nano-banana"])),
        "input": maybe(
            st.fixed_dictionaries(
                {
                    "prompt": maybe(PROMPTS),
                    "images": maybe(
                        st.lists(
                            st.one_of(B64_VALUES, st.just("data:image/png;base64," + IMAGE_B64)), max_size=2
                        )
                    ),
                    "aspect_ratio": maybe(RATIOS),
                    "resolution": maybe(SIZES),
                    "num_images": maybe(COUNTS),
                    "seed": maybe(SEEDS),
                    "steps": maybe(mostly(st.integers(1, 8), st.integers(-3, 300))),
                    "guidance": maybe(mostly(st.floats(0, 10), st.floats())),
                }
            )
        ),
        "webhook_events_filter": maybe(
            mostly(
                st.just(["completed"]),
                st.lists(st.sampled_from(["completed", "started", "nope"]), max_size=2),
            )
        ),
    }
)


def _task(raw: bytes) -> ImageRequest:
    body, _ = tasks.parse_create(raw)
    images = [image for image in tasks.image_sources(body.input) if isinstance(image, InputImage)]
    return tasks.to_image_request(body.input, images)


@PROPERTY
@given(TASK_BODY)
def test_task_converter_answers_every_body_with_a_request_or_a_400(body: dict[str, Any]) -> None:
    request = _assert_request_or_client_error(_task, body)
    if request is not None:
        sent = compact(body)["input"]
        assert request.prompt == sent["prompt"]
        assert len(request.images) == len(sent.get("images") or [])
