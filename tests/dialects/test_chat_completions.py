"""Chat completions with image output (OpenRouter's shape) through the ``openai`` SDK, LiteLLM and
plain HTTP, against a live Plantain server serving the ``tiny`` engine."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from PIL import Image

from plantain.dialects.chat import routes as chat_routes
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import FileHost, LiveServer, make_input, same_picture
from plantain.types import Task

MODEL = "google/gemini-2.5-flash-image"
IMAGE_TEXT = {"modalities": ["image", "text"]}
SMALL = {"image_config": {"image_size": "0.5K"}}  # quicker runs where the size is not the point


class Server:
    def __init__(self, url: str, app: FastAPI, host: FileHost) -> None:
        self.url = url
        self.app = app
        self.host = host
        self.client = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)

    def task(self, completion_id: str) -> Task:
        """The task a completion ran as (its id is ``chatcmpl-<task id>``), as the store recorded it."""
        task: Task = self.app.state.scheduler.store.get(completion_id.removeprefix("chatcmpl-"))
        return task


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    with FileHost() as host:
        host.files["red.png"] = make_input(96, 64).data
        app = create_app(server_settings(allowed_hosts=[host.host_port]))
        with LiveServer(app) as live:
            yield Server(live.url, app, host)


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return server.client


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def images_of(message: Any) -> list[dict[str, Any]]:
    """``message.images`` (or a delta's), which the SDK keeps as an extra field."""
    extra = message.model_extra or {}
    images: list[dict[str, Any]] = extra.get("images") or []
    return images


def picture(item: dict[str, Any]) -> Image.Image:
    url = item["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(png_bytes(item)))


def png_bytes(item: dict[str, Any]) -> bytes:
    return base64.b64decode(item["image_url"]["url"].partition(",")[2])


def user(text: str, *images: str) -> Any:  # a ChatCompletionUserMessageParam
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return {"role": "user", "content": parts}


# --- answers --------------------------------------------------------------------------------


def test_an_image_comes_back_in_message_images_at_the_asked_aspect_ratio(
    server: Server, client: openai.OpenAI
) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "a lighthouse at dusk"}],
        extra_body={**IMAGE_TEXT, "image_config": {"aspect_ratio": "16:9", "image_size": "1K"}},
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert server.task(completion.id).model == "gemini-2.5-flash-image"  # what usage is counted by
    [choice] = completion.choices
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content == ""
    [item] = images_of(choice.message)
    assert item["type"] == "image_url"
    image = picture(item)
    assert (image.format, image.size) == ("PNG", (1344, 768))
    usage = completion.usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.parametrize(("image_size", "pixels"), [("0.5K", (512, 512)), ("512", (512, 512))])
def test_image_size_picks_the_tier(client: openai.OpenAI, image_size: str, pixels: tuple[int, int]) -> None:
    completion = client.chat.completions.create(
        model="gemini-2.5-flash-image",  # without a vendor prefix too
        messages=[{"role": "user", "content": "a cat"}],
        extra_body={"image_config": {"image_size": image_size}},  # modalities left out: image and text
    )
    assert picture(images_of(completion.choices[0].message)[0]).size == pixels


def test_n_makes_that_many_choices_with_different_seeds(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "two cats"}],
        n=2,
        extra_body={**IMAGE_TEXT, **SMALL},
    )
    assert [choice.index for choice in completion.choices] == [0, 1]
    first, second = (images_of(choice.message)[0] for choice in completion.choices)
    assert first["seed"] != second["seed"]
    assert picture(first).tobytes() != picture(second).tobytes()


def test_a_seed_makes_the_same_image_again(client: openai.OpenAI) -> None:
    def made() -> dict[str, Any]:
        completion = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "a fox"}],
            seed=42,
            extra_body={**IMAGE_TEXT, **SMALL},
        )
        return images_of(completion.choices[0].message)[0]

    first, again = made(), made()
    assert first["seed"] == again["seed"] == 42
    # The same picture (two tasks: each image carries its own watermark serial and manifest).
    assert same_picture(png_bytes(first), png_bytes(again))


