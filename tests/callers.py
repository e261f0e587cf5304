"""One request, sent the way each dialect's users send it: google-genai, openai, the task API.

Limit and format tests run the same case through every dialect and compare what comes back: the
images made, or the refusal as the caller's own client reports it (status, code, field, message).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from google import genai
from google.genai import errors, types

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, free_port

GEMINI_MODEL = "gemini-2.5-flash-image"
OPENAI_SIZES = {"512": "512x512", "1K": "1024x1024"}
DIALECTS = ("gemini", "openai", "tasks")


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    field: str | None
    message: str


@dataclass(frozen=True)
class Call:
    """What to ask for; ``images`` are (bytes, declared media type)."""

    prompt: str = "make it blue"
    images: Sequence[tuple[bytes, str]] = ()
    size: str = "512"
    count: int = 1


class Caller:
    """Sends a :class:`Call` to the server at ``url`` in ``dialect``: images made, or the refusal."""

    def __init__(self, dialect: str, url: str) -> None:
        self.dialect = dialect
        self.url = url

    def send(self, call: Call) -> int | Refusal:
        """The number of images made, or the refusal."""
        return {"gemini": self._gemini, "openai": self._openai, "tasks": self._tasks}[self.dialect](call)

    def _gemini(self, call: Call) -> int | Refusal:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=self.url))
        parts: list[types.PartUnion] = [types.Part.from_bytes(data=d, mime_type=m) for d, m in call.images]
        config = types.GenerateContentConfig(
            image_config=types.ImageConfig(image_size=call.size), candidate_count=call.count
        )
        try:
            response = client.models.generate_content(
                model=GEMINI_MODEL, contents=[*parts, call.prompt], config=config
            )
        except errors.APIError as exc:
            return gemini_refusal(exc)
        return len(response.candidates or [])

    def _openai(self, call: Call) -> int | Refusal:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="k", max_retries=0)
        size = OPENAI_SIZES[call.size]
        files = [(f"input-{i}", data, media) for i, (data, media) in enumerate(call.images, 1)]
        try:
            if files:
                image = files[0] if len(files) == 1 else files
                response = client.images.edit(image=image, prompt=call.prompt, size=size, n=call.count)
            else:
                response = client.images.generate(prompt=call.prompt, size=size, n=call.count)
        except openai.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            return Refusal(exc.status_code, str(exc.code), exc.param, str(body.get("message")))
        return len(response.data or [])

    def _tasks(self, call: Call) -> int | Refusal:
        images = [base64.b64encode(data).decode() for data, _ in call.images]
        body = {
            "input": {
                "prompt": call.prompt,
                "images": images,
                "resolution": call.size,
                "num_images": call.count,
            }
        }
        response = httpx.post(f"{self.url}/v1/tasks", json=body, headers={"Prefer": "wait=120"}, timeout=180)
        return task_outcome(response)


def gemini_refusal(exc: errors.APIError) -> Refusal:
    error = exc.details["error"]
    field = error["details"][0]["metadata"].get("field")
    return Refusal(exc.code, error["details"][0]["reason"].lower(), field, str(exc.message))


def task_outcome(response: httpx.Response) -> int | Refusal:
    if response.status_code >= 400:
        error = response.json()["error"]
        return Refusal(response.status_code, error["code"], error["field"], error["message"])
    task = response.json()
    assert task["status"] == "succeeded", task
    return len(task["output"]["images"])


def envelope(dialect: str, response: httpx.Response) -> Refusal:
    """A raw HTTP answer read as the dialect's error envelope."""
    error = response.json()["error"]
    if dialect == "gemini":
        detail = error["details"][0]
        return Refusal(
            error["code"], detail["reason"].lower(), detail["metadata"].get("field"), error["message"]
        )
    if dialect == "openai":
        return Refusal(response.status_code, error["code"], error["param"], error["message"])
    return Refusal(error["status"], error["code"], error["field"], error["message"])


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, Any]]:
    """A live server whose public URL is its real one (webhook bodies link to it)."""
    port = free_port()
    settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    app = create_app(settings)
    with LiveServer(app, port=port) as server:
        server.wait_ready()
        yield server.url, app.state.scheduler
