"""Imagen's ``:predict`` as google-genai's ``generate_images`` and ``edit_image`` call it (they are
Vertex AI methods in the SDK), and as a raw Gemini API request, against a live server."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input, same_picture

IMAGEN = "imagen-4.0-generate-001"
# The SDK warns that its Imagen methods are deprecated (removal not before 2027); people still call them.
pytestmark = pytest.mark.filterwarnings("ignore::google.genai._common.ExperimentalWarning")


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = server_settings(models={IMAGEN: "tiny", "imagen-3.0-capability-001": "tiny"})
    with LiveServer(create_app(settings)) as live:
        live.wait_ready()
        yield live.url


@pytest.fixture(scope="module")
def vertex(server: str) -> genai.Client:
    return genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=server))


def picture(data: bytes | None) -> Image.Image:
    assert data is not None
    return Image.open(io.BytesIO(data))


def test_generate_images_gives_the_asked_count_ratio_and_format(vertex: genai.Client) -> None:
    config = types.GenerateImagesConfig(
        number_of_images=2, aspect_ratio="16:9", output_mime_type="image/jpeg", seed=7, add_watermark=True
    )
    response = vertex.models.generate_images(model=IMAGEN, prompt="a lighthouse", config=config)
    images = [generated.image for generated in response.generated_images or [] if generated.image]
    assert len(images) == 2
    assert [picture(image.image_bytes).size for image in images] == [(1344, 768)] * 2
    assert {image.mime_type for image in images} == {"image/jpeg"}
    assert images[0].image_bytes != images[1].image_bytes  # two seeds, two pictures


def test_the_same_seed_gives_the_same_image(vertex: genai.Client) -> None:
    config = types.GenerateImagesConfig(number_of_images=1, seed=42)
    first, again = (
        vertex.models.generate_images(model=IMAGEN, prompt="a kite", config=config) for _ in range(2)
    )
    assert first.generated_images and again.generated_images
    assert first.generated_images[0].image and again.generated_images[0].image
    first_bytes, again_bytes = (
        first.generated_images[0].image.image_bytes,
        again.generated_images[0].image.image_bytes,
    )
    assert first_bytes and again_bytes and same_picture(first_bytes, again_bytes)  # marks differ, pixels not


def test_edit_image_edits_its_raw_reference_images(vertex: genai.Client) -> None:
    reference = types.RawReferenceImage(
        reference_id=1,
        reference_image=types.Image(image_bytes=make_input(96, 64).data, mime_type="image/png"),
    )
    response = vertex.models.edit_image(
        model="imagen-3.0-capability-001",
        prompt="the same scene at night",
        reference_images=[reference],
        config=types.EditImageConfig(number_of_images=1),
    )
    assert response.generated_images and response.generated_images[0].image
    assert picture(response.generated_images[0].image.image_bytes).format == "PNG"


def test_a_mask_reference_is_refused_naming_the_field(vertex: genai.Client) -> None:
    raw = types.RawReferenceImage(
        reference_id=1, reference_image=types.Image(image_bytes=make_input().data, mime_type="image/png")
    )
    mask = types.MaskReferenceImage(
        reference_id=2, config=types.MaskReferenceConfig(mask_mode="MASK_MODE_BACKGROUND")
    )
    with pytest.raises(errors.ClientError) as refused:
        vertex.models.edit_image(
            model="imagen-3.0-capability-001", prompt="a garden", reference_images=[raw, mask]
        )
    assert refused.value.code == 400
    assert "instances[0].referenceImages[1].referenceType" in str(refused.value)


def test_the_gemini_api_path_answers_predictions(server: str) -> None:
    body = {"instances": [{"prompt": "a cube"}], "parameters": {"sampleCount": 1, "aspectRatio": "1:1"}}
    answer = httpx.post(f"{server}/v1beta/models/{IMAGEN}:predict", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["mimeType"] == "image/png"
    assert picture(base64.b64decode(prediction["bytesBase64Encoded"])).size == (1024, 1024)


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        ({"sampleCount": 0}, "parameters.sampleCount"),
        ({"aspectRatio": "7:5"}, "parameters.aspectRatio"),
        ({"mode": "upscale"}, "parameters.mode"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    server: str, parameters: dict[str, object], field: str
) -> None:
    body = {"instances": [{"prompt": "a cube"}], "parameters": parameters}
    answer = httpx.post(f"{server}/v1beta/models/{IMAGEN}:predict", json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["error"]["message"]
