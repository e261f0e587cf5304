"""The OpenAI Images provider against another Plantain server on a real port: a faithful OpenAI
Images API (generations as JSON, edits as multipart), watermarking and signing what it makes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.providers.recording import Recorder

from plantain.errors import ProviderError
from plantain.generation import prepare
from plantain.provenance.manifests import read_credentials
from plantain.providers.base import RemoteJob, origin_of
from plantain.providers.openai import OpenAIEngine
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.settings.providers import ProviderConfig
from plantain.testing import FileHost, LiveServer, free_port, make_input, same_picture
from plantain.types import ImageRequest

KEY = "remote-key"


@pytest.fixture(scope="module")
def remote(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as live:
        yield f"{live.wait_ready()}/v1"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.client.close()


def engine(base_url: str, tmp_path: Path, client: httpx.Client, **config: Any) -> OpenAIEngine:
    fields: dict[str, Any] = {"kind": "openai", "model": "gpt-image-1", "base_url": base_url, "api_key": KEY}
    return OpenAIEngine(
        "openai-remote",
        Settings(data_dir=tmp_path),
        ProviderConfig(**{**fields, **config}),
        client=client,
        sleep=lambda seconds: None,
    )


def run(provider: OpenAIEngine, **fields: Any) -> list[Image.Image]:
    """``fields`` run as OpenAI's quality "low" (half the tiny engine's steps: these sizes are large)."""
    request = ImageRequest.create(**{"options": {"steps_scale": 0.5}, **fields})
    return provider.run([prepare(request, provider)])[0]


def test_generates_the_nearest_openai_size_and_keeps_the_remotes_bytes(
    remote: str, tmp_path: Path, recorder: Recorder
) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    first, second = run(provider, prompt="a lighthouse", aspect_ratio="16:9", num_images=2, seed=11)
    [sent] = recorder.sent
    assert str(recorder.requests[0].url) == f"{remote}/images/generations"
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert sent == {
        "model": "gpt-image-1",
        "prompt": "a lighthouse",
        "n": 2,
        "size": "1536x1024",  # 16:9 is nearest OpenAI's landscape size
        "quality": "low",  # the steps scale Plantain's own dialect makes of it, sent back
        "output_format": "png",
        "seed": 11,  # not api.openai.com: the Plantain extension goes too
    }
    assert first.size == second.size == (1536, 1024)
    for image, item in zip((first, second), recorder.answers[0]["data"], strict=True):
        origin = origin_of(image)
        assert origin is not None and (origin.engine, origin.kind) == ("openai-remote", "openai")
        assert origin.data == base64.b64decode(item["b64_json"])  # exactly the remote's bytes
        assert origin.media_type == "image/png"
        assert read_credentials(origin.data).state != "absent"  # signed by the remote
    again = run(provider, prompt="a lighthouse", aspect_ratio="16:9", seed=12)[0]
    data = [origin.data for origin in map(origin_of, (first, second, again)) if origin is not None]
    assert same_picture(data[1], data[2]) and not same_picture(data[0], data[1])


def test_asks_for_the_output_format(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    [image] = run(provider, prompt="a fox", output_format="jpeg", output_quality=80, seed=1)
    assert recorder.sent[0]["output_format"] == "jpeg" and recorder.sent[0]["output_compression"] == 80
    origin = origin_of(image)
    assert origin is not None and origin.media_type == "image/jpeg" and origin.data[:2] == b"\xff\xd8"
    assert read_credentials(origin.data).state != "absent"


def test_edits_send_the_inputs_as_a_form(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    provider = engine(remote, tmp_path, recorder.client)
    inputs = (make_input(96, 64, color=(10, 200, 30)), make_input(96, 64, color=(0, 0, 200)))
    [image] = run(provider, prompt="combine them", images=inputs, seed=5)
    [request] = recorder.requests
    assert str(request.url) == f"{remote}/images/edits"
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.content
    assert body.count(b'name="image[]"') == 2 and body.count(b"\x89PNG") == 2
    for name, value in {"model": "gpt-image-1", "n": "1", "size": "1536x1024", "seed": "5"}.items():
        assert f'name="{name}"\r\n\r\n{value}\r\n'.encode() in body
    assert image.size == (1536, 1024)  # the inputs' 3:2, nearest OpenAI's landscape size
    origin = origin_of(image)
    assert origin is not None and read_credentials(origin.data).state != "absent"


@pytest.mark.parametrize(("key", "status"), [("wrong", 403), (None, 401)])
def test_a_refused_key_is_not_retried(
    remote: str, tmp_path: Path, recorder: Recorder, key: str | None, status: int
) -> None:
    provider = engine(remote, tmp_path, recorder.client, api_key=key, retries=2)
    with pytest.raises(ProviderError) as caught:
        run(provider, prompt="a fox")
    assert caught.value.upstream_status == status and not caught.value.retryable
    assert "openai-remote" in caught.value.message and str(status) in caught.value.message
    assert len(recorder.requests) == 1


def test_no_answer_is_retried_then_fails_as_retryable(tmp_path: Path, recorder: Recorder) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}/v1"
    provider = engine(unreachable, tmp_path, recorder.client, retries=1, backoff_seconds=0)
    with pytest.raises(ProviderError) as caught:
        run(provider, prompt="a fox")
    assert caught.value.upstream_status is None and caught.value.retryable
    assert "openai-remote" in caught.value.message
    assert len(recorder.requests) == 2  # the first try and one retry


def test_openais_own_api_gets_no_seed_and_dall_e_its_own_fields(tmp_path: Path, recorder: Recorder) -> None:
    hosted = engine("https://api.openai.com/v1", tmp_path, recorder.client)
    request = ImageRequest.create(prompt="a fox", background="transparent", seed=3)
    job = prepare(request, hosted)
    assert isinstance(job, RemoteJob) and job.request is not None
    assert hosted.fields(job, job.request) == {
        "model": "gpt-image-1",
        "prompt": "a fox",  # the caller's prompt, not the one steered for keying out
        "n": 1,
        "size": "1024x1024",
        "output_format": "png",
        "background": "transparent",
    }
    dall_e = engine("https://api.openai.com/v1", tmp_path, recorder.client, model="dall-e-3")
    fields = dall_e.fields(job, ImageRequest.create(prompt="a fox"))
    assert fields == {
        "model": "dall-e-3",
        "prompt": "a fox",
        "n": 1,
        "size": "1024x1024",
        "response_format": "b64_json",
    }


@pytest.mark.parametrize(
    ("model", "planned", "sent"),
    [
        ("gpt-image-1", (1024, 1024), (1024, 1024)),
        ("gpt-image-1", (1344, 768), (1536, 1024)),
        ("gpt-image-1", (864, 1184), (1024, 1536)),
        ("gpt-image-1", (1152, 896), (1536, 1024)),  # 5:4 is nearer 3:2 than square (in log ratio)
        ("gpt-image-1", (1536, 1024), (1536, 1024)),
        ("dall-e-3", (1344, 768), (1792, 1024)),
        ("dall-e-2", (1344, 768), (1024, 1024)),
    ],
)
def test_sizes_map_to_the_models_own(
    tmp_path: Path, recorder: Recorder, model: str, planned: tuple[int, int], sent: tuple[int, int]
) -> None:
    assert (
        engine("https://api.openai.com/v1", tmp_path, recorder.client, model=model).size_for(*planned) == sent
    )


def test_a_url_answer_is_fetched(tmp_path: Path, recorder: Recorder) -> None:
    provider = engine("https://api.openai.com/v1", tmp_path, recorder.client)
    png, jpeg = make_input(64, 64).data, make_input(64, 64, fmt="JPEG").data
    with FileHost() as host:
        host.files["out.jpg"] = jpeg
        answer = {"data": [{"b64_json": base64.b64encode(png).decode()}, {"url": f"{host.base}/out.jpg"}]}
        first, second = provider.images_of(answer)
    assert (first.data, second.data) == (png, jpeg)
    with pytest.raises(ProviderError, match="answered no images"):
        provider.images_of({"data": []})


def test_dall_e_3_makes_one_image_a_call(remote: str, tmp_path: Path, recorder: Recorder) -> None:
    provider = engine(remote, tmp_path, recorder.client, model="dall-e-3")
    first, second = run(provider, prompt="a fox", num_images=2, seed=30)
    assert [(body["n"], body["seed"], body["response_format"]) for body in recorder.sent] == [
        (1, 30, "b64_json"),
        (1, 31, "b64_json"),
    ]
    assert first.size == second.size == (1024, 1024)
    assert all(origin_of(image) is not None for image in (first, second))
