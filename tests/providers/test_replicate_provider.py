"""The Replicate provider against a small Replicate predictions API on a real port
(``replicate_server.py``): create with ``Prefer: wait``, poll what is not finished, fetch the
output, and tell a refusal from what a retry may fix."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from tests.providers.replicate_server import ReplicateServer

from plantain.errors import ProviderError
from plantain.generation import prepare
from plantain.providers.base import origin_of, served_by
from plantain.providers.replicate import ReplicateEngine
from plantain.settings import Settings
from plantain.settings.providers import ProviderConfig
from plantain.testing import make_input
from plantain.types import ImageRequest

KEY = "r8_test_key"
MODEL = "google/nano-banana"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


class Sleeps:
    """An injected sleep that records each wait and really waits (the retry policy's deadline is
    the real clock's)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


def engine(
    server: ReplicateServer, tmp_path: Path, client: httpx.Client, sleep: Any = None, **config: Any
) -> ReplicateEngine:
    fields: dict[str, Any] = {"kind": "replicate", "model": MODEL, "base_url": server.base, "api_key": KEY}
    return ReplicateEngine(
        "replicate-remote",
        Settings(data_dir=tmp_path),
        ProviderConfig(**{**fields, **config}),
        client=client,
        sleep=sleep or (lambda seconds: None),
    )


def run(provider: ReplicateEngine, **fields: Any) -> list[Image.Image]:
    return provider.run([prepare(ImageRequest.create(**fields), provider)])[0]


def test_a_waited_prediction_is_one_request_and_its_output_is_fetched(
    tmp_path: Path, client: httpx.Client
) -> None:
    with ReplicateServer() as server:
        [image] = run(engine(server, tmp_path, client), prompt="a fox", aspect_ratio="16:9", seed=9)
    create, fetch = server.requests
    assert create.path == f"/v1/models/{MODEL}/predictions" and fetch.path == "/files/pred0001.png"
    assert create.headers["authorization"] == f"Bearer {KEY}"
    assert create.headers["prefer"] == "wait=60"  # timeout_seconds 120: the most Replicate allows
    assert create.body == {
        "input": {"prompt": "a fox", "aspect_ratio": "16:9", "output_format": "png", "seed": 9}
    }
    assert "authorization" not in fetch.headers  # output URLs are public; the key stays with the API
    origin = origin_of(image)
    assert origin is not None and (origin.engine, origin.kind) == ("replicate-remote", "replicate")
    assert origin.data == server.files["pred0001.png"] and origin.media_type == "image/png"
    assert image.size == (113, 64) and served_by(image) == "replicate-remote"


def test_an_unfinished_prediction_is_polled_until_it_succeeds(tmp_path: Path, client: httpx.Client) -> None:
    waits: list[float] = []
    with ReplicateServer(mode="poll", polls=3) as server:
        [image] = run(engine(server, tmp_path, client, sleep=waits.append), prompt="a fox", seed=1)
    paths = [(request.method, request.path) for request in server.requests]
    assert paths == [
        ("POST", f"/v1/models/{MODEL}/predictions"),
        *[("GET", "/v1/predictions/pred0001")] * 3,
        ("GET", "/files/pred0001.png"),
    ]
    assert all(request.headers["authorization"] == f"Bearer {KEY}" for request in server.requests[:4])
    assert waits == [0.5, 0.5, 0.5]  # one short sleep before each poll
    origin = origin_of(image)
    assert origin is not None and origin.data == server.files["pred0001.png"]


def test_each_seed_is_a_prediction(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer() as server:
        first, second = run(engine(server, tmp_path, client), prompt="a fox", num_images=2, seed=20)
        again = run(engine(server, tmp_path, client), prompt="a fox", seed=21)[0]
    assert [create.body["input"]["seed"] for create in server.creates()] == [20, 21, 21]
    assert first.getpixel((0, 0)) != second.getpixel((0, 0)) == again.getpixel((0, 0))


def test_an_edit_sends_its_inputs_as_data_uris_and_matches_their_shape(
    tmp_path: Path, client: httpx.Client
) -> None:
    source = make_input(96, 64, color=(10, 200, 30))
    with ReplicateServer() as server:
        [image] = run(engine(server, tmp_path, client), prompt="make it blue", images=(source,), seed=2)
    sent = server.creates()[0].body["input"]
    assert sent["aspect_ratio"] == "match_input_image"
    [uri] = sent["image_input"]
    assert uri.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert (decoded.format, decoded.size, decoded.getpixel((0, 0))) == ("PNG", (96, 64), (10, 200, 30))
    assert image.size == (96, 64)  # the server matched the input


def test_jpeg_is_asked_as_jpg(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer() as server:
        [image] = run(engine(server, tmp_path, client), prompt="a fox", output_format="jpeg", size="2K")
    sent = server.creates()[0].body["input"]
    assert (sent["output_format"], sent["resolution"]) == ("jpg", "2K")
    origin = origin_of(image)
    assert origin is not None and origin.media_type == "image/jpeg" and origin.data[:2] == b"\xff\xd8"


def test_a_rate_limit_is_waited_out_as_retry_after_says(
    tmp_path: Path, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    with ReplicateServer(rate_limited=1, retry_after="1") as server:
        provider = engine(server, tmp_path, client, sleep=sleeps, retries=2, backoff_seconds=0)
        with caplog.at_level(logging.WARNING):
            [image] = run(provider, prompt="a fox")
    assert len(server.creates()) == 2
    assert 0.9 <= sum(sleeps.waits) <= 1.2  # Retry-After: 1, not the (zero) backoff
    assert "trying again in 1.00 s" in caplog.text and "Request was throttled" in caplog.text
    assert origin_of(image) is not None


def test_rate_limited_past_the_retries_is_a_retryable_error(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer(rate_limited=5, retry_after="0") as server:
        provider = engine(server, tmp_path, client, retries=1)
        with pytest.raises(ProviderError) as caught:
            run(provider, prompt="a fox")
    assert caught.value.upstream_status == 429 and caught.value.retryable and caught.value.retry_after == 0
    assert len(server.creates()) == 2


def test_a_bad_key_is_a_refusal_with_the_problem_detail(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer() as server, pytest.raises(ProviderError) as caught:
        run(engine(server, tmp_path, client, api_key="r8_wrong"), prompt="a fox")
    assert caught.value.upstream_status == 401 and not caught.value.retryable
    assert "replicate-remote" in caught.value.message
    assert "You did not pass a valid authentication token" in caught.value.message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (
            "The input or output was flagged as sensitive. Please try again with different inputs. (E005)",
            False,
        ),
        ("Prediction failed: the model crashed", False),
        ("Prediction interrupted; please retry (code: PA)", True),
    ],
)
def test_a_failed_prediction(tmp_path: Path, client: httpx.Client, error: str, retryable: bool) -> None:
    with ReplicateServer(fail_with=error) as server, pytest.raises(ProviderError) as caught:
        run(engine(server, tmp_path, client, retries=0), prompt="a fox")
    assert caught.value.retryable is retryable
    assert "replicate-remote" in caught.value.message and "failed" in caught.value.message
    assert error in caught.value.message


def test_a_prediction_past_the_timeout_is_cancelled(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer(mode="stuck") as server:
        provider = engine(server, tmp_path, client, sleep=time.sleep, timeout_seconds=1, retries=0)
        with pytest.raises(ProviderError) as caught:
            run(provider, prompt="a fox")
        assert server.predictions["pred0001"]["status"] == "canceled"
    assert caught.value.upstream_status is None and caught.value.retryable
    assert "within 1 s" in caught.value.message
    assert server.creates()[0].headers["prefer"] == "wait=1"
    assert server.requests[-1].path == "/v1/predictions/pred0001/cancel"


def test_a_versioned_model_creates_through_predictions(tmp_path: Path, client: httpx.Client) -> None:
    with ReplicateServer() as server:
        provider = engine(server, tmp_path, client, model="google/nano-banana:abc123")
        with pytest.raises(ProviderError) as caught:  # this small server serves models by name only
            run(provider, prompt="a fox")
    assert server.requests[0].path == "/v1/predictions"
    assert server.requests[0].body["version"] == "abc123"
    assert caught.value.upstream_status == 404


def test_a_data_uri_output_is_decoded(tmp_path: Path, client: httpx.Client) -> None:
    png = make_input(8, 8).data
    with ReplicateServer() as server:
        provider = engine(server, tmp_path, client)
        prediction = {
            "id": "p",
            "status": "succeeded",
            "output": ["data:image/png;base64," + base64.b64encode(png).decode()],
        }
        assert provider._output(prediction).data == png
