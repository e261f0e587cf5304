"""Output files on local disk and in an S3-compatible bucket (a real SeaweedFS server): the same
behaviour through both, and a server whose files live in the bucket (docs/settings.md,
``storage_url``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.services import SeaweedFS

from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError
from plantain.scheduler import Scheduler
from plantain.server.app import create_app
from plantain.settings import Settings, load_settings
from plantain.storage.blobs import Blobs, LocalBlobs, open_blobs
from plantain.storage.s3 import S3Blobs
from plantain.storage.tasks import NewTask, TaskStore
from plantain.testing import LiveServer, free_port
from plantain.types import ImageRequest, TaskOutput, TaskResult
from plantain.usage import no_usage

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


@pytest.fixture(params=["local", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Blobs:
    if request.param == "local":
        return LocalBlobs(tmp_path / "files")
    settings: dict[str, Any] = request.getfixturevalue("s3_settings")
    return open_blobs(Settings(data_dir=tmp_path, **settings))


def test_a_file_reads_back_as_written_and_is_gone_once_deleted(blobs: Blobs) -> None:
    blobs.put("file_a", PNG, "image/png")
    blobs.put("file_b", b"other", "image/jpeg")
    assert blobs.get("file_a") == PNG
    assert sorted(blobs.keys()) == ["file_a", "file_b"]
    blobs.delete("file_a")
    blobs.delete("file_a")  # deleting what is gone is no error (a retried expiry)
    with pytest.raises(FileNotFoundError):
        blobs.get("file_a")
    assert blobs.keys() == ["file_b"]


def test_a_bucket_prefix_is_its_own_store(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    ours = open_blobs(Settings(data_dir=tmp_path, **s3_settings))
    neighbour = open_blobs(
        Settings(data_dir=tmp_path, **{**s3_settings, "storage_url": s3_settings["storage_url"] + "-2"})
    )
    ours.put("mine", b"1", "image/png")
    neighbour.put("theirs", b"2", "image/png")
    assert ours.keys() == ["mine"] and neighbour.keys() == ["theirs"]
    assert isinstance(ours, S3Blobs) and ours.describe().endswith("/outputs")


def test_a_presigned_url_serves_the_file_as_an_image(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    blobs = open_blobs(Settings(data_dir=tmp_path, **s3_settings))
    blobs.put("file_c", PNG, "image/png")
    url = blobs.download_url("file_c", "image/png", 60)
    assert url is not None
    answer = httpx.get(url)
    assert (answer.status_code, answer.content, answer.headers["content-type"]) == (200, PNG, "image/png")
    assert LocalBlobs(tmp_path).download_url("file_c", "image/png", 60) is None  # local: always proxied


def test_a_storage_url_that_is_not_a_bucket_is_refused_naming_the_setting() -> None:
    with pytest.raises(
        ConfigurationError, match=r"storage_url \(PLANTAIN_STORAGE_URL\): 'gs://x'.*s3://BUCKET"
    ):
        load_settings(storage_url="gs://x")
    with pytest.raises(ConfigurationError, match="storage_url"):
        load_settings(storage_url="s3://")


def test_a_file_expires_from_the_bucket_with_its_task(s3_settings: dict[str, Any], tmp_path: Path) -> None:
    now = [1000.0]
    blobs = open_blobs(Settings(data_dir=tmp_path, **s3_settings))
    store = TaskStore(tmp_path, retention_seconds=60, clock=lambda: now[0], blobs=blobs)
    request = ImageRequest.create(prompt="a cube", engine="tiny")
    task, _ = store.create(NewTask(request=request, model="tiny", engine="tiny", source="tasks"))
    assert store.runs.claim_next() is not None
    blobs.put("out_1", PNG, "image/png")
    output = TaskOutput(file_id="out_1", media_type="image/png", width=8, height=8, seed=1)
    result = TaskResult(engine="tiny", outputs=(output,), steps=1, guidance=1.0, seconds=0.1)
    store.runs.succeed(task.id, result, {}, no_usage("USD"))
    blobs.put("orphan", b"written by a run that died before it was recorded", "image/png")
    assert store.runs.sweep_orphan_files() == 1 and blobs.keys() == ["out_1"]
    now[0] += 61
    assert store.runs.expire() == 1
    assert blobs.keys() == []
    store.close()


@pytest.fixture
def bucket_server(
    server_settings: Callable[..., Settings], s3_settings: dict[str, Any]
) -> Callable[..., tuple[LiveServer, Settings]]:
    def serve(**fields: Any) -> tuple[LiveServer, Settings]:
        settings = server_settings(**s3_settings, **fields)
        return LiveServer(create_app(settings)), settings

    return serve


def task_with_output(url: str) -> dict[str, Any]:
    body = {"model": "tiny", "input": {"prompt": "a lighthouse", "resolution": "512"}}
    answer = httpx.post(f"{url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=120)
    assert answer.status_code == 201, answer.text
    task: dict[str, Any] = answer.json()
    assert task["status"] == "succeeded"
    return task


def test_a_servers_outputs_are_in_the_bucket_and_served_through_it(
    bucket_server: Callable[..., tuple[LiveServer, Settings]], s3: SeaweedFS, bucket: str
) -> None:
    live, settings = bucket_server()
    with live:
        live.wait_ready()
        task = task_with_output(live.url)
        file_id = task["output"]["images"][0]["url"].rsplit("/", 1)[1]
        served = httpx.get(f"{live.url}/v1/files/{file_id}")
        stored = s3.client().get_object(Bucket=bucket, Key=f"outputs/{file_id}")
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
        assert served.content == stored["Body"].read() and stored["ContentType"] == "image/png"
        assert not (settings.data_dir / "files").exists()  # nothing on this machine's disk
        gemini = httpx.post(
            f"{live.url}/v1beta/models/tiny:generateContent",
            json={"contents": [{"parts": [{"text": "a cube"}]}]},
            timeout=120,
        )
        assert gemini.status_code == 200 and gemini.json()["candidates"][0]["content"]["parts"]


def test_redirected_downloads_go_to_a_presigned_bucket_url(
    bucket_server: Callable[..., tuple[LiveServer, Settings]],
) -> None:
    live, _ = bucket_server(file_downloads="redirect", presigned_url_seconds=30)
    with live:
        live.wait_ready()
        task = task_with_output(live.url)
        url = task["output"]["images"][0]["url"]
        answer = httpx.get(url)
        assert answer.status_code == 307
        location = answer.headers["location"]
        assert "X-Amz-Expires=30" in location and "X-Amz-Signature=" in location
        image = httpx.get(location)
        assert image.status_code == 200 and image.content[:8] == PNG[:8]
        assert httpx.get(f"{live.url}/v1/files/no-such-file").status_code == 404  # no redirect to nothing


def test_the_default_server_never_imports_the_s3_client(tmp_path: Path) -> None:
    code = (
        "import sys; from plantain.server.app import create_app; from plantain.settings import Settings; "
        f"create_app(Settings(data_dir={str(tmp_path)!r})); "
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False False"


def test_a_server_whose_bucket_is_missing_or_refuses_it_does_not_start(
    s3_settings: dict[str, Any], registry: EngineRegistry, tmp_path: Path
) -> None:
    cases = {
        "does not exist": {**s3_settings, "storage_url": "s3://no-such-bucket-here/x"},
        "refuses these credentials": {**s3_settings, "s3_secret_access_key": "wrong"},
        "no S3 server answered": {**s3_settings, "s3_endpoint_url": f"http://127.0.0.1:{free_port()}"},
    }
    loop = asyncio.new_event_loop()
    try:
        for index, (why, settings) in enumerate(cases.items()):
            scheduler = Scheduler(Settings(data_dir=tmp_path / str(index), **settings), registry)
            with pytest.raises(ConfigurationError, match=f"storage_url s3://.*{why}"):
                scheduler.start(loop)
            scheduler.close()
    finally:
        loop.close()
