"""google-genai's ``client.batches`` (3.x in the venv) against a live server: Gemini batch mode on
the durable queue. Requests ask for the 512 tier so each image takes about a second on 2 cores;
requests that must stay queued or running for a while wait behind a 2K one."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google import genai
from google.genai import errors, types
from PIL import Image

from plantain.imaging.sizes import TABLE_1K
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

MODEL = "gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def app(server_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(server_settings())


@pytest.fixture(scope="module")
def server(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> genai.Client:
    """google-genai 3.x with its default API version, v1."""
    return sdk(server)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a live port; its URL once the engines are ready."""
    with LiveServer(app) as live:
        live.wait_ready()
        yield live.url


def sdk(url: str, version: str | None = None) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url, api_version=version))


def inline(
    prompt: str, *, ratio: str | None = None, size: str = "512", key: str | None = None, contents: Any = None
) -> types.InlinedRequest:
    config = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio=ratio, image_size=size))
    return types.InlinedRequest(
        contents=contents or prompt, config=config, metadata={"key": key} if key else None
    )


def create(client: genai.Client, *requests: types.InlinedRequest, name: str = "test") -> types.BatchJob:
    return client.batches.create(model=MODEL, src=list(requests), config={"display_name": name})


def wait_done(client: genai.Client, name: str | None, timeout: float = 120) -> types.BatchJob:
    assert name is not None
    deadline = time.monotonic() + timeout
    while not (job := client.batches.get(name=name)).done:
        assert time.monotonic() < deadline, f"batch still {job.state} after {timeout} s"
        time.sleep(0.1)
    return job


def responses(job: types.BatchJob) -> list[types.InlinedResponse]:
    assert job.dest is not None and job.dest.inlined_responses is not None
    return job.dest.inlined_responses


def image_of(entry: types.InlinedResponse) -> bytes:
    assert entry.error is None and entry.response is not None and entry.response.candidates
    content = entry.response.candidates[0].content
    assert content is not None and content.parts and content.parts[0].inline_data
    data = content.parts[0].inline_data.data
    assert data is not None
    return data


def size_of(entry: types.InlinedResponse) -> tuple[int, int]:
    return Image.open(io.BytesIO(image_of(entry))).size


def half(ratio: str) -> tuple[int, int]:
    """The 512 tier: half the 1K table, each side rounded to the tiny engine's multiple of 16."""
    width, height = TABLE_1K[ratio]
    return round(width / 32) * 16, round(height / 32) * 16


def newest_task(server: str) -> str | None:
    """The id of the newest task on the server (every batch request is one)."""
    data = httpx.get(f"{server}/v1/tasks", params={"limit": 1}).json()["data"]
    return data[0]["id"] if data else None


def blocker(client: genai.Client) -> types.BatchJob:
    """A batch of two 2K images: the worker is busy with it for several seconds."""
    return create(client, inline("a big cube", size="2K"), inline("another", size="2K"), name="blocker")


# --- a batch from start to end ----------------------------------------------------------------


def test_a_batch_answers_each_request_in_order_as_generate_content_would(
    client: genai.Client, server: str
) -> None:
    job = create(
        client,
        inline("a red cube", ratio="16:9"),
        inline("a blue cube", ratio="1:1", key="second"),
        inline("a green cube", ratio="3:4"),
        name="cubes",
    )
    assert job.name and job.name.startswith("batches/")
    assert job.display_name == "cubes" and job.model == f"models/{MODEL}"
    assert job.state in {types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING}
    assert not job.done and job.dest is None  # no output before it has ended

    done = wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.create_time and done.end_time and done.end_time >= done.create_time
    entries = responses(done)
    assert [size_of(entry) for entry in entries] == [half("16:9"), (512, 512), half("3:4")]
    assert [entry.metadata for entry in entries] == [None, {"key": "second"}, None]
    for entry in entries:
        assert entry.response and entry.response.model_version == MODEL
        assert entry.response.candidates and entry.response.candidates[0].finish_reason == "STOP"
        assert entry.response.usage_metadata and entry.response.usage_metadata.candidates_token_count == 1290
    # The same batch through v1beta (google-genai 1.x and 2.x's default), same answer.
    beta = sdk(server, "v1beta")
    again = beta.batches.get(name=job.name)
    assert again.state == done.state
    assert [image_of(entry) for entry in responses(again)] == [image_of(entry) for entry in entries]


def test_cancelling_a_queued_batch_ends_it_with_every_request_cancelled(client: genai.Client) -> None:
    ahead = blocker(client)
    job = create(client, inline("a cube", key="one"), inline("a cone", key="two"), name="cancel me")
    client.batches.cancel(name=job.name)  # its requests are still queued behind the blocker
    cancelled = wait_done(client, job.name, timeout=10)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED
    entries = responses(cancelled)
    assert [entry.metadata for entry in entries] == [{"key": "one"}, {"key": "two"}]
    assert all(entry.response is None and entry.error and entry.error.code == 1 for entry in entries)

    client.batches.cancel(name=ahead.name)  # running: it stops at its next step
    stopped = wait_done(client, ahead.name, timeout=60)
    assert stopped.state == types.JobState.JOB_STATE_CANCELLED
    assert any(entry.error and entry.error.code == 1 for entry in responses(stopped))


