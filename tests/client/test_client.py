"""plantain.Client and plantain.AsyncClient against a live server (tiny engine, API key on)."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain import AsyncClient, Client
from plantain.client import Event, Task
from plantain.errors import (
    AuthenticationError,
    CancelledError,
    IdempotencyConflictError,
    InvalidRequestError,
    MissingWeightsError,
    NotFoundError,
    PermissionDeniedError,
    PlantainError,
    ServerUnreachableError,
    TaskCancelledError,
)
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, free_port, make_input

KEY = "client-test-key"
STORY = ["queued", "started", "progress", "progress", "progress", "completed"]  # 3 steps


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as server:
        yield server.wait_ready()


@pytest.fixture
def client(base: str) -> Iterator[Client]:
    with Client(base, api_key=KEY) as client:
        yield client


def quick(prompt: str, **fields: Any) -> dict[str, Any]:
    return {"prompt": prompt, "resolution": "512", "steps": 1, **fields}


def resumed(client: Client, task_id: str, after: int, timeout: float = 30) -> list[int]:
    """The numbers of the events ``client.stream(task_id, after=after)`` gives; TimeoutError when
    it has not returned within ``timeout`` seconds (it hangs)."""
    found: Future[list[int]] = Future()

    def follow() -> None:
        try:
            found.set_result([event.seq for event in client.stream(task_id, after=after)])
        except BaseException as exc:
            found.set_exception(exc)

    threading.Thread(target=follow, daemon=True).start()  # a hung stream is left behind
    return found.result(timeout=timeout)


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class Recorder(httpx.BaseTransport):
    """A real transport that records each request and can cut the first event stream after
    ``cut_after`` events, as a dropped connection would (the server does not notice)."""

    def __init__(self, cut_after: int | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._inner = httpx.HTTPTransport()
        self._cut_after = cut_after

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = self._inner.handle_request(request)
        if self._cut_after is None or not request.url.path.endswith("/events"):
            return response
        cut, self._cut_after = self._cut_after, None
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code, headers=response.headers, stream=_Cut(response.stream, cut)
        )

    def close(self) -> None:
        self._inner.close()

    def last_event_ids(self) -> list[str | None]:
        return [r.headers.get("last-event-id") for r in self.requests if r.url.path.endswith("/events")]


class _Cut(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, events: int) -> None:
        self._inner, self._events = inner, events

    def __iter__(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self._inner:
            buffer += chunk
            if buffer.count(b"\n\n") >= self._events:
                yield b"\n\n".join(buffer.split(b"\n\n")[: self._events]) + b"\n\n"
                raise httpx.RemoteProtocolError("peer closed connection (cut by the test)")
        yield buffer

    def close(self) -> None:
        self._inner.close()


class AsyncRecorder(httpx.AsyncBaseTransport):
    """:class:`Recorder` for the async client."""

    def __init__(self, cut_after: int) -> None:
        self.last_event_ids: list[str | None] = []
        self._inner = httpx.AsyncHTTPTransport()
        self._cut_after: int | None = cut_after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not request.url.path.endswith("/events"):
            return response
        self.last_event_ids.append(request.headers.get("last-event-id"))
        if self._cut_after is None:
            return response
        cut, self._cut_after = self._cut_after, None
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code, headers=response.headers, stream=_AsyncCut(response.stream, cut)
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AsyncCut(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, events: int) -> None:
        self._inner, self._events = inner, events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        buffer = b""
        async for chunk in self._inner:
            buffer += chunk
            if buffer.count(b"\n\n") >= self._events:
                yield b"\n\n".join(buffer.split(b"\n\n")[: self._events]) + b"\n\n"
                raise httpx.RemoteProtocolError("peer closed connection (cut by the test)")
        yield buffer

    async def aclose(self) -> None:
        await self._inner.aclose()


# --- the blocking client -----------------------------------------------------------------------


def test_run_returns_the_finished_task_whose_images_open_at_the_asked_size(client: Client) -> None:
    task = client.run("tiny", quick("a red bicycle", aspect_ratio="16:9", num_images=2, seed=7))
    assert task.status == "succeeded" and task.engine == "tiny"
    assert [image.seed for image in task.outputs] == [7, 8]
    for image in task.outputs:
        assert (image.width, image.height) == (672, 384)  # 16:9 at the 512 tier
        assert size_of(client.download(image)) == (672, 384)
        assert image.media_type == "image/png"


def test_input_images_may_be_paths_or_bytes(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(make_input(96, 64).data)
    task = client.run("tiny", quick("make it night", images=[path, make_input(64, 64, fmt="JPEG").data]))
    assert task.input["images"] == 2
    assert (task.outputs[0].width, task.outputs[0].height) == (624, 416)  # the first input's 3:2


def test_an_unreadable_input_path_is_named_before_anything_is_sent(base: str, tmp_path: Path) -> None:
    recorder = Recorder()
    unread = r"cannot read input image .*missing\.png"
    with (
        Client(base, api_key=KEY, transport=recorder) as client,
        pytest.raises(InvalidRequestError, match=unread) as caught,
    ):
        client.submit("tiny", quick("x", images=[tmp_path / "missing.png"]))
    assert caught.value.field == "input.images[0]"
    assert caught.value.message.startswith("input.images[0]: ")
    assert recorder.requests == []


def test_submit_get_list_and_cancel(client: Client) -> None:
    task = client.submit("tiny", {"prompt": "slow", "steps": 40})
    assert task.status in {"queued", "running"} and not task.finished
    assert client.get(task.id).id == task.id
    assert task.id in [item.id for item in client.list(limit=100).data]
    client.cancel(task.id)
    ended = client.wait(task.id, timeout=60)
    assert ended.status == "cancelled"
    assert task.id in [item.id for item in client.list("cancelled", limit=100).data]


def test_wait_with_a_timeout_answers_the_task_as_it_is(client: Client) -> None:
    task = client.submit("tiny", {"prompt": "slow", "steps": 40})
    try:
        assert not client.wait(task.id, timeout=0.2).finished
    finally:
        client.cancel(task.id)


def test_run_raises_cancelled_error_for_a_task_cancelled_while_it_runs(client: Client) -> None:
    def cancel_once_started(event: Event) -> None:
        if event.type == "started":
            client.cancel(event.task_id)

    with pytest.raises(TaskCancelledError, match="was cancelled"):
        client.run("tiny", {"prompt": "slow", "steps": 40}, on_event=cancel_once_started)


def test_the_planner_stages_text_and_revised_prompt_are_read_from_the_output() -> None:
    body = {
        "id": "t",
        "status": "succeeded",
        "output": {"images": [], "description": "a boat, red", "revised_prompt": "a red boat"},
    }
    output = Task.model_validate(body).output
    assert output is not None and (output.description, output.revised_prompt) == ("a boat, red", "a red boat")
    plain = Task.model_validate({"id": "t", "status": "succeeded", "output": {"images": []}}).output
    assert plain is not None and (plain.description, plain.revised_prompt) == (None, None)


def test_the_former_name_of_task_cancelled_error_still_catches_it() -> None:
    assert CancelledError is TaskCancelledError  # deprecated, but docs/client.md promised it


def test_a_failed_task_raises_its_error_with_the_server_message(client: Client) -> None:
    with pytest.raises(MissingWeightsError, match="plantain pull flux2-klein-4b"):
        client.run("flux2-klein-4b", quick("a cat"))
    latest = client.list("failed", limit=1).data[0]
    assert latest.error is not None and latest.error.code == "missing_weights"


def test_stream_yields_every_event_in_order_and_resumes_after_a_number(client: Client) -> None:
    task = client.submit("tiny", quick("a kite", steps=3))
    events = list(client.stream(task.id))
    assert [event.type for event in events] == STORY
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
    assert [event.data["step"] for event in events if event.type == "progress"] == [1, 2, 3]
    assert events[-1].data["outputs"][0]["url"].startswith(f"{client.base_url}/v1/files/")
    assert [event.seq for event in client.stream(task.id, after=3)] == [4, 5, 6]


def test_a_dropped_stream_resumes_from_the_last_event_without_repeats(base: str) -> None:
    recorder = Recorder(cut_after=2)
    with Client(base, api_key=KEY, transport=recorder) as client:
        task = client.submit("tiny", quick("a kite", steps=3))
        events = list(client.stream(task.id))
    assert [event.type for event in events] == STORY
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
    assert recorder.last_event_ids() == [None, "2"]


def test_stream_resumed_at_or_past_the_end_of_an_ended_task_returns_at_once(client: Client) -> None:
    task = client.run("tiny", quick("a kite", steps=3))  # events 1 to 6, the last `completed`
    assert resumed(client, task.id, after=5) == [6]
    for after in (6, 7, 60):
        assert resumed(client, task.id, after=after) == [], after


def test_stream_resumed_past_the_end_of_a_running_task_returns_when_it_ends(client: Client) -> None:
    task = client.submit("tiny", quick("a slow kite", steps=40))
    assert resumed(client, task.id, after=1000, timeout=120) == []
    assert client.get(task.id).status == "succeeded"


@pytest.mark.parametrize(
    ("input_", "field", "text"),
    [
        (quick("p", resolution="8K"), "input.resolution", "'8K' is not allowed"),
        (quick("p", steps=400), "input.steps", "must be between 1 and 200"),
        (quick("p", colour="red"), "input.colour", "colour"),
        (quick("p", images=[12]), "input.images[0]", "int is not an image"),
        (quick("p", images=b"\x89PNG"), "input.images", "a list of images is expected, got one bytes"),
    ],
)
def test_a_bad_request_raises_invalid_request_error_naming_the_field(
    client: Client, input_: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.submit("tiny", input_)
    assert type(caught.value) is InvalidRequestError
    assert caught.value.field == field and text in caught.value.message


def test_other_server_errors_keep_their_class(client: Client) -> None:
    with pytest.raises(NotFoundError, match="task_nope"):
        client.get("task_nope")
    with pytest.raises(InvalidRequestError) as caught:
        client.list("done")
    assert caught.value.field == "status"
    first = client.submit("tiny", quick("a cup"), idempotency_key="cup-1")
    assert client.submit("tiny", quick("a cup"), idempotency_key="cup-1").id == first.id
    with pytest.raises(IdempotencyConflictError):
        client.submit("tiny", quick("another cup"), idempotency_key="cup-1")


def test_the_api_key_goes_to_the_server_and_nowhere_else(base: str) -> None:
    with Client(base) as keyless, pytest.raises(AuthenticationError, match="no API key"):
        keyless.list()
    with Client(base, api_key="wrong") as wrong, pytest.raises(PermissionDeniedError):
        wrong.list()
    recorder = Recorder()
    with Client(base, api_key=KEY, transport=recorder) as client:
        task = client.run("tiny", quick("a cat"))
        elsewhere = task.outputs[0].url.replace("127.0.0.1", "localhost")  # the same server by another name
        assert size_of(client.download(elsewhere)) == (512, 512)
    sent = {str(request.url): request.headers.get("authorization") for request in recorder.requests}
    assert sent[f"{base}/v1/tasks"] == f"Bearer {KEY}"
    assert sent[elsewhere] is None


def test_the_server_and_key_default_to_the_environment(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAIN_SERVER", base)
    monkeypatch.setenv("PLANTAIN_API_KEY", KEY)
    with Client() as client:
        for _ in range(2):
            client.submit("tiny", quick("a page"))
        every = [task.id for task in client.iter_tasks(page_size=1)]
        assert len(every) >= 2 and len(set(every)) == len(every)
        assert every == [task.id for task in client.list(limit=100).data]


def test_an_unreachable_server_is_one_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as client, pytest.raises(ServerUnreachableError, match=f"cannot reach .* at {url}"):
        client.get("task_x")


def test_the_readme_example_runs(base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = re.search(r"```python\n(from pathlib import Path\nfrom plantain import .*?)```", text, re.S)
    assert example is not None
    monkeypatch.setenv("PLANTAIN_SERVER", base)
    monkeypatch.setenv("PLANTAIN_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    exec(example.group(1), {})
    assert size_of((tmp_path / "bicycle.png").read_bytes()) == (1344, 768)


def test_the_docs_example_runs(base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "client.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, re.S)
    assert example is not None
    monkeypatch.setenv("PLANTAIN_SERVER", base)
    monkeypatch.setenv("PLANTAIN_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    exec(example.group(1).replace('"flux2-klein-4b"', '"tiny"'), {})  # the test server serves tiny
    (written,) = tmp_path.glob("bicycle-*.png")
    assert size_of(written.read_bytes()) == (1344, 768)


def test_importing_plantain_loads_no_engine_code() -> None:
    heavy = "{'torch', 'diffusers', 'transformers', 'fastapi'}"
    code = f"import sys, plantain; plantain.Client; print(sorted({heavy} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("statement", ["import plantain.client", "from plantain import Client"])
def test_the_client_imports_first_in_a_fresh_interpreter(statement: str) -> None:
    code = f"{statement}; import plantain, plantain.client; assert plantain.Client is plantain.client.Client"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the asyncio client ------------------------------------------------------------------------


def test_async_run_streams_events_to_a_coroutine_and_downloads(base: str) -> None:
    async def main() -> tuple[list[str], Any, bytes]:
        seen: list[str] = []

        async def record(event: Event) -> None:
            seen.append(event.type)

        async with AsyncClient(base, api_key=KEY) as client:
            task = await client.run("tiny", quick("a boat", steps=3, seed=3), on_event=record)
            return seen, task, await client.download(task.outputs[0])

    seen, task, data = asyncio.run(main())
    assert seen == STORY
    assert task.status == "succeeded" and task.outputs[0].seed == 3
    assert size_of(data) == (512, 512)


def test_async_run_without_a_callback_waits_on_the_server(base: str) -> None:
    async def main() -> Any:
        async with AsyncClient(base, api_key=KEY) as client:
            return await client.run("tiny", quick("a boat", output_format="webp"))

    task = asyncio.run(main())
    assert task.status == "succeeded" and task.outputs[0].media_type == "image/webp"


def test_async_a_dropped_stream_resumes_without_repeats(base: str) -> None:
    recorder = AsyncRecorder(cut_after=3)

    async def main() -> list[Event]:
        async with AsyncClient(base, api_key=KEY, transport=recorder) as client:
            task = await client.submit("tiny", quick("a kite", steps=3))
            return [event async for event in client.stream(task.id)]

    events = asyncio.run(main())
    assert [event.seq for event in events] == [1, 2, 3, 4, 5, 6]
    assert [event.type for event in events] == STORY
    assert recorder.last_event_ids == [None, "3"]


def test_async_stream_resumed_at_or_past_the_end_of_an_ended_task_returns_at_once(base: str) -> None:
    async def main() -> list[list[int]]:
        async with AsyncClient(base, api_key=KEY) as client:
            task = await client.run("tiny", quick("a kite", steps=3))  # events 1 to 6
            return [[event.seq async for event in client.stream(task.id, after=n)] for n in (5, 6, 7, 60)]

    assert asyncio.run(asyncio.wait_for(main(), 60)) == [[6], [], [], []]


def test_async_submit_get_list_cancel_and_errors(base: str) -> None:
    async def main() -> tuple[str, list[str], str, PlantainError]:
        async with AsyncClient(base, api_key=KEY) as client:
            task = await client.submit("tiny", {"prompt": "slow", "steps": 40})
            await client.cancel(task.id)
            ended = await client.wait(task.id, timeout=60)
            listed = [item.id async for item in client.iter_tasks("cancelled")]
            fetched = await client.get(task.id)
            try:
                await client.submit("tiny", quick("p", num_images=11))
            except PlantainError as exc:
                return ended.status, [task.id, *listed], fetched.status, exc
            raise AssertionError("num_images=11 was accepted")

    status, ids, fetched, error = asyncio.run(main())
    assert status == fetched == "cancelled" and ids[0] in ids[1:]
    assert type(error) is InvalidRequestError and error.field == "input.num_images"
