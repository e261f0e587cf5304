"""OpenAI's ``mask`` (inpainting) through the official ``openai`` SDK against a live server.

The tiny engine inpaints with FLUX.2-klein's inpainting pipeline; its random weights paint noise,
which is what makes a repainted area differ from the input. A stand-in engine without an
inpainting pipeline shows the refusal.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from plantain.engines import tiny
from plantain.engines.base import Engine, EngineJob, Preset
from plantain.engines.jobs import inputs_digest
from plantain.engines.loading import WeightsSource
from plantain.engines.registry import EngineRegistry
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input
from plantain.types import ImageRequest

SIZE = 256
HALF = SIZE // 2
MARGIN = 24  # columns left out on each side of the mask's edge: the inpainting blends there


class PlainEngine(Engine):
    """Grey images at the planned size: tiny's capabilities without inpainting."""

    family = "test-plain"
    pipeline_class = "none"

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(
            name,
            settings,
            description="grey images, no inpainting",
            source=WeightsSource(engine=name, repo_id="plantain-tests/plain"),
            capabilities=replace(tiny.TINY_CAPABILITIES, inpaint_max_images=0),
            preset=Preset(steps=1, guidance=1.0),
        )

    def _load(self) -> Any:
        return object()

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        return [Image.new("RGB", (job.width, job.height), "grey") for job in jobs for _ in job.seeds]


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)

    def latest_task(self) -> str | None:
        tasks = httpx.get(f"{self.url}/v1/tasks", params={"limit": 1}).json()["data"]
        return str(tasks[0]["id"]) if tasks else None


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    settings = server_settings(watermark=False, content_credentials=False)
    registry = EngineRegistry(settings, {"tiny": tiny.create, "plain": PlainEngine})
    with LiveServer(create_app(settings, registry)) as live:
        yield Server(live.url)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client


