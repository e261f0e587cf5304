"""The official google-genai SDK (3.x in the venv, 1.x in a side directory) against a live server."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google import genai
from google.genai import errors, types
from PIL import Image

from plantain.imaging.sizes import ASPECT_RATIOS, TABLE_1K
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input, same_picture

MODEL = "gemini-2.5-flash-image"
GENAI_1X = Path(sys.prefix) / "genai-1x"  # scripts/dev.sh setup installs google-genai 1.x here


@pytest.fixture(scope="module")
def app(server_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(server_settings())


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    with LiveServer(app) as live:
        live.wait_ready()
        yield live.url


@pytest.fixture(scope="module")
def client(server: str) -> genai.Client:
    """google-genai 3.x with its default API version, v1."""
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server))


@pytest.fixture(scope="module")
def beta(server: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=server, api_version="v1beta"))


def config(**image: Any) -> types.GenerateContentConfig:
    extra = {
        key: image.pop(key) for key in ("candidate_count", "seed", "response_modalities") if key in image
    }
    return types.GenerateContentConfig(image_config=types.ImageConfig(**image), **extra)


def size_of(response: types.GenerateContentResponse, candidate: int = 0) -> tuple[int, int]:
    return Image.open(io.BytesIO(image_bytes(response, candidate))).size


def image_bytes(response: types.GenerateContentResponse, candidate: int = 0) -> bytes:
    assert response.candidates is not None
    content = response.candidates[candidate].content
    assert content is not None and content.parts is not None
    blob = content.parts[0].inline_data
    assert blob is not None and blob.data is not None and blob.mime_type == "image/png"
    return blob.data


def half(ratio: str) -> tuple[int, int]:
    """The 512 tier: half the 1K table, each side rounded to the tiny engine's multiple of 16."""
    width, height = TABLE_1K[ratio]
    return round(width / 32) * 16, round(height / 32) * 16


def part(fmt: str, width: int, height: int) -> types.Part:
    return types.Part.from_bytes(
        data=make_input(width, height, fmt=fmt).data, mime_type=f"image/{fmt.lower()}"
    )


# --- generation -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["client", "beta"])
def test_a_generation_without_aspect_ratio_is_square_on_v1_and_v1beta(
    which: str, request: pytest.FixtureRequest
) -> None:
    sdk: genai.Client = request.getfixturevalue(which)
    response = sdk.models.generate_content(
        model=MODEL, contents="a red cube", config=config(image_size="512")
    )
    assert size_of(response) == (512, 512)
    assert response.model_version == MODEL and response.response_id
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 1290


@pytest.mark.parametrize("ratio", ASPECT_RATIOS)
def test_every_aspect_ratio_at_512(client: genai.Client, ratio: str) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="a cube", config=config(aspect_ratio=ratio, image_size="512")
    )
    assert size_of(response) == half(ratio)


@pytest.mark.parametrize("ratio", ["1:1", "21:9"])
def test_the_1k_table_exactly(client: genai.Client, ratio: str) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="a cube", config=config(aspect_ratio=ratio, image_size="1k")
    )
    assert size_of(response) == TABLE_1K[ratio]


def test_2k(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview",
        contents="a cube",
        config=config(aspect_ratio="16:9", image_size="2K"),
    )
    assert size_of(response) == (2688, 1536)
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 1120


def test_an_edit_of_a_small_jpeg_works(client: genai.Client) -> None:
    # 100x50 is below FLUX.2's 64-pixel minimum for reference images: enlarged, not a 500.
    response = client.models.generate_content(
        model=MODEL, contents=[part("JPEG", 100, 50), "make it red"], config=config(image_size="512")
    )
    assert size_of(response) == (672, 384)


@pytest.mark.slow
def test_4k(app: FastAPI, client: genai.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = app.state.scheduler.registry.get("tiny")
    # One step instead of four: 17 megapixels take ~20 s a step on two CPU cores.
    monkeypatch.setattr(tiny, "preset", dataclasses.replace(tiny.preset, steps=1))
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview",
        contents="a cube",
        config=config(aspect_ratio="21:9", image_size="4K"),
    )
    assert size_of(response) == (6144, 2688)  # 4x the 1K table's 1536x672
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 2000


def test_an_edit_of_png_webp_and_jpeg_keeps_the_first_inputs_shape(client: genai.Client) -> None:
    contents: list[Any] = [part("PNG", 96, 64), part("WEBP", 64, 64), part("JPEG", 64, 96), "merge them"]
    response = client.models.generate_content(model=MODEL, contents=contents, config=config(image_size="512"))
    assert size_of(response) == half("3:2")
    assert response.usage_metadata and response.usage_metadata.prompt_token_count == 3 * 258 + 2


def test_streaming_yields_the_image_and_finishes_with_usage(client: genai.Client) -> None:
    chunks = list(
        client.models.generate_content_stream(
            model=MODEL, contents="a cube", config=config(aspect_ratio="4:3", image_size="512")
        )
    )
    assert size_of(chunks[0]) == half("4:3")
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata and last.usage_metadata.total_token_count