def test_the_api_v1_alias_is_openrouters_base_url(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/api/v1", api_key="k", max_retries=0)
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "a boat"}], extra_body={"modalities": ["image"]}
    )
    assert picture(images_of(completion.choices[0].message)[0]).size == (1024, 1024)


def test_a_streamed_answer_sends_the_image_in_delta_images(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "a tree"}],
        stream=True,
        extra_body={**IMAGE_TEXT, "image_config": {"aspect_ratio": "9:16"}},
    )
    chunks = list(stream)
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    deltas = [choice.delta for chunk in chunks for choice in chunk.choices]
    assert deltas[0].role == "assistant"
    [item] = [image for delta in deltas for image in images_of(delta)]
    assert picture(item).size == (768, 1344)
    finishes = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_the_raw_stream_is_server_sent_events_ending_with_done(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_routes, "KEEPALIVE_SECONDS", 0.01)  # a comment while the task runs
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "a cup"}],
        "stream": True,
        "n": 2,
        **SMALL,
    }
    with httpx.stream("POST", f"{server.url}/api/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert ": PLANTAIN PROCESSING" in lines
    events = [line for line in lines if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in events[:-1]]
    images = {
        c["index"]: c["delta"]["images"]
        for chunk in chunks
        for c in chunk["choices"]
        if "images" in c["delta"]
    }
    assert sorted(images) == [0, 1]


def test_a_failed_run_is_a_500_or_an_error_event_once_streaming(
    server: Server, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = server.app.state.scheduler.registry.get("tiny")

    def broken(*args: object) -> None:
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(engine, "_generate", broken)
    messages: Any = [{"role": "user", "content": "a cheese"}]
    with pytest.raises(openai.InternalServerError, match="out of cheese") as failed:
        client.chat.completions.create(model=MODEL, messages=messages, extra_body=SMALL)
    assert failed.value.code == "engine_failed"
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True, extra_body=SMALL)
    with pytest.raises(openai.APIError, match="out of cheese"):
        list(stream)
    monkeypatch.undo()
    assert client.chat.completions.create(model=MODEL, messages=messages, extra_body=SMALL).choices


def test_a_client_that_leaves_a_stream_cancels_its_task(server: Server) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a mural"}], "stream": True}
    body["image_config"] = {"image_size": "2K"}  # long enough to leave while it runs
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=120) as response:
        first = json.loads(next(response.iter_lines()).removeprefix("data: "))
    task_id = first["id"].removeprefix("chatcmpl-")
    store = server.app.state.scheduler.store
    deadline = time.monotonic() + 60
    while not store.get(task_id).finished and time.monotonic() < deadline:
        time.sleep(0.05)
    task = store.get(task_id)
    assert task.status == "cancelled", task.status


# --- inputs and conversational editing ------------------------------------------------------


def test_a_second_turn_edits_the_first_answers_image(server: Server, client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "a wide desert"}]
    first = client.chat.completions.create(
        model=MODEL, messages=messages, extra_body={**IMAGE_TEXT, "image_config": {"aspect_ratio": "21:9"}}
    )
    answer = first.choices[0].message
    wide = picture(images_of(answer)[0]).size
    assert wide[0] > 2 * wide[1]
    messages += [answer.model_dump(exclude_none=True), {"role": "user", "content": "add a camel"}]
    second = client.chat.completions.create(model=MODEL, messages=messages, extra_body=IMAGE_TEXT)
    # The edit keeps the shape of the image it edits; a text-only request would be square.
    assert picture(images_of(second.choices[0].message)[0]).size == wide
    assert (server.task(first.id).input_count, server.task(second.id).input_count) == (0, 1)