def picture(seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> tuple[bytes, np.ndarray]:
    """A smooth colourful PNG (gradients, not noise: the tiny engine's noise must differ from it)."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]].astype(float)
    phase = seed * 1.7
    pixels = np.stack(
        [127 + 100 * np.sin(x / 23 + phase), 127 + 100 * np.cos(y / 31 + phase), (x + y + 40 * seed) % 256],
        axis=-1,
    ).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue(), pixels.astype(float)


def mask(size: tuple[int, int] = (SIZE, SIZE), mode: str = "RGBA", fmt: str = "PNG") -> bytes:
    """OpenAI's mask: opaque on the left half, fully transparent (edit here) on the right."""
    width, height = size
    alpha = np.full((height, width), 255, np.uint8)
    alpha[:, width // 2 :] = 0
    rgba = np.dstack([np.zeros((height, width, 3), np.uint8), alpha])
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def decode(b64: str | None) -> np.ndarray:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert (image.format, image.size) == ("PNG", (SIZE, SIZE))
    return np.asarray(image.convert("RGB"), dtype=float)


def halves(made: np.ndarray, source: np.ndarray) -> tuple[float, float]:
    """Mean absolute difference from ``source`` on the kept (left) and repainted (right) half,
    away from the edge between them."""
    kept = np.abs(made[:, : HALF - MARGIN] - source[:, : HALF - MARGIN]).mean()
    repainted = np.abs(made[:, HALF + MARGIN :] - source[:, HALF + MARGIN :]).mean()
    return float(kept), float(repainted)


def refused(error: pytest.ExceptionInfo[openai.BadRequestError], *texts: str) -> str:
    assert error.value.status_code == 400
    body: Any = error.value.body
    assert (body["type"], body["param"], error.value.param) == ("invalid_request_error", "mask", "mask")
    for text in texts:
        assert text in body["message"], body["message"]
    return str(body["message"])


def test_a_mask_repaints_its_transparent_half_and_keeps_the_rest(client: openai.OpenAI) -> None:
    data, source = picture(1)
    response = client.images.edit(
        model="gpt-image-1",
        prompt="a red door",
        image=("room.png", data, "image/png"),
        mask=("mask.png", mask(), "image/png"),
        size=f"{SIZE}x{SIZE}",
        extra_body={"seed": 3},
    )
    assert response.data is not None and len(response.data) == 1
    kept, repainted = halves(decode(response.data[0].b64_json), source)
    assert kept < 2.0, (kept, repainted)  # the input's own pixels
    assert repainted > 20.0 and repainted > 10 * max(kept, 0.5), (kept, repainted)


def test_with_several_images_the_mask_marks_the_first(client: openai.OpenAI) -> None:
    (first, source), (second, _) = picture(1), picture(2)
    response = client.images.edit(
        prompt="put the second one in",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("mask.png", mask(), "image/png"),
        size=f"{SIZE}x{SIZE}",
        n=2,
    )
    assert response.data is not None and len(response.data) == 2
    for item in response.data:
        kept, repainted = halves(decode(item.b64_json), source)
        assert kept < 2.0 and repainted > 20.0, (kept, repainted)


def test_a_mask_of_another_size_is_refused_naming_both_sizes(server: Server, client: openai.OpenAI) -> None:
    before = server.latest_task()
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=picture(1)[0], mask=mask((128, 128)))
    refused(error, "mask is 128x128 but image is 256x256", "the same size as the (first) image")
    assert server.latest_task() == before  # refused before it was queued


@pytest.mark.parametrize(
    ("mode", "fmt", "text"),
    [
        ("RGB", "PNG", "mask has no alpha channel (PNG mode RGB)"),
        ("L", "PNG", "mask has no alpha channel (PNG mode L)"),
        ("RGB", "JPEG", "mask is a JPEG image; send a PNG with an alpha channel"),
    ],
)
def test_a_mask_without_alpha_or_not_a_png_is_refused(
    client: openai.OpenAI, mode: str, fmt: str, text: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(prompt="p", image=picture(1)[0], mask=mask(mode=mode, fmt=fmt))
    refused(error, text)


def test_a_mask_alone_is_refused_as_a_text_field(server: Server) -> None:
    response = httpx.post(
        f"{server.url}/v1/images/edits",
        data={"prompt": "p", "mask": "right half"},
        files=[("image", ("a.png", picture(1)[0], "image/png"))],
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "mask"
    assert "mask must be a file upload" in response.json()["error"]["message"]


def test_an_engine_without_inpainting_refuses_a_mask_naming_itself(
    server: Server, client: openai.OpenAI
) -> None:
    before = server.latest_task()
    with pytest.raises(openai.BadRequestError) as error:
        client.images.edit(model="plain", prompt="p", image=picture(1)[0], mask=mask())
    refused(error, "mask is not supported by engine plain: it has no inpainting pipeline")
    assert server.latest_task() == before  # refused at check time, never queued
    response = client.images.edit(model="plain", prompt="p", image=picture(1)[0], size=f"{SIZE}x{SIZE}")
    assert response.data is not None  # the same edit without a mask runs


def test_a_masked_job_never_batches_with_an_unmasked_one() -> None:
    image = make_input(64, 64)
    plain = ImageRequest.create(prompt="p", images=(image,))
    masked = plain.model_copy(update={"mask": make_input(64, 64, (255, 255, 255), label="mask")})
    assert inputs_digest(plain) != inputs_digest(masked)
    job = EngineJob(
        prompt="p", images=(), width=64, height=64, steps=1, guidance=1.0, seeds=(0,), inputs_digest="same"
    )
    assert job.batch_key() != replace(job, mask=Image.new("L", (64, 64))).batch_key()


def test_a_masked_edit_streams_previews_and_makes_sizes_over_the_pipelines_megapixel(
    client: openai.OpenAI,
) -> None:
    """The inpainting pipeline works at up to 1 MP: a larger output is made at 1 MP and scaled
    up, and its previews are decoded at the size it works at."""
    data, _ = picture(1)
    stream = client.images.edit(
        prompt="p", image=data, mask=mask(), size="1536x1024", stream=True, partial_images=1
    )
    events = list(stream)
    assert [event.type for event in events] == ["image_edit.partial_image", "image_edit.completed"]
    made = Image.open(io.BytesIO(base64.b64decode(events[-1].b64_json)))
    assert made.size == (1536, 1024)