def test_a_three_turn_chat_edits_the_previous_image(client: genai.Client) -> None:
    chat = client.chats.create(model=MODEL, config=config(image_size="512"))
    first = chat.send_message("a cat", config=config(aspect_ratio="16:9", image_size="512"))
    assert size_of(first) == half("16:9")
    # No aspect ratio and no image attached: only the model turn's 16:9 image can make this 16:9.
    second = chat.send_message("give it a hat")
    assert size_of(second) == half("16:9")
    third = chat.send_message([part("PNG", 64, 96), "put this portrait on the wall behind it"])
    assert size_of(third) == half("16:9")  # the edited image comes first, the portrait second
    assert third.usage_metadata and third.usage_metadata.prompt_tokens_details
    assert [d.token_count for d in third.usage_metadata.prompt_tokens_details][1] == 2 * 258
    assert len(chat.get_history()) == 6


def test_candidate_count_two_gives_two_candidates(client: genai.Client) -> None:
    response = client.models.generate_content(
        model=MODEL, contents="a cube", config=config(image_size="512", candidate_count=2, seed=5)
    )
    assert response.candidates and [c.index for c in response.candidates] == [0, 1]
    assert image_bytes(response, 0) != image_bytes(response, 1)
    assert response.usage_metadata and response.usage_metadata.candidates_token_count == 2 * 1290


def test_the_same_seed_gives_the_same_picture(client: genai.Client) -> None:
    def run(seed: int) -> bytes:
        cfg = config(image_size="512", seed=seed)
        return image_bytes(client.models.generate_content(model=MODEL, contents="a cube", config=cfg))

    # The same picture; the files differ by each task's own watermark serial and manifest.
    assert same_picture(run(1234), run(1234))
    assert not same_picture(run(1234), run(1235))


def test_models_get_and_list_on_v1beta(beta: genai.Client) -> None:
    model = beta.models.get(model="gemini-3-pro-image-preview")
    assert model.name == "models/gemini-3-pro-image-preview"
    assert model.display_name == "Nano Banana Pro"
    assert model.supported_actions and "generateContent" in model.supported_actions
    assert model.input_token_limit == 65536
    names = [listed.name for listed in beta.models.list()]
    assert "models/gemini-2.5-flash-image" in names and "models/tiny" in names


def test_a_vertex_client_generates(server: str) -> None:
    vertex = genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=server))
    response = vertex.models.generate_content(model=MODEL, contents="a cube", config=config(image_size="512"))
    assert size_of(response) == (512, 512)


# --- errors -----------------------------------------------------------------------------------

ERROR_CASES: dict[str, tuple[Any, types.GenerateContentConfig, str]] = {
    "aspect ratio": ("a cube", config(aspect_ratio="7:3"), "generationConfig.imageConfig.aspectRatio: '7:3'"),
    "image size": ("a cube", config(image_size="8K"), "generationConfig.imageConfig.imageSize: '8K'"),
    "candidate count": (
        "a cube",
        config(candidate_count=11),
        "generationConfig.candidateCount: 11 is not allowed; must be between 1 and 10",
    ),
    "too many images": (
        [*(part("PNG", 64, 64) for _ in range(15)), "x"],
        config(image_size="512"),
        "contents: 15 input images is over the limit of 14 per request (max_input_images)",
    ),
    "corrupt image": (
        ["x", types.Part.from_bytes(data=b"not an image", mime_type="image/png")],
        config(),
        "contents[0].parts[1].inlineData is not a readable image",
    ),
    "text only": (
        "a cube",
        config(response_modalities=["TEXT"]),
        "generationConfig.responseModalities: ['TEXT'] does not include IMAGE",
    ),
    "file data": (
        [types.Part.from_uri(file_uri="gs://bucket/a.png", mime_type="image/png"), "x"],
        config(),
        "contents[0].parts[0].fileData.fileUri: 'gs://bucket/a.png' cannot be fetched; only http(s) URLs",
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES)
def test_each_validation_rule_answers_400_naming_the_field(client: genai.Client, case: str) -> None:
    contents, cfg, message = ERROR_CASES[case]
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents=contents, config=cfg)
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert message in (caught.value.message or "")


