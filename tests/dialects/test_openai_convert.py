"""OpenAI dialect conversions, without a server: captured SDK requests -> ImageRequest, sizes,
response and stream shapes, parameter errors."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from plantain.dialects.openai import convert, models
from plantain.dialects.openai.protocol import ImageParams
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidRequestError, TooManyImagesError, UnknownModelError
from plantain.generation import run_request
from plantain.imaging.codecs import encode_image
from plantain.testing import make_input
from plantain.types import GeneratedImage, ImageResult, TokenUsage

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openai"


def load(name: str) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return fixture


def convert_fixture(fixture: dict[str, Any]) -> Any:
    if fixture["endpoint"] == "generations":
        params = convert.parse_json(json.dumps(fixture["request"]).encode())
    else:
        params = convert.parse_params(fixture["request"])
    parts = [(f"{i}.png", make_input().data) for i in range(fixture.get("images", 0))]
    return convert.to_image_request(params, "tiny", convert.input_images(parts))


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_captured_requests_convert_to_the_expected_request(name: str) -> None:
    fixture = load(name)
    if "error" in fixture:
        with pytest.raises(InvalidRequestError) as caught:
            convert_fixture(fixture)
        assert caught.value.field == fixture["error"]["param"]
        assert fixture["error"]["message"] in caught.value.message
        return
    request = convert_fixture(fixture)
    expected = dict(fixture["expected"])
    assert len(request.images) == expected.pop("images")
    assert {key: getattr(request, key) for key in expected} == expected
    assert request.engine == "tiny"


@pytest.mark.parametrize(
    ("size", "chosen"),
    [
        (None, convert.SizeChoice(None, "1K")),
        ("auto", convert.SizeChoice(None, "1K")),
        ("1024x1024", convert.SizeChoice(width=1024, height=1024)),
        ("1536x1024", convert.SizeChoice(width=1536, height=1024)),
        ("1792x1024", convert.SizeChoice(width=1792, height=1024)),
        ("256x256", convert.SizeChoice(width=256, height=256)),
        ("1000x1000", convert.SizeChoice(width=1000, height=1000)),  # the engine refuses it later
        (" 1536 X 1024 ", convert.SizeChoice(width=1536, height=1024)),
        ("16:9", convert.SizeChoice("16:9", "1K")),
    ],
)
def test_a_size_in_pixels_is_exact_and_a_ratio_is_the_tables(
    size: str | None, chosen: convert.SizeChoice
) -> None:
    assert convert.resolve_size(size) == chosen


@pytest.mark.parametrize(
    ("fields", "chosen"),
    [
        ({"aspect_ratio": "16:9"}, convert.SizeChoice("16:9", "1K")),
        ({"aspect_ratio": "auto", "resolution": "2K"}, convert.SizeChoice(None, "2K")),
        ({"size": "4:3", "resolution": "4k"}, convert.SizeChoice("4:3", "4K")),
        ({"size": "16:9", "aspect_ratio": "16:9", "resolution": "0.5K"}, convert.SizeChoice("16:9", "512")),
        ({"size": "1344x768", "aspect_ratio": "16:9"}, convert.SizeChoice(width=1344, height=768)),
        (
            {"size": "1024x1024", "resolution": "2K"},
            convert.SizeChoice(width=1024, height=1024, ignored=("resolution",)),
        ),
    ],
)
def test_gateway_ratios_and_resolutions(fields: dict[str, str], chosen: convert.SizeChoice) -> None:
    assert (
        convert.resolve_size(fields.get("size"), fields.get("aspect_ratio"), fields.get("resolution"))
        == chosen
    )


@pytest.mark.parametrize(
    ("model", "requested", "variation", "answer"),
    [
        ("dall-e-3", None, False, "url"),
        ("dall-e-2", None, False, "url"),
        ("openai/dall-e-3", None, False, "url"),
        ("gpt-image-1", None, False, "b64_json"),
        ("tiny", None, False, "b64_json"),
        (None, None, False, "b64_json"),
        (None, None, True, "url"),
        ("gpt-image-1", None, True, "b64_json"),
        ("dall-e-3", "b64_json", False, "b64_json"),
        ("gpt-image-1", "url", False, "url"),
    ],
)
def test_response_format_defaults_per_model(
    model: str | None, requested: str | None, variation: bool, answer: str
) -> None:
    assert convert.response_format(requested, model, variation=variation) == answer


@pytest.mark.parametrize("size", ["1024", "big", "1024x", "x1024", "1K", "1024*1024"])
def test_other_sizes_are_refused_with_the_accepted_forms(size: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert.resolve_size(size)
    assert caught.value.field == "size"
    assert repr(size) in caught.value.message and "WIDTHxHEIGHT" in caught.value.message


def test_enums_are_case_insensitive_and_form_strings_become_values() -> None:
    params = convert.parse_params(
        {"prompt": "p", "n": "3", "output_format": "JPG", "quality": "HD", "stream": "true", "seed": "7"}
    )
    assert (params.n, params.output_format, params.quality, params.stream, params.seed) == (
        3,
        "jpeg",
        "hd",
        True,
        7,
    )


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({}, "prompt", "prompt is required"),
        ({"prompt": "p", "sizes": "1024x1024"}, "sizes", "sizes is not a known parameter"),
        ({"prompt": "p", "output_format": "bmp"}, "output_format", "'bmp' is not allowed"),
        ({"prompt": "p", "output_compression": "101"}, "output_compression", "between 0 and 100"),
        ({"prompt": "p", "partial_images": "4"}, "partial_images", "between 0 and 3"),
        ({"prompt": "p", "n": "two"}, "n", "'two' is not allowed"),
    ],
)
def test_bad_parameters_name_the_parameter_and_the_value(
    fields: dict[str, str], param: str, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert.parse_params(fields)
    assert caught.value.field == param
    assert message in caught.value.message


def test_core_errors_are_renamed_to_openai_parameters() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert.to_image_request(ImageParams(prompt="p", n=11), "tiny")
    assert (caught.value.field, caught.value.message) == (
        "n",
        "n: 11 is not allowed; must be between 1 and 10",
    )
    renamed = TooManyImagesError("engine tiny takes at most 14", field="images").renamed(convert.PARAM_NAMES)
    assert renamed.field == "image"


def test_errors_of_later_checks_name_openai_parameters_in_the_envelope() -> None:
    from plantain.dialects.openai import errors

    status, body = errors.error_body(TooManyImagesError("engine tiny takes at most 14", field="images"))
    assert (status, body["error"]["param"], body["error"]["code"]) == (400, "image", "too_many_images")


def test_malformed_json_is_a_request_error() -> None:
    for body in (b"{nope", b"[1, 2]"):
        with pytest.raises(InvalidRequestError):
            convert.parse_json(body)


def test_input_images_are_labelled_by_position_and_real_file_name() -> None:
    data = make_input().data
    assert [image.label for image in convert.input_images([("upload", data)])] == ["image"]
    labels = [image.label for image in convert.input_images([("upload", data), ("b.png", data)])]
    assert labels == ["image 1", "image 2 (b.png)"]


def result_of(width: int = 96, height: int = 64, count: int = 1) -> ImageResult:
    data = encode_image(Image.new("RGB", (width, height), (10, 20, 30)), "png")
    image = GeneratedImage(data=data, media_type="image/png", width=width, height=height, seed=5)
    return ImageResult(engine="tiny", images=(image,) * count, steps=4, guidance=1.0, seconds=0.1)


def test_response_body_has_the_shape_the_sdk_parses() -> None:
    result = result_of(count=2)
    counted = TokenUsage(input=12, output=2580, total=2592, input_text=12, input_image=0)
    body = convert.response_body(
        result, ImageParams(prompt="p", quality="high"), created=123, counted=counted
    )
    assert body["created"] == 123
    assert [set(item) for item in body["data"]] == [{"b64_json", "revised_prompt", "seed"}] * 2
    assert [item["seed"] for item in body["data"]] == [image.seed for image in result.images]
    assert base64.b64decode(body["data"][0]["b64_json"]) == result.images[0].data
    echoed = {key: body[key] for key in ("background", "output_format", "quality", "size")}
    assert echoed == {"background": "opaque", "output_format": "png", "quality": "high", "size": "96x64"}
    assert body["usage"] == {
        "input_tokens": 12,
        "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
        "output_tokens": 2580,
        "output_tokens_details": {"image_tokens": 2580, "text_tokens": 0},
        "total_tokens": 2592,
    }
    urls = ["http://x/1", "http://x/2"]
    with_urls = convert.response_body(result, ImageParams(prompt="p"), 1, urls, counted=counted)
    second = {"url": "http://x/2", "revised_prompt": None, "seed": result.images[1].seed}
    assert with_urls["data"][1] == second


def test_stream_events_are_one_completed_event_per_image() -> None:
    events = convert.stream_events(
        result_of(count=2), ImageParams(prompt="p"), 9, "image_edit", counted=TokenUsage()
    )
    assert len(events) == 2
    head, data = events[0].removesuffix("\n\n").split("\n")
    assert head == "event: image_edit.completed"
    payload = json.loads(data.removeprefix("data: "))
    assert payload["type"] == "image_edit.completed" and payload["created_at"] == 9
    assert set(payload) == {
        "type", "b64_json", "seed", "created_at", "size", "quality", "background", "output_format", "usage"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint", "model"),
    [("image_generation", "ImageGenPartialImageEvent"), ("image_edit", "ImageEditPartialImageEvent")],
)
def test_partial_events_parse_as_the_sdks_event_models(endpoint: convert.Endpoint, model: str) -> None:
    import openai.types

    preview = result_of(count=1).images[0]
    event = convert.partial_event(preview, 2, ImageParams(prompt="p", quality="low"), 9, endpoint)
    head, data = event.removesuffix("\n\n").split("\n")
    assert head == f"event: {endpoint}.partial_image"
    parsed = getattr(openai.types, model).model_validate_json(
        data.removeprefix("data: ")
    )  # all fields required
    assert (parsed.partial_image_index, parsed.quality, parsed.size) == (2, "low", "96x64")
    assert base64.b64decode(parsed.b64_json) == preview.data


def test_output_compression_is_the_cores_jpeg_webp_quality(registry: EngineRegistry) -> None:
    params = ImageParams(prompt="p", size="512x512", output_format="jpeg", output_compression=10, seed=4)
    request = convert.to_image_request(params, "tiny")
    assert (request.output_format, request.output_quality) == ("jpeg", 10)  # encoded once, by the core
    small = run_request(request, registry.get("tiny")).images[0]
    large = run_request(request.model_copy(update={"output_quality": 95}), registry.get("tiny")).images[0]
    assert small.media_type == "image/jpeg" and Image.open(io.BytesIO(small.data)).format == "JPEG"
    assert len(small.data) < len(large.data)
    plain = convert.to_image_request(ImageParams(prompt="p", output_format="webp"), "tiny")
    assert (plain.output_format, plain.output_quality) == ("webp", None)


def test_model_list_and_model_lookup(registry: EngineRegistry) -> None:
    provenance = {"watermark": {"applied": True}}
    body = models.models_body(registry, provenance)
    assert body["object"] == "list"
    ids = [model["id"] for model in body["data"]]
    assert "gpt-image-1" in ids and "tiny" in ids
    assert models.model_body(registry, "tiny", provenance) == {
        "id": "tiny",
        "object": "model",
        "created": 0,
        "owned_by": "plantain",
        "provenance": provenance,
    }
    with pytest.raises(UnknownModelError):
        models.model_body(registry, "nope", provenance)


def test_a_size_past_any_engine_is_refused_naming_size() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert.to_image_request(ImageParams(prompt="p", size="100000x1024"), "tiny")
    assert (caught.value.field, caught.value.message) == (
        "size",
        "size: 100000 is not allowed; must be between 1 and 65536",
    )
