"""Output formats, transparent backgrounds, seeds and ignored parameters through every door: the
openai and google-genai SDKs and the task API against one live server, and the CLI.

The tiny engine paints noise, which has no background to key out, so transparency is checked on a
stand-in engine that paints a red disc on white (everything else about the run is real).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner
from google import genai
from google.genai import types
from PIL import Image, ImageDraw

from plantain.cli.main import cli
from plantain.dialects.report import IGNORED_HEADER, SEEDS_HEADER
from plantain.engines import tiny
from plantain.engines.base import Engine, EngineJob, Preset
from plantain.engines.loading import WeightsSource
from plantain.engines.registry import EngineRegistry
from plantain.imaging.background import STEER_SUFFIX
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

PILLOW_NAMES = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
ALPHA_FORMATS = ["png", "webp", "avif"]


class PictureEngine(Engine):
    """A red disc on white at the planned size, whatever the prompt; it keeps the prompts it ran."""

    family = "test-picture"
    pipeline_class = "none"

    def __init__(self, name: str, settings: Settings) -> None:
        super().__init__(
            name,
            settings,
            description="a red disc on white, for transparency tests",
            source=WeightsSource(engine=name, repo_id="plantain-tests/picture"),
            capabilities=tiny.TINY_CAPABILITIES,
            preset=Preset(steps=1, guidance=1.0),
        )
        self.prompts: list[str] = []

    def _load(self) -> Any:
        return object()

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        self.prompts += [job.prompt for job in jobs]
        return [_disc(job.width, job.height) for job in jobs for _ in job.seeds]


def _disc(width: int, height: int) -> Image.Image:
    big = Image.new("RGB", (width * 2, height * 2), (255, 255, 255))
    ImageDraw.Draw(big).ellipse((width / 2, height / 2, width * 1.5, height * 1.5), fill=(200, 30, 40))
    return big.resize((width, height), Image.Resampling.BILINEAR)


class Server:
    def __init__(self, url: str, registry: EngineRegistry) -> None:
        self.url = url
        self.registry = registry
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        self.gemini = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        self.vertex = genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=url))
        self.http = httpx.Client(base_url=url, timeout=120)

    @property
    def picture(self) -> PictureEngine:
        engine = self.registry.get("picture")
        assert isinstance(engine, PictureEngine)
        return engine

    def task(self, **input: Any) -> dict[str, Any]:
        """A task run to its end (``Prefer: wait``) on ``input.pop('model')`` or tiny."""
        model = input.pop("model", "tiny")
        body = {"model": model, "input": {"resolution": "512", **input}}
        response = self.http.post("/v1/tasks", json=body, headers={"prefer": "wait"})
        assert response.status_code in {201, 400}, response.text
        task: dict[str, Any] = response.json()
        return task

    def file(self, task: dict[str, Any], index: int = 0) -> httpx.Response:
        assert task["status"] == "succeeded", task
        return self.http.get(task["output"]["images"][index]["url"])

    def close(self) -> None:
        for client in (self.openai, self.gemini, self.vertex, self.http):
            client.close()

    def latest_task(self) -> dict[str, Any]:
        latest: dict[str, Any] = self.http.get("/v1/tasks", params={"limit": 1}).json()["data"][0]
        return latest


# Provenance is off here: these tests compare files byte for byte, and every marked file carries
# its own task's watermark serial and a signed manifest (tests/compat/test_provenance_dialects.py).
UNMARKED = {"watermark": False, "content_credentials": False}


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    settings = server_settings(**UNMARKED)
    registry = EngineRegistry(settings, {"tiny": tiny.create, "picture": PictureEngine})
    with LiveServer(create_app(settings, registry)) as live:
        live.wait_ready()
        server = Server(live.url, registry)
        yield server
        server.close()


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def corners_and_centre(image: Image.Image) -> list[int]:
    """Alpha at the four corners, then at the centre."""
    rgba = image.convert("RGBA")
    width, height = rgba.size
    points = [(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1), (width // 2, height // 2)]
    return [int(rgba.getpixel(point)[3]) for point in points]  # type: ignore[index]


def gemini_image(response: types.GenerateContentResponse, candidate: int = 0) -> tuple[str, bytes]:
    assert response.candidates is not None
    content = response.candidates[candidate].content
    assert content is not None and content.parts is not None
    blob = content.parts[0].inline_data
    assert blob is not None and blob.mime_type is not None and blob.data is not None
    return blob.mime_type, blob.data


def gemini_headers(response: types.GenerateContentResponse) -> dict[str, str]:
    assert response.sdk_http_response is not None and response.sdk_http_response.headers is not None
    return {key.lower(): value for key, value in response.sdk_http_response.headers.items()}


def output_options(fmt: str, quality: int | None = None) -> types.GenerateContentConfig:
    """Vertex's output options (the SDK sends them only to Vertex), at the 512 tier."""
    options = types.ImageConfigImageOutputOptions(mime_type=f"image/{fmt}", compression_quality=quality)
    return types.GenerateContentConfig(
        seed=3, image_config=types.ImageConfig(image_size="512", image_output_options=options)
    )


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_openai_output_format(server: Server, fmt: Any) -> None:
    response = server.openai.images.generate(model="tiny", prompt="a cube", size="512x512", output_format=fmt)
    assert response.data is not None and response.output_format == fmt
    assert opened(base64.b64decode(response.data[0].b64_json or "")).format == PILLOW_NAMES[fmt]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_gemini_output_mime_type(server: Server, fmt: str) -> None:
    response = server.vertex.models.generate_content(
        model="tiny", contents="a cube", config=output_options(fmt)
    )
    mime_type, data = gemini_image(response)
    assert mime_type == f"image/{fmt}"
    assert opened(data).format == PILLOW_NAMES[fmt]


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_task_output_format_and_file_content_type(server: Server, fmt: str) -> None:
    task = server.task(prompt="a cube", output_format=fmt, seed=3)
    assert task["output"]["images"][0]["media_type"] == f"image/{fmt}"
    file = server.file(task)
    assert file.headers["content-type"] == f"image/{fmt}"
    assert opened(file.content).format == PILLOW_NAMES[fmt]


