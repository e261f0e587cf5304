"""The OpenAI dialect's sizes, response formats and variations through the official ``openai`` SDK
against a live server on the ``tiny`` engine (16-pixel multiple, 64-pixel minimum side, 8:1 at
most, about 18.9 megapixels): an exact ``size`` is made as it is or refused naming its limit;
ratios and tiers (``aspect_ratio``, ``resolution``, ``size="16:9"``) are the Gemini table's;
dall-e models answer with URLs by default; ``/v1/images/variations`` is an edit without a prompt."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from plantain.dialects.openai.convert import VARIATION_PROMPT
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input, same_picture

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # create_variation


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    with LiveServer(create_app(server_settings())) as live:
        yield Server(live.url)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def fetch(url: str | None) -> Image.Image:
    assert url is not None
    response = httpx.get(url)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def png(size: tuple[int, int] = (96, 96)) -> bytes:
    return make_input(*size, fmt="PNG").data


def refused(error: pytest.ExceptionInfo[openai.BadRequestError], param: str, *texts: str) -> str:
    assert error.value.status_code == 400
    body: Any = error.value.body
    assert (body["type"], body["param"], error.value.param) == ("invalid_request_error", param, param)
    for text in texts:
        assert text in body["message"], body["message"]
    message: str = body["message"]
    return message


def still_serving(client: openai.OpenAI) -> None:
    response = client.images.generate(model="gpt-image-1", prompt="p", size="256x256")
    assert response.data is not None and decode(response.data[0].b64_json).size == (256, 256)


# --- response_format ------------------------------------------------------------------------


def test_the_dall_e_3_quickstart_reads_a_url(server: Server, client: openai.OpenAI) -> None:
    response = client.images.generate(model="dall-e-3", prompt="a white siamese cat", size="1024x1024", n=1)
    assert response.data is not None
    item = response.data[0]
    assert item.b64_json is None and item.url is not None
    assert item.url.startswith(f"{server.url}/v1/files/")
    assert fetch(item.url).size == (1024, 1024)


@pytest.mark.parametrize("size", ["256x256", "512x512", "1024x1024"])
def test_dall_e_2_sizes_are_made_exactly_and_answered_as_urls(client: openai.OpenAI, size: Any) -> None:
    response = client.images.generate(model="dall-e-2", prompt="p", size=size)
    assert response.data is not None
    width, height = (int(side) for side in size.split("x"))
    assert fetch(response.data[0].url).size == (width, height)
    assert response.size == size


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1.5", "tiny", None])
def test_gpt_image_models_engines_and_the_default_answer_base64(
    client: openai.OpenAI, model: str | None
) -> None:
    kwargs: dict[str, Any] = {"model": model} if model else {}
    response = client.images.generate(prompt="p", size="256x256", **kwargs)
    assert response.data is not None
    assert response.data[0].url is None and decode(response.data[0].b64_json).size == (256, 256)


def test_an_explicit_response_format_wins_for_every_model(client: openai.OpenAI) -> None:
    as_b64 = client.images.generate(model="dall-e-3", prompt="p", size="256x256", response_format="b64_json")
    assert as_b64.data is not None and as_b64.data[0].url is None
    assert decode(as_b64.data[0].b64_json).size == (256, 256)
    as_url = client.images.generate(model="gpt-image-1", prompt="p", size="256x256", response_format="url")
    assert as_url.data is not None and as_url.data[0].b64_json is None
    assert fetch(as_url.data[0].url).size == (256, 256)


def test_a_dall_e_edit_answers_a_url(client: openai.OpenAI) -> None:
    response = client.images.edit(model="dall-e-2", prompt="p", image=png(), size="512x512")
    assert response.data is not None and fetch(response.data[0].url).size == (512, 512)


def test_a_bad_response_format_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", response_format="jpeg")  # type: ignore[arg-type]
    refused(error, "response_format", "'jpeg'")


# --- exact sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["1536x1024", "1024x1536", "768x432", "64x512", "400x304"])
def test_a_size_in_pixels_is_made_exactly(client: openai.OpenAI, size: str) -> None:
    response = client.images.generate(model="gpt-image-1", prompt="p", size=size)
    assert response.data is not None
    width, height = (int(side) for side in size.split("x"))
    assert decode(response.data[0].b64_json).size == (width, height)
    assert response.size == size


def test_an_edit_makes_the_exact_size_asked(client: openai.OpenAI) -> None:
    response = client.images.edit(prompt="p", image=png((96, 64)), size="512x768", n=2)
    assert response.data is not None and len(response.data) == 2
    assert {decode(item.b64_json).size for item in response.data} == {(512, 768)}


@pytest.mark.parametrize(
    ("size", "texts"),
    [
        ("1000x1000", ("size 1000x1000", "multiples of 16 pixels", "992x992")),
        ("1536x1030", ("size 1536x1030", "multiples of 16 pixels")),
        ("8192x4096", ("size 8192x4096", "at most 18.9 megapixels", "33.6 megapixels")),
        ("48x48", ("size 48x48", "at least 64 pixels per side")),
        ("64x1024", ("size 64x1024", "aspect ratios up to 8:1", "16:1")),
        ("0x1024", ("'0x1024'", "zero side")),
    ],
)
def test_a_size_the_engine_cannot_make_is_refused_naming_its_limit(
    client: openai.OpenAI, size: str, texts: tuple[str, ...]
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", size=size)
    refused(error, "size", *texts)
    still_serving(client)


def test_an_edit_at_a_size_the_engine_cannot_make_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=png(), size="1000x1000")
    refused(error, "size", "multiples of 16 pixels")
    assert error.value.code == "unsupported_size"
    still_serving(client)


def test_the_servers_pixel_cap_refuses_an_exact_size(server_settings: Callable[..., Settings]) -> None:
    with LiveServer(create_app(server_settings(max_output_pixels=512 * 512))) as live:
        client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as error:
            client.images.generate(prompt="p", size="1024x1024")
        refused(error, "size", "this server (max_output_pixels) makes at most 0.3 megapixels", "1024x1024")
        assert client.images.generate(prompt="p", size="512x512").data is not None


# --- ratios and tiers (Lumenfall-style extras) ----------------------------------------------


@pytest.mark.parametrize(
    ("extra", "pixels"),
    [
        ({"size": "16:9"}, (1344, 768)),
        ({"aspect_ratio": "16:9", "resolution": "512"}, (672, 384)),
        ({"aspect_ratio": "9:16", "resolution": "512"}, (384, 672)),
        ({"size": "1:1", "resolution": "0.5k"}, (512, 512)),
        ({"size": "4:3", "aspect_ratio": "4:3", "resolution": "512"}, (592, 432)),
        ({"size": "auto", "aspect_ratio": "21:9", "resolution": "512"}, (768, 336)),
        ({"size": "1344x768", "aspect_ratio": "16:9"}, (1344, 768)),  # the table's own 16:9
    ],
)
def test_ratios_and_resolutions_give_the_gemini_table(
    client: openai.OpenAI, extra: dict[str, str], pixels: tuple[int, int]
) -> None:
    response = client.images.generate(prompt="p", extra_body=extra)
    assert response.data is not None and decode(response.data[0].b64_json).size == pixels
    assert response.size == f"{pixels[0]}x{pixels[1]}"


def test_an_edit_takes_a_ratio_and_a_resolution(client: openai.OpenAI) -> None:
    response = client.images.edit(
        prompt="p", image=png(), extra_body={"aspect_ratio": "16:9", "resolution": "512"}
    )
    assert response.data is not None and decode(response.data[0].b64_json).size == (672, 384)
    in_size = client.images.edit(
        prompt="p",
        image=png(),
        size="9:16",
        extra_body={"resolution": "512"},  # type: ignore[arg-type]
    )
    assert in_size.data is not None and decode(in_size.data[0].b64_json).size == (384, 672)


def test_an_exact_size_overrides_resolution_and_says_so(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        prompt="p", size="768x512", extra_body={"resolution": "4K"}
    )
    assert raw.headers["x-plantain-ignored-parameters"] == "resolution"
    response = raw.parse()
    assert response.data is not None and decode(response.data[0].b64_json).size == (768, 512)


@pytest.mark.parametrize(
    ("extra", "param", "texts"),
    [
        (
            {"size": "1536x1024", "aspect_ratio": "16:9"},
            "size",
            ("'1536x1024' is 3:2", "aspect_ratio '16:9'"),
        ),
        ({"size": "16:9", "aspect_ratio": "1:1"}, "size", ("size '16:9' is 16:9", "aspect_ratio '1:1'")),
        ({"aspect_ratio": "7:3"}, "aspect_ratio", ("'7:3' is not a supported aspect ratio", "16:9")),
        ({"size": "7:3"}, "size", ("'7:3' is not a supported aspect ratio",)),
        ({"resolution": "8K"}, "resolution", ("'8K' is not supported", "512, 1K, 2K, 4K")),
    ],
)
def test_conflicting_or_unknown_ratios_and_resolutions_are_refused(
    client: openai.OpenAI, extra: dict[str, str], param: str, texts: tuple[str, ...]
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.generate(prompt="p", extra_body=extra)
    refused(error, param, *texts)
    still_serving(client)


def test_a_conflict_is_refused_on_edits_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=png(), size="1024x1024", extra_body={"aspect_ratio": "16:9"})
    refused(error, "size", "aspect_ratio '16:9'")


# --- variations -----------------------------------------------------------------------------


def test_a_variation_is_a_url_by_default_at_the_size_asked(client: openai.OpenAI) -> None:
    response = client.images.create_variation(image=png(), n=2, size="256x256")  # model: dall-e-2's
    assert response.data is not None and len(response.data) == 2
    assert [fetch(item.url).size for item in response.data] == [(256, 256), (256, 256)]


def test_a_variation_keeps_the_images_shape_and_answers_base64_when_asked(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.create_variation(
        image=("a.png", png((96, 64)), "image/png"), model="dall-e-2", response_format="b64_json"
    )
    response = raw.parse()
    assert response.data is not None and decode(response.data[0].b64_json).size == (1248, 832)
    assert response.data[0].url is None
    assert "x-plantain-seeds" in raw.headers


def test_a_variation_is_reproducible_with_a_seed_and_is_an_edit_with_the_neutral_prompt(
    client: openai.OpenAI,
) -> None:
    image = png()
    variation = client.images.create_variation(
        image=image, size="256x256", response_format="b64_json", extra_body={"seed": 5}
    )
    edit = client.images.edit(prompt=VARIATION_PROMPT, image=image, size="256x256", extra_body={"seed": 5})
    assert variation.data is not None and edit.data is not None
    # The same picture (two tasks: each file carries its own watermark serial and manifest).
    assert same_picture(
        *(base64.b64decode(item.b64_json or "") for item in (variation.data[0], edit.data[0]))
    )


def test_a_variation_refuses_a_prompt_and_a_bad_size(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.create_variation(image=png(), extra_body={"prompt": "a dog"})
    refused(error, "prompt", "prompt is not a parameter of /v1/images/variations")
    with pytest.raises(openai.BadRequestError) as bad_size:
        client.images.create_variation(image=png(), size="1000x1000")
    refused(bad_size, "size", "multiples of 16 pixels")
    with pytest.raises(openai.BadRequestError) as bad_n:
        client.images.create_variation(image=png(), n=11)
    refused(bad_n, "n", "between 1 and 10")
    still_serving(client)


def test_a_variation_needs_exactly_one_image(server: Server, client: openai.OpenAI) -> None:
    response = httpx.post(f"{server.url}/v1/images/variations", files={"n": (None, "1")})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
    assert "exactly one image" in response.json()["error"]["message"]
    two = httpx.post(
        f"{server.url}/v1/images/variations",
        files=[("image", ("a.png", png(), "image/png")), ("image", ("b.png", png(), "image/png"))],
    )
    assert two.status_code == 400 and "got 2" in two.json()["error"]["message"]
    still_serving(client)


# --- mask -----------------------------------------------------------------------------------


def test_a_mask_without_alpha_is_refused_saying_what_it_lacks(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=png(), mask=png(), model="gpt-image-1")
    refused(error, "mask", "mask has no alpha channel (PNG mode RGB)", "fully transparent pixels")
    still_serving(client)


def test_a_variation_refuses_a_mask_as_no_parameter_of_it(server: Server, client: openai.OpenAI) -> None:
    response = httpx.post(
        f"{server.url}/v1/images/variations",
        files=[("image", ("a.png", png(), "image/png")), ("mask", ("m.png", png(), "image/png"))],
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "mask"
    assert "mask is not a parameter of /v1/images/variations" in response.json()["error"]["message"]
    still_serving(client)