def test_an_unknown_model_is_404(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gemini-9-ultra", contents="x")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert "'gemini-9-ultra' is not served here" in (caught.value.message or "")


def test_count_tokens_estimates_text_and_images_like_usage_metadata(client: genai.Client) -> None:
    contents: list[Any] = [part("PNG", 96, 64), "twelve chars"]  # 12 characters: 3 tokens
    counted = client.models.count_tokens(model=MODEL, contents=contents)
    assert counted.total_tokens == 3 + 258
    pro = client.models.count_tokens(model="gemini-3-pro-image-preview", contents=contents)
    assert pro.total_tokens == 3 + 560
    with pytest.raises(errors.ClientError) as caught:
        client.models.count_tokens(model="gemini-9-ultra", contents="x")
    assert caught.value.code == 404


def test_a_method_plantain_does_not_serve_is_a_404_in_gemini_shape(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        client.models.embed_content(model=MODEL, contents="hello")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert ":batchEmbedContents is not served here" in (caught.value.message or "")  # what the SDK calls
    assert ":generateContent" in (caught.value.message or "")  # and it says what is


# --- the wire, without an SDK -----------------------------------------------------------------


def post(url: str, body: object | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers={"content-type": "application/json"}, timeout=60)


BODY = {
    "contents": [{"parts": [{"text": "a cube"}]}],
    "generationConfig": {"imageConfig": {"imageSize": "512"}},
}


@pytest.mark.parametrize(
    "path",
    [
        "/v1alpha/models/gemini-3.1-flash-image-preview:generateContent",
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash-image:generateContent",
        "/v1beta1/publishers/google/models/tiny:generateContent",
    ],
)
def test_gemini_and_vertex_paths_route_models_with_dots(server: str, path: str) -> None:
    response = post(f"{server}{path}", BODY)
    assert response.status_code == 200
    assert response.json()["modelVersion"] == path.rsplit("/", 1)[1].split(":")[0]


def test_sse_frames_and_the_rest_stream_form(server: str) -> None:
    path = f"{server}/v1beta/models/{MODEL}:streamGenerateContent"
    sse = post(f"{path}?alt=sse", BODY)
    assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
    events = [event for event in sse.text.split("\n\n") if event]
    assert all(event.startswith("data: {") for event in events) and "[DONE]" not in sse.text
    assert json.loads(events[-1].removeprefix("data: "))["usageMetadata"]["candidatesTokenCount"] == 1290
    array = post(path, BODY)
    assert array.status_code == 200 and array.json()[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("alt", ["proto", "media", "ss"])
def test_a_stream_format_other_than_sse_or_json_is_a_gemini_400_naming_alt(server: str, alt: str) -> None:
    response = post(f"{server}/v1beta/models/{MODEL}:streamGenerateContent?alt={alt}", BODY)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["details"][0]["metadata"] == {"field": "alt"}
    assert error["message"] == (
        f"alt: {alt!r} is not allowed; use sse (one event per chunk) or json (the default: a JSON "
        "array of chunks)"
    )


def test_alt_json_is_the_rest_stream_form(server: str) -> None:
    response = post(f"{server}/v1beta/models/{MODEL}:streamGenerateContent?alt=JSON", BODY)
    assert response.status_code == 200 and response.json()[-1]["candidates"][0]["finishReason"] == "STOP"


def test_a_check_made_when_queuing_names_the_gemini_field(server: str) -> None:
    # Decoding happens in the scheduler, whose errors name the core field (images).
    corrupt = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(b"not an image").decode()}}
    body = {"contents": [{"parts": [{"text": "x"}, corrupt]}]}
    response = post(f"{server}/v1beta/models/{MODEL}:generateContent", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "contents[0].parts[1].inlineData is not a readable image" in error["message"]
    assert error["details"][0]["metadata"] == {"field": "contents"}


def test_malformed_json_is_a_gemini_400(server: str) -> None:
    response = post(f"{server}/v1/models/{MODEL}:generateContent", b"{nope")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert "not valid JSON" in error["message"]


# --- google-genai 1.x -------------------------------------------------------------------------

CLIENT_1X = """
import io, json, sys
from google import genai
from google.genai import errors, types
from PIL import Image

client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sys.argv[1]))
cfg = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="16:9", image_size="512"))
png = io.BytesIO()
Image.new("RGB", (64, 96), (9, 9, 9)).save(png, "PNG")
size = lambda r: Image.open(io.BytesIO(r.candidates[0].content.parts[0].inline_data.data)).size
made = client.models.generate_content(model="gemini-2.5-flash-image", contents="a cube", config=cfg)
edit = client.models.generate_content(
    model="gemini-2.5-flash-image",
    contents=[types.Part.from_bytes(data=png.getvalue(), mime_type="image/png"), "a hat"],
    config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
)
chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash-image", contents="x", config=cfg))
try:
    client.models.generate_content(model="nope", contents="x")
    code = None
except errors.ClientError as exc:
    code = exc.code
print(json.dumps({"version": genai.__version__, "made": size(made), "edit": size(edit),
                  "stream": size(chunks[0]), "unknown": code}))
"""


def test_google_genai_1x_generates_edits_and_streams(server: str) -> None:
    assert GENAI_1X.is_dir(), "google-genai 1.x is not installed: run scripts/dev.sh setup"
    env = {**os.environ, "PYTHONPATH": str(GENAI_1X)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", CLIENT_1X, server],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["version"].startswith("1.")
    assert report == {
        "version": report["version"],
        "made": list(half("16:9")),
        "edit": list(half("2:3")),
        "stream": list(half("16:9")),
        "unknown": 404,
    }
