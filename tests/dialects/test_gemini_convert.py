"""Gemini request/response conversion: golden bodies in, core requests out, and back."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from plantain.dialects.gemini import batch_convert, convert, render
from plantain.engines.registry import EngineRegistry
from plantain.errors import InvalidImageError, InvalidRequestError, UnknownModelError
from plantain.settings import Settings
from plantain.testing import make_input
from plantain.types import GeneratedImage, ImageRequest, ImageResult

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
PNG = make_input(40, 20).data


def convert_body(body: dict[str, Any], engine: str = "tiny") -> ImageRequest:
    return convert.to_image_request(convert.parse_request(json.dumps(body).encode()), engine=engine)


def edit_body(**config: Any) -> dict[str, Any]:
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}
    return {"contents": [{"role": "user", "parts": [image, {"text": "a hat"}]}], "generationConfig": config}


@pytest.mark.parametrize("name", ["edit_captured", "chat_thoughts"])
def test_golden_requests_convert_to_the_expected_core_request(name: str) -> None:
    fixture = json.loads((FIXTURES / f"{name}.json").read_text())
    request = convert_body(fixture["request"])
    expected = fixture["expected"]
    fields = ("prompt", "aspect_ratio", "size", "num_images", "seed", "output_format")
    assert {field: getattr(request, field) for field in fields} == {
        field: expected[field] for field in fields
    }
    assert request.engine == "tiny"
    got = []
    for image in request.images:
        width, height = Image.open(io.BytesIO(image.data)).size
        got.append({"label": image.label, "width": width, "height": height})
    assert got == expected["images"]


def test_both_key_casings_and_mixed_ones_give_the_same_request() -> None:
    data = base64.b64encode(PNG).decode()
    camel = {
        "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": data}}, {"text": "x"}]}]
    }
    snake = {
        "contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": data}}, {"text": "x"}]}]
    }
    mixed = {
        "contents": [{"parts": [{"inlineData": {"mime_type": "image/png", "data": data}}, {"text": "x"}]}]
    }
    config_camel = {"generationConfig": {"imageConfig": {"aspectRatio": "4:3", "imageSize": "2K"}, "seed": 7}}
    config_snake = {
        "generation_config": {"image_config": {"aspect_ratio": "4:3", "image_size": "2K"}, "seed": 7}
    }
    requests = [convert_body({**c, **g}) for c in (camel, snake, mixed) for g in (config_camel, config_snake)]
    assert all(request == requests[0] for request in requests)
    assert (requests[0].aspect_ratio, requests[0].size, requests[0].seed) == ("4:3", "2K", 7)


def test_url_safe_and_standard_base64_with_or_without_padding_decode_alike() -> None:
    data = bytes([0xFF, 0xD8, 0xFF, 0xFE]) + PNG
    forms = [
        base64.b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
    ]
    assert base64.urlsafe_b64encode(bytes([0xFF, 0xD8, 0xFF, 0xFE])).decode() == "_9j__g=="
    assert {convert.decode_base64(form, "x") for form in forms} == {data}


def test_text_that_is_not_base64_names_the_part() -> None:
    body = edit_body()
    body["contents"][0]["parts"][0]["inlineData"]["data"] = "not base64!"
    with pytest.raises(InvalidImageError, match=r"contents\[0\]\.parts\[0\]\.inlineData\.data is not base64"):
        convert_body(body)


@pytest.mark.parametrize(
    ("config", "field", "value"),
    [
        ({"imageConfig": {"imageSize": "1k"}}, "size", "1K"),
        ({"imageConfig": {"imageSize": "512"}}, "size", "512"),
        ({"imageConfig": {"imageSize": "0.5k"}}, "size", "512"),
        ({"responseModalities": ["image"]}, "num_images", 1),
        ({"responseModalities": ["Text", "Image"], "candidateCount": 3}, "num_images", 3),
        ({"imageConfig": {"imageOutputOptions": {"mimeType": "image/JPEG"}}}, "output_format", "jpeg"),
        ({"topK": 40.0, "topP": 0.9, "temperature": 0.7}, "seed", None),
    ],
)
def test_enums_are_case_insensitive_and_sampling_settings_accepted(
    config: dict[str, Any], field: str, value: object
) -> None:
    assert getattr(convert_body(edit_body(**config)), field) == value


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"imageConfig": {"aspectRatio": "7:3"}},
            r"generationConfig\.imageConfig\.aspectRatio: '7:3' is not",
        ),
        ({"imageConfig": {"imageSize": "8K"}}, r"generationConfig\.imageConfig\.imageSize: '8K' is not"),
        (
            {"candidateCount": 11},
            r"generationConfig\.candidateCount: 11 is not allowed; must be between 1 and 10",
        ),
        ({"candidateCount": 0}, r"generationConfig\.candidateCount: 0 is not allowed"),
        ({"seed": -1}, r"generationConfig\.seed: -1 is not allowed"),
        (
            {"responseModalities": ["TEXT"]},
            r"generationConfig\.responseModalities: \['TEXT'\] does not include",
        ),
        ({"candidateCount": "many"}, r"generationConfig\.candidateCount: 'many' is not allowed"),
    ],
)
def test_bad_values_name_the_gemini_field_the_value_and_the_limit(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        convert_body(edit_body(**config))


def test_file_data_is_an_input_to_fetch_named_by_its_part() -> None:
    body = edit_body()
    body["contents"][0]["parts"].append({"fileData": {"file_uri": "https://example.com/a.png"}})
    image = convert_body(body).images[-1]  # fetched by the scheduler, once the rest has passed
    assert (image.label, image.url, image.data) == (
        "contents[0].parts[2].fileData",
        "https://example.com/a.png",
        b"",
    )


def test_a_batch_request_with_file_data_is_refused_naming_the_part() -> None:
    body = edit_body()
    body["contents"][0]["parts"].append({"fileData": {"file_uri": "https://example.com/a.png"}})
    spec = batch_convert.parse_batch(
        json.dumps({"batch": {"inputConfig": {"requests": {"requests": [{"request": body}]}}}}).encode()
    )
    with pytest.raises(
        InvalidRequestError, match=r"requests\[0\]\.request\.contents\[0\]\.parts\[2\]\.fileData: file "
    ):
        batch_convert.to_image_requests(spec, model="m", engine="tiny")  # a batch fetches nothing


def test_malformed_json_and_missing_text_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequestError, match="not valid JSON"):
        convert.parse_request(b"{nope")
    with pytest.raises(InvalidRequestError, match="no user turn"):
        convert_body({"contents": []})
    with pytest.raises(InvalidRequestError, match=r"contents\[0\]\.parts: the last user turn has no text"):
        convert_body({"contents": [{"parts": [{"inlineData": {"data": base64.b64encode(PNG).decode()}}]}]})


def test_errors_of_later_checks_name_the_gemini_field_in_the_envelope() -> None:
    from plantain.dialects.gemini import errors

    status, body = errors.error_body(InvalidImageError("image 1 is not a readable image", field="images"))
    assert (status, body["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert body["error"]["details"][0]["metadata"] == {"field": "contents"}


def test_a_non_image_inline_part_is_refused() -> None:
    body = edit_body()
    body["contents"][0]["parts"][0]["inlineData"]["mimeType"] = "application/pdf"
    with pytest.raises(InvalidImageError, match="'application/pdf' is not an image"):
        convert_body(body)


def test_a_bare_string_system_instruction_is_prepended() -> None:
    assert convert_body({**edit_body(), "systemInstruction": "Be bold."}).prompt == "Be bold.\n\na hat"


def test_earlier_images_come_from_the_latest_turn_that_has_any() -> None:
    image = {"inlineData": {"data": base64.b64encode(PNG).decode()}}
    contents = [
        {"role": "user", "parts": [image, {"text": "describe it"}]},
        {"role": "model", "parts": [{"text": "A red box."}]},
        {"role": "user", "parts": [{"text": "now make it blue"}]},
    ]
    request = convert_body({"contents": contents})
    assert (request.prompt, [i.label for i in request.images]) == (
        "now make it blue",
        ["contents[0].parts[0].inlineData"],
    )


def result_of(count: int) -> ImageResult:
    images = tuple(
        GeneratedImage(data=bytes([0xFB, 0xFF, index]), media_type="image/png", width=8, height=8, seed=index)
        for index in range(count)
    )
    return ImageResult(engine="tiny", images=images, steps=4, guidance=1.0, seconds=0.1)


def test_each_image_is_a_candidate_in_standard_base64_with_usage() -> None:
    request = ImageRequest.create(prompt="x" * 40, images=[make_input()], num_images=2)
    body = render.to_response(result_of(2), request, "gemini-2.5-flash-image", "rid").wire()
    assert [c["index"] for c in body["candidates"]] == [0, 1]
    first = body["candidates"][0]
    assert first["finishReason"] == "STOP" and first["content"]["role"] == "model"
    assert first["content"]["parts"] == [{"inlineData": {"mimeType": "image/png", "data": "+/8A"}}]
    assert body["usageMetadata"] == {
        "promptTokenCount": 10 + 258,
        "candidatesTokenCount": 2 * 1290,
        "totalTokenCount": 268 + 2580,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 10},
            {"modality": "IMAGE", "tokenCount": 258},
        ],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 2580}],
    }
    assert (body["modelVersion"], body["responseId"]) == ("gemini-2.5-flash-image", "rid")


@pytest.mark.parametrize(
    ("model", "size", "tokens"),
    [
        ("gemini-2.5-flash-image", "1K", 1290),
        ("models/gemini-2.5-flash-image-preview", "1K", 1290),
        ("nano-banana", "2K", 1290),
        ("tiny", "512", 1290),
        ("gemini-3-pro-image-preview", "2K", 1120),
        ("gemini-3-pro-image-preview", "4K", 2000),
        ("gemini-3.1-flash-image-preview", "512", 747),
        ("gemini-3.1-flash-image-preview", "4K", 2520),
    ],
)
def test_output_tokens_follow_the_model_asked_for(model: str, size: str, tokens: int) -> None:
    assert render.output_image_tokens(model, size) == tokens


def test_stream_chunks_hold_one_image_each_and_usage_comes_last() -> None:
    request = ImageRequest.create(prompt="x", num_images=2)
    chunks = [chunk.wire() for chunk in render.to_stream_chunks(result_of(2), request, "m", "rid")]
    assert [chunk["candidates"][0]["index"] for chunk in chunks] == [0, 1]
    assert "usageMetadata" not in chunks[0] and chunks[1]["usageMetadata"]["candidatesTokenCount"] == 2580
    assert all(chunk["candidates"][0]["finishReason"] == "STOP" for chunk in chunks)


def test_model_listing_shapes(data_dir: Path, hub_cache: Path) -> None:
    registry = EngineRegistry(Settings(data_dir=data_dir, hub_cache=hub_cache, default_engine="tiny"))
    provenance = {"watermark": {"applied": True}}
    listing = render.list_models_body(registry, provenance)
    names = [model["name"] for model in listing["models"]]
    assert "models/gemini-2.5-flash-image" in names and "models/tiny" in names
    model = render.get_model_body(registry, "models/gemini-3.1-flash-image-preview", provenance)
    assert model["provenance"] == provenance
    assert model["name"] == "models/gemini-3.1-flash-image-preview"
    assert model["supportedGenerationMethods"] == ["generateContent", "streamGenerateContent"]
    assert (model["inputTokenLimit"], model["outputTokenLimit"]) == (131072, 32768)
    assert model["displayName"] == "Nano Banana 2"
    with pytest.raises(UnknownModelError):
        render.get_model_body(registry, "gemini-9-ultra", provenance)


def test_vertex_compression_quality_is_the_output_quality() -> None:
    body = convert.parse_request(
        json.dumps(
            {
                "contents": [{"parts": [{"text": "a cube"}]}],
                "generationConfig": {
                    "imageConfig": {
                        "imageOutputOptions": {"mimeType": "image/jpeg", "compressionQuality": 40}
                    }
                },
            }
        ).encode()
    )
    request = convert.to_image_request(body, engine="tiny")
    assert (request.output_format, request.output_quality) == ("jpeg", 40)
