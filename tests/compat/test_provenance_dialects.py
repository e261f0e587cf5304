"""Provenance through every door: images made through the google-genai and openai SDKs and the
task API carry content credentials and a watermark naming their task; ``POST
/v1/provenance/verify`` and ``plantain verify`` read both back, also after a JPEG re-save and a
resize; opt-outs are refused unless the operator allows them; ``/v1/models`` says what is applied.
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from click.testing import CliRunner
from google import genai
from google.genai import types
from PIL import Image

from plantain.cli.main import cli
from plantain.client import Client
from plantain.dialects.report import PROVENANCE_HEADER
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.storage.tasks import TaskStore
from plantain.testing import LiveServer

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED, COMPOSITE = IPTC + "trainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia"


class Server:
    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.http = httpx.Client(base_url=url, timeout=120)
        self.openai = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        self.gemini = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))

    def task(self, **input: Any) -> dict[str, Any]:
        body = {"model": "tiny", "input": {"resolution": "512", **input}}
        response = self.http.post("/v1/tasks", json=body, headers={"prefer": "wait"})
        task: dict[str, Any] = response.json()
        assert response.status_code == 201 and task["status"] == "succeeded", task
        return task

    def image(self, task: dict[str, Any], index: int = 0) -> bytes:
        return self.http.get(task["output"]["images"][index]["url"]).content

    def verify(self, data: bytes, name: str = "image.png") -> dict[str, Any]:
        response = self.http.post("/v1/provenance/verify", files={"file": (name, data)})
        assert response.status_code == 200, response.text
        report: dict[str, Any] = response.json()
        return report

    def latest_task_id(self) -> str:
        task_id: str = self.http.get("/v1/tasks", params={"limit": 1}).json()["data"][0]["id"]
        return task_id

    def close(self) -> None:
        for client in (self.http, self.openai, self.gemini):
            client.close()


@contextmanager
def serve(settings: Settings) -> Iterator[Server]:
    with LiveServer(create_app(settings)) as live:
        live.wait_ready()
        server = Server(live.url, settings)
        yield server
        server.close()


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    with serve(server_settings()) as server:
        yield server


@pytest.fixture(scope="module")
def lenient(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    """A server that lets requests opt out of the marks."""
    with serve(server_settings(provenance_opt_out=True)) as server:
        yield server


def assert_made_here(report: dict[str, Any], task_id: str, image: int = 1) -> None:
    assert report["verdict"] == f"made by this server (task {task_id}, image {image})"
    mark = report["watermark"]
    assert mark["present"] and mark["this_server"] and mark["task_id"] == task_id
    assert mark["image"] == image


def assert_signed_here(
    report: dict[str, Any], action: str = "c2pa.created", source_type: str = TRAINED
) -> None:
    credentials = report["content_credentials"]
    assert credentials["state"] == "trusted", credentials["problems"]
    assert credentials["signed_by_this_server"]
    assert credentials["digital_source_type"] == source_type
    assert credentials["action"] == action


def photo() -> bytes:
    """A real photograph nobody marked (scikit-image's astronaut, public domain)."""
    return (files("skimage") / "data" / "astronaut.png").read_bytes()


def jpeg_then_half(data: bytes, quality: int = 70) -> bytes:
    """``data`` re-saved as JPEG at ``quality``, then scaled to half its size (saved as PNG)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    half = Image.open(io.BytesIO(buffer.getvalue()))
    half = half.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    half.save(out, "PNG")
    return out.getvalue()


# --- every door ---------------------------------------------------------------------------------


def test_a_task_image_verifies_with_its_task_id(server: Server) -> None:
    task = server.task(prompt="a lighthouse", seed=3)
    report = server.verify(server.image(task))
    assert_made_here(report, task["id"])
    assert_signed_here(report)
    assert report["content_credentials"]["model"] == "tiny"
    made_here = {"watermark": True, "content_credentials": True, "provider": None}  # no provider made it
    assert task["output"]["images"][0]["provenance"] == made_here
    assert task["usage"]["provenance_seconds"] > 0


def test_a_gemini_image_verifies(server: Server) -> None:
    response = server.gemini.models.generate_content(
        model="gemini-2.5-flash-image",
        contents="a lighthouse",
        config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="512")),
    )
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    blob = response.candidates[0].content.parts[0].inline_data
    assert blob is not None and blob.data is not None
    report = server.verify(blob.data)
    assert_made_here(report, server.latest_task_id())
    assert_signed_here(report)
    assert report["content_credentials"]["model"] == "gemini-2.5-flash-image"


def test_openai_images_verify_each_with_its_place(server: Server) -> None:
    raw = server.openai.images.with_raw_response.generate(
        model="gpt-image-1", prompt="a lighthouse", n=2, size="1024x1024", quality="low"
    )
    assert raw.headers[PROVENANCE_HEADER] == "watermark, content-credentials; watermark, content-credentials"
    result = raw.parse()
    assert result.data is not None
    task_id = server.latest_task_id()
    for index, image in enumerate(result.data, start=1):
        assert image.b64_json is not None
        report = server.verify(base64.b64decode(image.b64_json))
        assert_made_here(report, task_id, image=index)
        assert_signed_here(report)


def test_an_edit_is_signed_as_edited_with_its_input_as_ingredient(server: Server) -> None:
    first = server.image(server.task(prompt="a lighthouse", seed=5))
    task = server.task(prompt="make it night", images=[base64.b64encode(first).decode()])
    report = server.verify(server.image(task))
    assert_made_here(report, task["id"])
    assert_signed_here(report, action="c2pa.edited", source_type=COMPOSITE)
    (ingredient,) = report["content_credentials"]["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    assert ingredient["has_manifest"]  # the input was this server's signed image: the chain shows


# --- the "done when" --------------------------------------------------------------------


def test_the_watermark_survives_jpeg_q70_and_a_half_size_resize(server: Server) -> None:
    task = server.task(prompt="a lighthouse", resolution="1K", seed=8)
    attacked = jpeg_then_half(server.image(task))
    report = server.verify(attacked, "attacked.png")
    assert report["content_credentials"]["state"] == "absent"  # a re-save drops the manifest
    assert_made_here(report, task["id"])
    assert report["watermark"]["read_at"] == [1024, 1024]


def test_an_unmarked_photo_is_reported_unmarked(server: Server) -> None:
    report = server.verify(photo(), "astronaut.png")
    assert report["verdict"] == "no provenance found"
    assert not report["watermark"]["present"] and report["watermark"]["task_id"] is None
    assert report["content_credentials"]["state"] == "absent"


def test_an_unmarked_image_reports_no_read_at_through_the_api_and_the_cli(
    server: Server, tmp_path: Path
) -> None:
    # detect tries the astronaut at 1024 and 2048 too; none of them found a mark to read
    report = server.verify(photo(), "astronaut.png")
    assert not report["watermark"]["present"] and report["watermark"]["read_at"] is None
    path = tmp_path / "astronaut.png"
    path.write_bytes(photo())
    data_dir = ["--data-dir", str(server.settings.data_dir)]
    local = CliRunner().invoke(cli, [*data_dir, "verify", "--json", str(path)])
    assert local.exit_code == 0, local.output
    assert json.loads(local.output)["watermark"]["read_at"] is None


def test_verify_refuses_what_is_not_an_image_in_the_task_envelope(server: Server) -> None:
    missing = server.http.post("/v1/provenance/verify", files={"image": ("x.png", b"x")})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "file"
    garbage = server.http.post("/v1/provenance/verify", files={"file": ("x.png", b"not an image")})
    assert garbage.status_code == 400
    assert (
        garbage.json()["error"]["code"] == "invalid_image" and "x.png" in garbage.json()["error"]["message"]
    )
    raw = server.http.post("/v1/provenance/verify", content=photo(), headers={"content-type": "image/png"})
    assert raw.status_code == 200 and raw.json()["verdict"] == "no provenance found"


# --- control ------------------------------------------------------------------------------------


def test_an_opt_out_is_refused_naming_the_field_in_each_dialect(server: Server) -> None:
    response = server.http.post(
        "/v1/tasks", json={"model": "tiny", "input": {"prompt": "p", "watermark": False}}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "input.watermark"
    assert "provenance_opt_out" in response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        server.openai.images.generate(prompt="p", extra_body={"content_credentials": False})
    assert refused.value.param == "content_credentials"
    gemini = server.http.post(
        "/v1beta/models/gemini-2.5-flash-image:generateContent",
        json={
            "contents": [{"parts": [{"text": "p"}]}],
            "generationConfig": {"imageConfig": {"addWatermark": False}},
        },
    )
    assert gemini.status_code == 400
    assert "generationConfig.imageConfig.addWatermark" in gemini.json()["error"]["message"]


def test_where_allowed_a_request_opts_out_of_each_mark(lenient: Server) -> None:
    task = lenient.task(prompt="p", seed=1, watermark=False)
    report = lenient.verify(lenient.image(task))
    assert not report["watermark"]["present"]
    assert_signed_here(report)
    assert task["input"]["watermark"] is False
    raw = lenient.openai.images.with_raw_response.generate(
        prompt="p",
        size="1024x1024",
        quality="low",
        extra_body={"watermark": False, "content_credentials": False},
    )
    assert raw.headers[PROVENANCE_HEADER] == "none"
    image = raw.parse().data
    assert image is not None and image[0].b64_json is not None
    assert lenient.verify(base64.b64decode(image[0].b64_json))["verdict"] == "no provenance found"


def test_the_model_listings_say_what_is_applied(server: Server, lenient: Server) -> None:
    model = server.openai.models.retrieve("gpt-image-1")
    assert model.model_extra is not None
    provenance = model.model_extra["provenance"]
    assert provenance["watermark"]["applied"] and provenance["content_credentials"]["applied"]
    assert provenance["opt_out_allowed"] is False
    listing = lenient.http.get("/v1beta/models").json()["models"]
    assert all(entry["provenance"]["opt_out_allowed"] for entry in listing)


def test_a_server_without_marks_says_so(server_settings: Callable[..., Settings]) -> None:
    with serve(server_settings(watermark=False, content_credentials=False)) as bare:
        provenance = bare.http.get("/v1/models").json()["data"][0]["provenance"]
        assert not provenance["watermark"]["applied"] and not provenance["content_credentials"]["applied"]
        task = bare.task(prompt="p")
        unmarked = {"watermark": False, "content_credentials": False, "provider": None}
        assert task["output"]["images"][0]["provenance"] == unmarked
        assert bare.verify(bare.image(task))["verdict"] == "no provenance found"


# --- the command line and the client --------------------------------------------------------------


def test_plantain_verify_locally_and_through_a_server(server: Server, tmp_path: Path) -> None:
    task = server.task(prompt="a lighthouse", seed=9)
    marked, unmarked = tmp_path / "marked.png", tmp_path / "astronaut.png"
    marked.write_bytes(server.image(task))
    unmarked.write_bytes(photo())
    runner = CliRunner()
    data_dir = ["--data-dir", str(server.settings.data_dir)]  # the server's keys, tag and database
    local = runner.invoke(cli, [*data_dir, "verify", str(marked), str(unmarked)])
    assert local.exit_code == 0, local.output
    assert f"{marked}: made by this server (task {task['id']}, image 1)" in local.output
    assert f"{unmarked}: no provenance found" in local.output
    remote = runner.invoke(cli, ["verify", "--json", "--server", server.url, str(marked)])
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.output)["watermark"]["task_id"] == task["id"]
    with Client(server.url) as client:
        assert client.verify(marked)["content_credentials"]["state"] == "trusted"


def test_stream_previews_carry_the_first_images_watermark(server: Server) -> None:
    events = list(server.openai.images.generate(prompt="p", size="512x512", stream=True, partial_images=1))
    assert [event.type for event in events] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    preview = base64.b64decode(events[0].b64_json or "")
    report = server.verify(preview)
    assert_made_here(report, server.latest_task_id())
    assert report["content_credentials"]["state"] == "absent"  # a stand-in, not a result: unsigned


def test_an_image_names_its_task_after_the_task_expired(
    server_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = server_settings()
    with serve(settings) as first:
        task = first.task(prompt="a lighthouse")
        image = first.image(task)
    store = TaskStore(settings.data_dir, retention_seconds=60, clock=lambda: time.time() + 86400)
    try:
        assert store.runs.expire() == 1  # the task, its events and its file are gone
        assert store.marks.reserve(task["id"], 1) == store.marks.reserve(task["id"], 1)  # a rerun's
    finally:
        store.close()
    with serve(settings) as again:
        assert again.http.get(f"/v1/tasks/{task['id']}").status_code == 404
        assert_made_here(again.verify(image), task["id"])
