"""The Gemini provider against another Plantain server on a real port: a faithful Gemini API.

The remote serves the ``tiny`` engine, watermarks and signs its images; the provider must hand
its bytes back unchanged, send the seed and the sizes it was asked for, and tell a refusal (a bad
key, a blocked prompt) from what a retry may fix (no answer)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.providers.recording import Recorder

from plantain.errors import ProviderError
from plantain.generation import prepare
from plantain.provenance.manifests import read_credentials
from plantain.providers.base import origin_of, served_by
from plantain.providers.gemini import GeminiEngine
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.settings.providers import ProviderConfig
from plantain.testing import LiveServer, free_port, make_input, same_picture
from plantain.types import ImageRequest

KEY = "remote-key"
MODEL = "gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def remote(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as live:
        yield live.wait_ready()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.client.close()


def engine(
    base_url: str,
    tmp_path: Path,
    client: httpx.Client,
    sleep: Callable[[float], None] = lambda seconds: None,
    **config: Any,
) -> GeminiEngine:
    fields: dict[str, Any] = {"kind": "gemini", "model": MODEL, "base_url": base_url, "api_key": KEY}
    return GeminiEngine(
        "gemini-remote",
        Settings(data_dir=tmp_path),
        ProviderConfig(**{**fields, **config}),
        client=client,
        sleep=sleep,
    )


def run(provider: GeminiEngine, **fields: Any) -> list[Any]:
    job = prepare(ImageRequest.create(**fields), provider)
    return provider.run([job])[0]


def test_makes_the_remotes_image_at_the_asked_size_and_keeps_its_bytes(
    remote: str, tmp_path: Path, recorder: Recorder
) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    [image] = run(provider, prompt="a lighthouse", aspect_ratio="16:9", size="512", seed=7)
    assert image.size == (672, 384)  # the remote's 16:9 at the 512 tier
    [sent] = recorder.sent
    assert recorder.requests[0].headers["x-goog-api-key"] == KEY
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "a lighthouse"}]}]
    assert sent["generationConfig"] == {
        "responseModalities": ["IMAGE"],
        "imageConfig": {"aspectRatio": "16:9", "imageSize": "512"},
        "seed": 7,
    }
    origin = origin_of(image)
    assert origin is not None and (origin.engine, origin.kind) == ("gemini-remote", "gemini")
    wire = recorder.answers[0]["candidates"][0]["content"]["parts"][0]["inlineData"]
    assert origin.data == base64.b64decode(wire["data"])  # exactly the bytes the remote sent
    assert origin.media_type == wire["mimeType"] == "image/png"
    assert read_credentials(origin.data).state != "absent"  # the remote's content credentials
    assert served_by(image) == "gemini-remote"


def test_one_call_per_seed_and_the_seed_reaches_the_remote(
    remote: str, tmp_path: Path, recorder: Recorder
) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    first, second = run(provider, prompt="a fox", size="512", seed=41, num_images=2)
    assert [body["generationConfig"]["seed"] for body in recorder.sent] == [41, 42]
    assert "imageConfig" in recorder.sent[0]["generationConfig"]  # 512, not the default 1K
    again = run(provider, prompt="a fox", size="512", seed=42)[0]
    data = [origin.data for origin in map(origin_of, (first, second, again)) if origin is not None]
    assert same_picture(data[1], data[2]) and not same_picture(data[0], data[1])


def test_a_large_seed_is_folded_into_geminis_int32(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    run(engine(remote, tmp_path, recorder.client), prompt="a fox", size="512", seed=2**31 + 5)
    assert recorder.sent[0]["generationConfig"]["seed"] == 5


def test_edits_an_input_image(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    source = make_input(96, 64, color=(10, 200, 30))
    [image] = run(provider, prompt="make it blue", images=(source,), size="512", seed=3)
    parts = recorder.sent[0]["contents"][0]["parts"]
    assert parts[0] == {"text": "make it blue"} and parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[1]["inlineData"]["data"]  # the decoded input, as a PNG
    assert "aspectRatio" not in recorder.sent[0]["generationConfig"]["imageConfig"]  # the input's shape
    assert image.width > image.height  # the remote kept the input's 3:2 shape
    origin = origin_of(image)
    assert origin is not None and read_credentials(origin.data).state != "absent"


def test_an_exact_size_asks_for_its_nearest_ratio(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    [image] = run(provider, prompt="a fox", width=1344, height=768, seed=1)
    assert recorder.sent[0]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert image.size == (1344, 768)


@pytest.mark.parametrize(("key", "status"), [("wrong", 403), (None, 401)])
def test_a_refused_key_is_not_retried(
    remote: str, tmp_path: Path, recorder: Recorder, key: str | None, status: int
) -> None:
    provider = engine(remote, tmp_path, recorder.client, api_key=key, retries=2)
    with pytest.raises(ProviderError) as caught:
        run(provider, prompt="a fox", size="512")
    assert caught.value.upstream_status == status and not caught.value.retryable
    assert "gemini-remote" in caught.value.message and str(status) in caught.value.message
    assert len(recorder.requests) == 1


def test_a_blocked_prompt_is_a_refusal_naming_the_reason(
    remote: str, tmp_path: Path, recorder: Recorder
) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    with pytest.raises(ProviderError) as caught:
        run(provider, prompt="a nude child", size="512")
    assert caught.value.upstream_status == 200 and not caught.value.retryable
    assert "gemini-remote" in caught.value.message and "PROHIBITED_CONTENT" in caught.value.message


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"candidates": [{"finishReason": "IMAGE_SAFETY", "index": 0}]}, "finishReason IMAGE_SAFETY"),
        (
            {
                "candidates": [
                    {"content": {"parts": [{"text": "I can't draw that."}]}, "finishReason": "STOP"}
                ]
            },
            "I can't draw that.",
        ),
        ({"candidates": []}, "no candidate"),
        ({"promptFeedback": {"blockReason": "OTHER"}}, "blocked the prompt (OTHER)"),
    ],
)
def test_an_answer_without_an_image_is_a_refusal(
    tmp_path: Path, recorder: Recorder, answer: Any, reason: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        engine("http://127.0.0.1:9", tmp_path, recorder.client).image_of(answer)
    assert reason in caught.value.message and not caught.value.retryable


def test_a_thought_image_is_skipped(tmp_path: Path, recorder: Recorder) -> None:
    draft, final = (base64.b64encode(data).decode() for data in (b"draft", b"final"))
    parts = [{"inlineData": {"data": draft}, "thought": True}, {"inlineData": {"data": final}}]
    provider = engine("http://127.0.0.1:9", tmp_path, recorder.client)
    image = provider.image_of({"candidates": [{"content": {"parts": parts}}]})
    assert image.data == b"final"


def test_no_answer_is_retried_then_fails_as_retryable(tmp_path: Path, recorder: Recorder) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    provider = engine(unreachable, tmp_path, recorder.client, retries=1, backoff_seconds=0)
    with pytest.raises(ProviderError) as caught:
        run(provider, prompt="a fox", size="512")
    assert caught.value.upstream_status is None and caught.value.retryable
    assert "gemini-remote" in caught.value.message and "could not be reached" in caught.value.message
    assert len(recorder.requests) == 2  # the first try and one retry
