"""The official ``inferencesh`` SDK (0.36) against a live Plantain server serving ``tiny``: its
``run`` (waiting, ``wait=False``, ``stream=True``), ``get_task``, ``cancel`` and its errors."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from inferencesh import inference
from inferencesh.client import Inference, TaskStatus, parse_status
from inferencesh.models.errors import APIError
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input

KEY = "inf_test-key"


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    # 127.0.0.1 allowed: a run's input image may be an earlier run's output URL on this server.
    settings = server_settings(api_keys=[KEY], allowed_hosts=["127.0.0.1"])
    with LiveServer(create_app(settings)) as server:
        yield server.wait_ready()


@pytest.fixture
def client(base: str) -> Any:
    return inference(api_key=KEY, base_url=base)


def size_of(url: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(httpx.get(url).content)).size


def test_run_waits_and_returns_the_completed_task(client: Any) -> None:
    result = client.run(
        {"app": "google/gemini-3-1-flash-image-preview", "input": {"prompt": "a heron", "resolution": "0.5K"}}
    )
    assert parse_status(result["status"]) == TaskStatus.COMPLETED
    output = result["output"]
    assert [size_of(url) for url in output["images"]] == [(512, 512)]
    assert (
        output["output_meta"]["outputs"][0]["width"] == 512 and output["output_meta"]["served_by"] == "tiny"
    )


def test_run_stream_yields_progress_then_the_output(client: Any) -> None:
    updates = list(
        client.run({"app": "plantain/tiny", "input": {"prompt": "a moth", "resolution": "0.5K"}}, stream=True)
    )
    statuses = [parse_status(update["status"]) for update in updates]
    assert statuses[-1] == TaskStatus.COMPLETED
    progress = [u["output"]["progress"] for u in updates if parse_status(u["status"]) == TaskStatus.RUNNING]
    assert progress and progress == sorted(progress) and all(0 <= p < 100 for p in progress)
    assert (
        updates[-1]["output"]["images"][0].endswith(".png")
        or "/v1/files/" in updates[-1]["output"]["images"][0]
    )


def test_run_without_waiting_then_get_and_cancel(client: Any) -> None:
    task = client.run(
        {"app": "plantain/tiny", "input": {"prompt": "a fern", "resolution": "0.5K"}}, wait=False
    )
    assert set(task) >= {"id", "status", "input", "output", "created_at", "updated_at"}
    assert parse_status(task["status"]) in {TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.COMPLETED}
    done = client.wait_for_completion(task["id"])
    assert parse_status(done["status"]) == TaskStatus.COMPLETED
    client.cancel(task["id"])  # an ended task stays as it is
    assert parse_status(client.get_task(task["id"]).data["status"]) == TaskStatus.COMPLETED


def test_an_input_image_url_is_fetched_and_edited(client: Any) -> None:
    first = client.run(
        {"app": "plantain/tiny", "input": {"prompt": "a pear", "aspect_ratio": "16:9", "resolution": "0.5K"}}
    )
    url = first["output"]["images"][0]
    edited = client.run(
        {"app": "plantain/tiny", "input": {"prompt": "a pear, blue", "images": [url], "resolution": "0.5K"}}
    )
    width, height = size_of(edited["output"]["images"][0])
    assert width > height  # aspect_ratio auto: the input's 16:9 shape
    assert edited["input"]["images"] == 1


def test_a_local_file_and_base64_are_uploaded_by_the_sdk_and_edited(client: Any, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(make_input(96, 64).data)
    inline = base64.b64encode(make_input(64, 96).data).decode()
    for image, shape in ((str(photo), (624, 416)), (inline, (416, 624))):
        result = client.run(
            {"app": "plantain/tiny", "input": {"prompt": "the same", "images": [image], "resolution": "0.5K"}}
        )
        assert parse_status(result["status"]) == TaskStatus.COMPLETED
        assert size_of(result["output"]["images"][0]) == shape  # the uploaded input's shape


def test_an_upload_url_takes_the_bytes_without_a_key_and_big_files_are_refused(base: str) -> None:
    declared = httpx.post(
        f"{base}/files",
        json={"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}]},
        headers={"authorization": f"Bearer {KEY}"},
    ).json()["data"][0]
    assert declared["upload_url"].startswith(f"{base}/v1/files/")
    assert httpx.put(declared["upload_url"], content=make_input().data[:10]).status_code == 200  # no key sent
    too_big = httpx.post(
        f"{base}/files",
        json={"files": [{"size": 8 * 1024 * 1024}]},
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert too_big.status_code == 400 and too_big.json()["field"] == "files[0].size"


def test_an_upload_of_more_bytes_than_declared_is_refused_naming_both(base: str) -> None:
    declared = httpx.post(
        f"{base}/files",
        json={"files": [{"filename": "a.png", "content_type": "image/png", "size": 10}]},
        headers={"authorization": f"Bearer {KEY}"},
    ).json()["data"][0]
    over = httpx.put(declared["upload_url"], content=make_input().data[:11])
    assert over.status_code == 400 and over.json()["field"] == "body"
    assert "11 bytes" in over.json()["detail"] and "10 bytes" in over.json()["detail"]
    # the refused upload is gone: its URL takes nothing more
    assert httpx.put(declared["upload_url"], content=make_input().data[:10]).status_code == 404


def test_ignored_parameters_come_back_as_a_warning(base: str) -> None:
    seen: list[list[dict[str, Any]]] = []
    client = Inference(api_key=KEY, base_url=base, on_message=seen.append)
    client.run(
        {"app": "plantain/tiny", "input": {"prompt": "a yak", "resolution": "0.5K", "top_k": 40}}, wait=False
    )
    assert seen and seen[0][0]["level"] == "warning" and seen[0][0]["meta"]["ignored"] == ["top_k"]


def test_errors_are_api_errors_with_their_code_and_detail(client: Any) -> None:
    with pytest.raises(APIError) as unknown:
        client.run({"app": "acme/painter@v2", "input": {"prompt": "x"}})
    assert unknown.value.status_code == 404 and unknown.value.code == "model_not_found"
    assert "plantain/tiny" in unknown.value.message
    with pytest.raises(APIError) as bad:
        client.run({"app": "plantain/tiny", "input": {"prompt": "x", "temperature": 2.5}})
    assert (
        bad.value.status_code == 400 and "input.temperature" in bad.value.message and "2" in bad.value.message
    )
    assert "less than or equal to 2" in bad.value.message  # the limit ("2" is also in the value 2.5)


def test_a_wrong_key_is_refused(base: str) -> None:
    with pytest.raises(APIError) as refused:
        inference(api_key="inf_wrong", base_url=base).run({"app": "plantain/tiny", "input": {"prompt": "x"}})
    assert refused.value.status_code == 403