def test_the_users_data_url_and_http_url_images_are_inputs(server: Server, client: openai.OpenAI) -> None:
    server.host.requests.clear()
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[user("combine them", data_url(make_input(64, 128).data), f"{server.host.base}/red.png")],
        extra_body=IMAGE_TEXT,
    )
    assert server.task(completion.id).input_count == 2
    assert server.host.requests == ["/red.png"]  # fetched once, through the safe fetcher
    width, height = picture(images_of(completion.choices[0].message)[0]).size
    assert height > width  # the first input's portrait shape, as an edit without an aspect ratio keeps


# --- refusals -------------------------------------------------------------------------------


def refused(client: openai.OpenAI, **fields: Any) -> openai.APIStatusError:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a cat"}], **fields}
    with pytest.raises(openai.APIStatusError) as error:
        client.chat.completions.create(
            model=body.pop("model"), messages=body.pop("messages"), extra_body=body
        )
    return error.value


@pytest.mark.parametrize("stream", [False, True])
def test_text_only_modalities_are_a_400_naming_modalities(client: openai.OpenAI, stream: bool) -> None:
    error = refused(client, modalities=["text"], stream=stream)
    assert isinstance(error, openai.BadRequestError)
    assert error.param == "modalities" and "only makes images" in error.message


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        (
            {"messages": [user("edit", "data:image/png;base64,@@@")]},
            "messages[0].content[1].image_url.url",
            "base64",
        ),
        (
            {"messages": [user("edit", "data:text/plain;base64,aGk=")]},
            "messages[0].content[1].image_url.url",
            "image",
        ),
        (
            {"messages": [user("edit", "ftp://example.com/a.png")]},
            "messages[0].content[1].image_url.url",
            "http",
        ),
        ({"messages": [user("edit", data_url(b"not an image"))]}, "messages", "messages[0].content[1]"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, "messages", "no user message"),
        ({"messages": [user("   ")]}, "messages[0].content", "no text"),
        ({"image_config": {"aspect_ratio": "5:1"}}, "image_config.aspect_ratio", "16:9"),
        ({"image_config": {"image_size": "8K"}}, "image_config.image_size", "4K"),
        ({"n": 11}, "n", "between 1 and 10"),
        ({"temprature": 0.5}, "temprature", "not a known parameter"),
        ({"messages": [user("many", *[data_url(make_input().data)] * 15)]}, "messages", "14"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    client: openai.OpenAI, fields: dict[str, Any], param: str, text: str
) -> None:
    error = refused(client, **fields)
    assert isinstance(error, openai.BadRequestError), error
    assert error.param == param and text in error.message, error.message
    assert error.response.headers["x-request-id"].startswith("req_")


def test_a_url_not_allowed_is_refused_before_anything_runs(client: openai.OpenAI) -> None:
    error = refused(client, messages=[user("edit", "http://127.0.0.1:9/a.png")])
    assert isinstance(error, openai.BadRequestError)
    assert error.param == "messages[0].content[1].image_url" and "127.0.0.1" in error.message


def test_an_unknown_model_is_a_404_naming_it(client: openai.OpenAI) -> None:
    error = refused(client, model="google/imagen-9")
    assert isinstance(error, openai.NotFoundError)
    assert (
        error.param == "model"
        and "google/imagen-9" in error.message
        and "gemini-2.5-flash-image" in error.message
    )


def test_ignored_chat_parameters_are_accepted_and_reported(server: Server) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "a hat"}],
        "temperature": 0.2,
        "max_tokens": 50,
    }
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200
    assert response.headers["x-plantain-ignored-parameters"] == "temperature, max_tokens"


# --- LiteLLM --------------------------------------------------------------------------------


def test_litellm_completion_reads_the_images(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network for its price list
    import litellm

    response = litellm.completion(
        model="openai/gemini-2.5-flash-image",
        api_base=f"{server.url}/v1",
        api_key="x",
        messages=[{"role": "user", "content": "a kite"}],
        modalities=["image", "text"],
    )
    images = response.choices[0].message.images
    assert images is not None and len(images) == 1
    assert picture(images[0]).size == (1024, 1024)