def test_list_pages_newest_first_and_delete_forgets_a_batch(client: genai.Client, server: str) -> None:
    ahead = blocker(client)  # so that the two batches below are still queued when deleted
    older = create(client, inline("a cube"), name="older")
    newer = create(client, inline("a cone"), name="newer")
    pager = client.batches.list(config={"page_size": 1})
    assert [job.name for job in pager.page] == [newer.name]
    names = [job.name for job in pager]  # the pager follows nextPageToken
    assert names.index(newer.name) < names.index(older.name) < names.index(ahead.name)

    cancelled_before = len(cancelled_tasks(server))
    client.batches.delete(name=older.name)
    client.batches.delete(name=newer.name)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.get(name=older.name)
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
    assert {older.name, newer.name}.isdisjoint(job.name for job in client.batches.list())
    assert len(cancelled_tasks(server)) == cancelled_before + 2  # their queued work will not run
    client.batches.cancel(name=ahead.name)


def cancelled_tasks(server: str) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = httpx.get(
        f"{server}/v1/tasks", params={"status": "cancelled", "limit": 100}
    ).json()["data"]
    return tasks


# --- refusals ---------------------------------------------------------------------------------

UNREADABLE = types.Part.from_bytes(data=b"not an image", mime_type="image/png")
REFUSALS: dict[str, tuple[list[types.InlinedRequest] | str, str]] = {
    "bad aspect ratio at index 2": (
        [inline("a"), inline("b"), inline("c", ratio="7:3")],
        "batch.inputConfig.requests.requests[2].request.generationConfig.imageConfig.aspectRatio: '7:3'",
    ),
    "unreadable image at index 1": (
        [inline("a"), inline("b", contents=[UNREADABLE, "edit it"])],
        "batch.inputConfig.requests.requests[1].request.contents[0].parts[0].inlineData "
        "is not a readable image",
    ),
    "a blocked prompt at index 1 before an unreadable image at index 0": (
        [inline("a", contents=[UNREADABLE, "edit it"]), inline("a naked man")],  # prompts first
        "batch.inputConfig.requests.requests[1].request.contents: refused by the safety policy",
    ),
    "an uploaded file as input": (
        "files/requests-jsonl",
        "batch.inputConfig.fileName: 'files/requests-jsonl' is an uploaded file, and this server has "
        "no Files API",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_one_bad_request_refuses_the_whole_batch_naming_it(
    client: genai.Client, server: str, case: str
) -> None:
    src, message = REFUSALS[case]
    before = newest_task(server)
    with pytest.raises(errors.ClientError) as caught:
        client.batches.create(model=MODEL, src=src)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert message in (caught.value.message or "")
    assert newest_task(server) == before  # not even the good requests were queued


def test_a_batch_the_queue_has_no_room_for_is_refused_whole(
    app: FastAPI, client: genai.Client, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.scheduler.settings, "max_queued_tasks", 2)
    with pytest.raises(errors.ClientError) as too_big:
        create(client, inline("a"), inline("b"), inline("c"))
    assert too_big.value.code == 400
    assert "3 requests are more than the queue holds (max_queued_tasks is 2)" in str(too_big.value.message)

    ahead = blocker(client)  # one or two of its tasks wait now
    before = newest_task(server)
    with pytest.raises(errors.ClientError) as full:
        create(client, inline("a"), inline("b"))
    assert (full.value.code, full.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "this batch has 2; retry later" in str(full.value.message)
    assert newest_task(server) == before
    client.batches.cancel(name=ahead.name)
    wait_done(client, ahead.name, timeout=60)


# --- durability -------------------------------------------------------------------------------


def test_a_batch_survives_a_restart(server_settings: Callable[..., Settings]) -> None:
    settings = server_settings(drain_seconds=0)
    with serving(create_app(settings)) as url:
        client = sdk(url)
        finished = wait_done(client, create(client, inline("a cube", ratio="4:3", key="k")).name)
        unfinished = create(client, inline("a cone"), inline("a ring"))  # still queued at the stop
    with serving(create_app(settings)) as url:
        client = sdk(url)
        again = client.batches.get(name=finished.name)
        assert again.state == types.JobState.JOB_STATE_SUCCEEDED and again.display_name == "test"
        assert [image_of(e) for e in responses(again)] == [image_of(e) for e in responses(finished)]
        assert responses(again)[0].metadata == {"key": "k"} and size_of(responses(again)[0]) == half("4:3")
        resumed = wait_done(client, unfinished.name)
        assert resumed.state == types.JobState.JOB_STATE_SUCCEEDED
        assert [size_of(entry) for entry in responses(resumed)] == [(512, 512), (512, 512)]
