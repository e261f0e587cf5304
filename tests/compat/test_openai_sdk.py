"""The official ``openai`` SDK against a live Plantain server serving the ``tiny`` engine."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input, same_picture


class Server:
    def __init__(self, url: str, app: FastAPI) -> None:
        self.url = url
        self.app = app
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    app = create_app(server_settings())
    with LiveServer(app) as live:
        yield Server(live.url, app)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def encoded(fmt: str, size: tuple[int, int] = (96, 64)) -> bytes:
    return make_input(*size, fmt=fmt).data


# --- generations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "pixels"),
    [
        ("auto", (1024, 1024)),
        ("1536x1024", (1536, 1024)),
        ("1024x1536", (1024, 1536)),
        ("1792x1024", (1792, 1024)),
        ("1024x1792", (1024, 1792)),
        ("512x512", (512, 512)),
        ("672x384", (672, 384)),
    ],
)
def test_generate_makes_the_size_asked_and_echoes_it(
    client: openai.OpenAI, size: Any, pixels: tuple[int, int]
) -> None:
    response = client.images.generate(model="gpt-image-1", prompt="a cat", size=size)
    assert response.data is not None and len(response.data) == 1
    image = decode(response.data[0].b64_json)
    assert (image.format, image.size) == ("PNG", pixels)
    assert response.size == f"{pixels[0]}x{pixels[1]}"
    assert (response.background, response.output_format, response.quality) == ("opaque", "png", "auto")
    assert response.usage is not None and response.created > 0


def test_n_makes_several_different_images(client: openai.OpenAI) -> None:
    response = client.images.generate(prompt="two cats", n=2, size="512x512", quality="low")
    assert response.data is not None and len(response.data) == 2
    first, second = (decode(item.b64_json) for item in response.data)
    assert first.size == second.size == (512, 512)
    assert first.tobytes() != second.tobytes()
    assert response.quality == "low"


@pytest.mark.parametrize(("fmt", "pillow_name"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_format_and_compression(client: openai.OpenAI, fmt: Any, pillow_name: str) -> None:
    def generate(compression: int) -> bytes:
        response = client.images.generate(
            prompt="p",
            size="512x512",
            output_format=fmt,
            output_compression=compression,
            extra_body={"seed": 3},
        )
        assert response.data is not None and response.output_format == fmt
        image = decode(response.data[0].b64_json)
        assert (image.format, image.size) == (pillow_name, (512, 512))
        return base64.b64decode(response.data[0].b64_json or "")

    assert len(generate(10)) < len(generate(95))


def test_url_response_serves_the_same_bytes_as_b64(server: Server, client: openai.OpenAI) -> None:
    as_b64 = client.images.generate(prompt="p", size="512x512", output_format="webp", extra_body={"seed": 11})
    as_url = client.images.generate(
        prompt="p", size="512x512", output_format="webp", response_format="url", extra_body={"seed": 11}
    )
    assert as_b64.data is not None and as_url.data is not None
    url = as_url.data[0].url
    assert url is not None and url.startswith(f"{server.url}/v1/files/")
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/webp"
    # The same picture (two tasks: each file carries its own watermark serial and manifest).
    assert same_picture(fetched.content, base64.b64decode(as_b64.data[0].b64_json or ""))


def test_a_wrong_method_is_a_405_in_the_openai_shape(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/images/generations")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_an_unknown_file_is_a_404_in_the_openai_shape(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/files/no-such-file-id-at-all")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "expired" in response.json()["error"]["message"]


def test_streaming_generate_sends_previews_then_the_image(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            prompt="p", size="512x512", stream=True, partial_images=2, extra_body={"seed": 4}
        )
    )
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials, completed = events[:2], events[2]
    assert [event.partial_image_index for event in partials] == [0, 1]  # type: ignore[union-attr]
    assert completed.size == "512x512" and completed.output_format == "png"
    images = [decode(event.b64_json) for event in events]
    assert [image.size for image in images] == [(512, 512)] * 3
    assert len({image.tobytes() for image in images}) == 3  # the image changes as it denoises
    final = client.images.generate(prompt="p", size="512x512", extra_body={"seed": 4})
    assert final.data is not None and final.data[0].b64_json is not None
    assert same_picture(base64.b64decode(final.data[0].b64_json), base64.b64decode(completed.b64_json or ""))


def test_streaming_without_partial_images_sends_only_the_image(client: openai.OpenAI) -> None:
    events = list(client.images.generate(prompt="p", size="512x512", stream=True))
    assert [event.type for event in events] == ["image_generation.completed"]
    assert decode(events[0].b64_json).size == (512, 512)


def test_the_request_id_reaches_the_sdk(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(prompt="p", size="512x512")
    assert raw.headers["x-request-id"].startswith("req_")


# --- edits ----------------------------------------------------------------------------------


def test_edit_with_one_image_keeps_its_shape(client: openai.OpenAI) -> None:
    response = client.images.edit(model="gpt-image-1", prompt="make it blue", image=encoded("PNG"))
    assert response.data is not None
    assert decode(response.data[0].b64_json).size == (1248, 832)  # 96x64 is 3:2
    assert response.size == "1248x832"


def test_edit_with_three_images_of_three_formats(client: openai.OpenAI) -> None:
    images = [encoded("PNG"), encoded("WEBP", (64, 96)), encoded("JPEG")]
    response = client.images.edit(prompt="combine them", image=images, size="512x512", n=2)
    assert response.data is not None and len(response.data) == 2
    assert decode(response.data[1].b64_json).size == (512, 512)


def test_streaming_edit_sends_a_preview_in_the_asked_format(client: openai.OpenAI) -> None:
    stream = client.images.edit(
        prompt="p", image=encoded("JPEG"), size="512x512", stream=True, partial_images=1, output_format="jpeg"
    )
    events = list(stream)
    assert [event.type for event in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert all(event.output_format == "jpeg" for event in events)
    assert [decode(event.b64_json).format for event in events] == ["JPEG", "JPEG"]
    assert decode(events[1].b64_json).size == (512, 512)


# --- errors ---------------------------------------------------------------------------------


def assert_bad_request(error: pytest.ExceptionInfo[openai.BadRequestError], param: str, text: str) -> None:
    assert error.value.status_code == 400
    assert error.value.param == param
    body: Any = error.value.body
    assert body["type"] == "invalid_request_error" and body["param"] == param
    assert text in body["message"], body["message"]


def test_bad_size(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", size="big")
    assert_bad_request(error, "size", "'big' is not supported; use auto, a size in pixels as WIDTHxHEIGHT")
    assert error.value.code == "invalid_request"


def test_too_many_images_requested(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", n=11)
    assert_bad_request(error, "n", "n: 11 is not allowed; must be between 1 and 10")


def test_a_transparent_background_in_jpeg_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", background="transparent", output_format="jpeg")
    assert_bad_request(error, "background", "needs an output format with an alpha channel, and JPEG has none")


def test_bad_output_format(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", output_format="bmp")  # type: ignore[call-overload]
    assert_bad_request(error, "output_format", "'bmp' is not allowed")


def test_more_input_images_than_the_server_takes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=[encoded("PNG")] * 15)
    assert_bad_request(error, "image", "image: 15 input images is over the limit of 14 per request")
    assert error.value.code == "too_many_images"


def test_a_corrupt_image_is_named(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=[encoded("PNG"), b"not an image", encoded("JPEG")])
    assert_bad_request(error, "image", "image 2 is not a readable image")
    assert error.value.code == "invalid_image"


def test_a_mask_without_alpha_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=encoded("PNG"), mask=encoded("PNG"))
    assert_bad_request(error, "mask", "mask has no alpha channel")


def test_an_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as error:
        client.images.generate(prompt="p", model="dall-e-9")
    assert error.value.status_code == 404
    assert (error.value.param, error.value.code) == ("model", "model_not_found")
    assert "model 'dall-e-9' is not served here; use one of" in error.value.message


def test_malformed_json_is_a_400(server: Server) -> None:
    response = httpx.post(f"{server.url}/v1/images/generations", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "not valid JSON" in response.json()["error"]["message"]


def test_a_broken_engine_run_is_a_500_and_the_server_keeps_serving(
    server: Server, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = server.app.state.scheduler.registry.get("tiny")

    def broken(*args: object) -> None:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(engine, "_generate", broken)
    with pytest.raises(openai.InternalServerError) as error:
        client.images.generate(prompt="p", size="512x512")
    assert error.value.status_code == 500 and error.value.code == "engine_failed"
    assert "out of cheese" in error.value.message
    monkeypatch.undo()
    assert client.images.generate(prompt="p", size="512x512").data is not None


def test_a_run_that_fails_mid_stream_ends_the_stream_with_an_error_event(
    server: Server, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = server.app.state.scheduler.registry.get("tiny")
    generate = engine._generate

    def fails_after_step_2(pipeline: Any, jobs: Any, callback: Any) -> Any:
        def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            result: dict[str, Any] = callback(pipe, step, timestep, tensors)
            if step + 1 == 2:
                raise RuntimeError("out of cheese")
            return result

        return generate(pipeline, jobs, step_end)

    monkeypatch.setattr(engine, "_generate", fails_after_step_2)
    stream = client.images.generate(prompt="p", size="512x512", stream=True, partial_images=1)
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="out of cheese") as error:
        for event in stream:
            seen.append(event.type)
    assert seen == ["image_generation.partial_image"]  # the preview after step 2 came first
    assert error.value.code == "engine_failed"
    monkeypatch.undo()
    assert client.images.generate(prompt="p", size="512x512").data is not None