def test_cli_writes_avif_from_the_file_name(data_dir: Path, hub_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "cube.avif"
    args = ["--data-dir", str(data_dir), "generate", "a cube", "-e", "tiny", "-s", "512", "-o", str(out)]
    result = CliRunner(env={"PLANTAIN_HUB_CACHE": str(hub_cache)}).invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert opened(out.read_bytes()).format == "AVIF"


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_task_output_quality_changes_the_size(server: Server, fmt: str) -> None:
    low, high = (
        server.file(server.task(prompt="a cube", output_format=fmt, output_quality=q, seed=3))
        for q in (10, 95)
    )
    assert len(low.content) < len(high.content)


def test_openai_output_compression_and_gemini_compression_quality_change_the_size(server: Server) -> None:
    def openai_size(quality: int) -> int:
        response = server.openai.images.generate(
            model="tiny", prompt="a cube", size="512x512", output_format="webp", output_compression=quality
        )
        assert response.data is not None
        return len(base64.b64decode(response.data[0].b64_json or ""))

    def gemini_size(quality: int) -> int:
        config = output_options("jpeg", quality)
        return len(
            gemini_image(
                server.vertex.models.generate_content(model="tiny", contents="a cube", config=config)
            )[1]
        )

    assert openai_size(10) < openai_size(95)
    assert gemini_size(10) < gemini_size(95)


# --- transparent backgrounds ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALPHA_FORMATS)
def test_openai_transparent_background(server: Server, fmt: Any) -> None:
    response = server.openai.images.generate(
        model="picture", prompt="a red ball", size="512x512", background="transparent", output_format=fmt
    )
    assert response.data is not None and response.background == "transparent"
    image = opened(base64.b64decode(response.data[0].b64_json or ""))
    assert image.mode == "RGBA" and image.format == PILLOW_NAMES[fmt]
    assert corners_and_centre(image) == [0, 0, 0, 0, 255]
    assert server.picture.prompts[-1] == "a red ball" + STEER_SUFFIX


def test_gemini_transparent_background_through_the_extension(server: Server) -> None:
    extension = {"generationConfig": {"imageConfig": {"background": "transparent"}}}
    config = output_options("avif").model_copy(
        update={"http_options": types.HttpOptions(extra_body=extension)}
    )
    png = server.gemini.models.generate_content(
        model="picture",
        contents="a red ball",
        config=types.GenerateContentConfig(
            image_config=types.ImageConfig(image_size="512"),
            http_options=types.HttpOptions(extra_body=extension),
        ),
    )
    avif = server.vertex.models.generate_content(model="picture", contents="a red ball", config=config)
    for response, mime_type in ((png, "image/png"), (avif, "image/avif")):
        kind, data = gemini_image(response)
        assert kind == mime_type
        assert corners_and_centre(opened(data)) == [0, 0, 0, 0, 255]


@pytest.mark.parametrize("fmt", ALPHA_FORMATS)
def test_task_transparent_background(server: Server, fmt: str) -> None:
    task = server.task(model="picture", prompt="a red ball", background="transparent", output_format=fmt)
    image = opened(server.file(task).content)
    assert image.mode == "RGBA"
    assert corners_and_centre(image) == [0, 0, 0, 0, 255]
    assert task["input"]["background"] == "transparent"
    assert task["input"]["prompt"] == "a red ball"  # the caller's prompt; the engine saw it steered


def test_opaque_and_auto_backgrounds_stay_rgb(server: Server) -> None:
    for background in ("opaque", "auto"):
        response = server.openai.images.generate(
            model="picture",
            prompt="a red ball",
            size="512x512",
            background=background,  # type: ignore[arg-type]
        )
        assert response.data is not None and response.background == "opaque"
        assert opened(base64.b64decode(response.data[0].b64_json or "")).mode == "RGB"
    assert server.picture.prompts[-1] == "a red ball"


def test_a_background_that_cannot_be_keyed_out_comes_back_opaque_and_says_so(server: Server) -> None:
    response = server.openai.images.generate(
        model="tiny", prompt="noise", size="512x512", background="transparent", output_format="png"
    )
    assert response.data is not None and response.background == "opaque"  # what was made
    assert opened(base64.b64decode(response.data[0].b64_json or "")).mode == "RGB"


def test_transparent_jpeg_is_refused_in_each_dialect(server: Server) -> None:
    extension = {"generationConfig": {"imageConfig": {"background": "transparent"}}}
    config = output_options("jpeg").model_copy(
        update={"http_options": types.HttpOptions(extra_body=extension)}
    )
    with pytest.raises(genai.errors.ClientError) as gemini:
        server.vertex.models.generate_content(model="picture", contents="a red ball", config=config)
    assert gemini.value.code == 400
    assert str(gemini.value.message).startswith(
        "generationConfig.imageConfig.background: 'transparent' needs an output format with an alpha channel"
    )
    task = server.task(model="picture", prompt="a red ball", background="transparent", output_format="jpg")
    assert task["error"]["field"] == "input.background"
    assert "JPEG has none; ask for PNG, WebP or AVIF output" in task["error"]["message"]


# --- seeds and determinism --------------------------------------------------------------------


def test_one_seed_gives_the_same_bytes_through_every_door(
    server: Server, data_dir: Path, hub_cache: Path, tmp_path: Path
) -> None:
    seed = 77
    from_openai = server.openai.images.generate(
        model="tiny", prompt="a cube", size="512x512", extra_body={"seed": seed}
    )
    assert from_openai.data is not None
    config = types.GenerateContentConfig(seed=seed, image_config=types.ImageConfig(image_size="512"))
    from_gemini = gemini_image(
        server.gemini.models.generate_content(model="tiny", contents="a cube", config=config)
    )[1]
    from_tasks = server.file(server.task(prompt="a cube", seed=seed)).content
    out = tmp_path / "cube.png"
    args = [
        "--data-dir",
        str(data_dir),
        "generate",
        "a cube",
        "-e",
        "tiny",
        "-s",
        "512",
        "--seed",
        str(seed),
        "-o",
        str(out),
    ]
    unmarked = {f"PLANTAIN_{name.upper()}": str(value).lower() for name, value in UNMARKED.items()}
    result = CliRunner(env={"PLANTAIN_HUB_CACHE": str(hub_cache), **unmarked}).invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (
        base64.b64decode(from_openai.data[0].b64_json or "") == from_gemini == from_tasks == out.read_bytes()
    )


def equal_up_to_rounding(first: bytes, second: bytes) -> bool:
    """Whether two encoded images show the same picture up to the rounding of batched kernels
    (a batch of n and a single image differ by ±1 in a few channel values on CPU)."""
    a, b = (np.asarray(Image.open(io.BytesIO(data)), dtype=np.int16) for data in (first, second))
    if a.shape != b.shape:
        return False
    difference = np.abs(a - b)
    return int(difference.max()) <= 2 and float((difference > 0).mean()) < 0.001


def test_image_k_of_seed_s_is_image_0_of_seed_s_plus_k(server: Server) -> None:
    """The images of one request run as one batch with seeds s, s+1, …; each is made again
    alone from its seed (the same picture; bytes may differ by batched-kernel rounding)."""
    batch = server.task(prompt="a cube", seed=50, num_images=3)
    assert [image["seed"] for image in batch["output"]["images"]] == [50, 51, 52]
    others = server.task(prompt="a cube", seed=51, num_images=1)
    assert not equal_up_to_rounding(server.file(batch, 0).content, server.file(others).content)
    for k in range(3):
        alone = server.task(prompt="a cube", seed=50 + k)
        assert equal_up_to_rounding(server.file(batch, k).content, server.file(alone).content)


def test_openai_reports_each_images_seed_and_a_reported_seed_reproduces_it(server: Server) -> None:
    raw = server.openai.images.with_raw_response.generate(model="tiny", prompt="a cube", size="512x512", n=2)
    response = raw.parse()
    assert response.data is not None
    seeds = [int(seed) for seed in raw.headers[SEEDS_HEADER].split(", ")]
    assert seeds[1] == seeds[0] + 1  # a random first seed, then the next
    assert [getattr(item, "seed", None) for item in response.data] == seeds
    again = server.openai.images.generate(
        model="tiny", prompt="a cube", size="512x512", extra_body={"seed": seeds[1]}
    )
    assert again.data is not None
    made, remade = (base64.b64decode(item.b64_json or "") for item in (response.data[1], again.data[0]))
    assert equal_up_to_rounding(made, remade)


def test_gemini_reports_the_seeds_in_a_header(server: Server) -> None:
    config = types.GenerateContentConfig(candidate_count=2, image_config=types.ImageConfig(image_size="512"))
    response = server.gemini.models.generate_content(model="tiny", contents="a cube", config=config)
    first, second = (int(seed) for seed in gemini_headers(response)[SEEDS_HEADER.lower()].split(", "))
    assert second == first + 1
    again = types.GenerateContentConfig(seed=second, image_config=types.ImageConfig(image_size="512"))
    alone = server.gemini.models.generate_content(model="tiny", contents="a cube", config=again)
    assert equal_up_to_rounding(gemini_image(alone)[1], gemini_image(response, 1)[1])


# --- sampling knobs ---------------------------------------------------------------------------


def test_gemini_language_model_settings_are_reported_as_ignored(server: Server) -> None:
    config = types.GenerateContentConfig(
        temperature=0.7,
        top_p=0.9,
        top_k=40,
        max_output_tokens=8192,
        image_config=types.ImageConfig(image_size="512"),
    )
    response = server.gemini.models.generate_content(model="tiny", contents="a cube", config=config)
    assert gemini_headers(response)[IGNORED_HEADER.lower()] == "temperature, topP, topK, maxOutputTokens"
    assert server.latest_task()["input"]["ignored"] == ["temperature", "topP", "topK", "maxOutputTokens"]
    plain = server.gemini.models.generate_content(
        model="tiny",
        contents="a cube",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    assert IGNORED_HEADER.lower() not in gemini_headers(plain)


def test_openai_style_is_reported_as_ignored(server: Server) -> None:
    raw = server.openai.images.with_raw_response.generate(
        model="tiny", prompt="a cube", size="512x512", style="vivid"
    )
    assert raw.headers[IGNORED_HEADER] == "style"
    plain = server.openai.images.with_raw_response.generate(model="tiny", prompt="a cube", size="512x512")
    assert IGNORED_HEADER not in plain.headers


def test_task_api_tasks_ignore_nothing(server: Server) -> None:
    assert server.task(prompt="a cube", steps=2, guidance=2.5)["input"]["ignored"] == []


@pytest.mark.parametrize(
    ("quality", "steps"), [("low", 2), ("medium", 4), ("auto", 4), ("high", 6), ("hd", 6)]
)
def test_openai_quality_scales_the_presets_steps(server: Server, quality: Any, steps: int) -> None:
    server.openai.images.generate(model="tiny", prompt="a cube", size="512x512", quality=quality)
    latest = server.latest_task()
    assert latest["input"]["ignored"] == []
    assert latest["output"]["steps"] == steps  # tiny's preset is 4 steps
