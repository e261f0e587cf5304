"""Input images by URL: fetched from a real local server, every hop checked, limits enforced."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain.errors import FetchError, ImageTooLargeError
from plantain.net.fetch import MAX_REDIRECTS, FetchLimits, fetch_bytes
from plantain.net.guard import BlockedURLError
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import FileHost, LiveServer, Route, make_input, reply

IMAGE = make_input(128, 72).data  # 16:9, so a task with aspect_ratio "auto" shows it was used


ROUTES: dict[str, Route] = {
    "/image.png": lambda h: reply(h, 200, IMAGE, {"content-type": "text/plain"}),  # the type lies
    "/moved": lambda h: reply(h, 302, b"", {"location": "/image.png"}),
    "/loop": lambda h: reply(h, 302, b"", {"location": "/loop"}),
    "/outward": lambda h: reply(h, 302, b"", {"location": "http://127.0.0.1:9/secret"}),
    "/big": lambda h: reply(h, 200, b"\0" * 50_000, {}),
    "/endless": lambda h: _endless(h),
    "/slow": lambda h: _slow(h),
}


def _endless(handler: BaseHTTPRequestHandler) -> None:
    """No content-length, and more bytes than any limit."""
    handler.send_response(200)
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"\0" * 4096)
    except OSError:
        pass  # the client hung up, as it should


def _slow(handler: BaseHTTPRequestHandler) -> None:
    """A byte every 50 ms: no single read times out, the whole takes too long."""
    handler.send_response(200)
    handler.end_headers()
    try:
        for _ in range(200):
            handler.wfile.write(b"\0")
            handler.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


@pytest.fixture(scope="module")
def host() -> Iterator[FileHost]:
    """An image, redirects (one to an address not allow-listed), a big, an endless and a slow body."""
    with FileHost(ROUTES) as running:
        yield running


def limits(host: FileHost, **overrides: Any) -> FetchLimits:
    fields = {"max_bytes": 10_000, "timeout_seconds": 5.0, "allowed_hosts": [host.host_port], **overrides}
    return FetchLimits(**fields)


def test_an_allowed_url_gives_its_bytes_following_a_redirect(host: FileHost) -> None:
    assert fetch_bytes(f"{host.base}/image.png", field="f", limits=limits(host)) == IMAGE
    assert fetch_bytes(f"{host.base}/moved", field="f", limits=limits(host)) == IMAGE


@pytest.mark.parametrize(
    ("path", "error", "text"),
    [
        (
            "/outward",
            BlockedURLError,
            "'http://127.0.0.1:9/secret' resolves to 127.0.0.1, a loopback address",
        ),
        ("/loop", FetchError, f"more than {MAX_REDIRECTS} redirects"),
        ("/big", ImageTooLargeError, "is 50000 bytes, over the limit of 10000 bytes per input image"),
        ("/endless", ImageTooLargeError, "is over the limit of 10000 bytes per input image"),
        ("/missing", FetchError, "answered HTTP 404"),
    ],
)
def test_a_bad_url_is_refused_naming_the_input(
    host: FileHost, path: str, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=r"^input\.images\[0\]: ") as caught:
        fetch_bytes(f"{host.base}{path}", field="input.images[0]", limits=limits(host))
    assert text in str(caught.value)


def test_a_slow_answer_is_cut_at_the_deadline(host: FileHost) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 0\.5 seconds"):
        fetch_bytes(f"{host.base}/slow", field="f", limits=limits(host, timeout_seconds=0.5))
    assert time.monotonic() - started < 8  # the answer would take 10 s


def test_a_host_that_is_not_allow_listed_is_refused_before_any_request(host: FileHost) -> None:
    with pytest.raises(BlockedURLError, match="a loopback address"):
        fetch_bytes(f"{host.base}/image.png", field="f", limits=limits(host, allowed_hosts=[]))


def test_the_task_api_runs_an_edit_on_an_image_given_by_url(
    host: FileHost, server_settings: Callable[..., Settings]
) -> None:
    settings = server_settings(allowed_hosts=[host.host_port], max_image_bytes=10_000)
    inline = base64.b64encode(make_input(64, 64).data).decode()
    with LiveServer(create_app(settings)) as server:
        server.wait_ready()
        body = {
            "input": {"prompt": "night", "images": [f"{host.base}/moved", inline], "resolution": "512"},
        }
        response = httpx.post(f"{server.url}/v1/tasks", json=body, headers={"Prefer": "wait=60"}, timeout=90)
        assert response.status_code == 201, response.text
        task = response.json()
        assert task["input"]["images"] == 2 and task["status"] == "succeeded"
        output = Image.open(io.BytesIO(httpx.get(task["output"]["images"][0]["url"]).content))
        assert output.width / output.height == pytest.approx(16 / 9, rel=0.03)  # the fetched shape

        big = {"input": {"prompt": "p", "images": [f"{host.base}/big"]}}
        refused = httpx.post(f"{server.url}/v1/tasks", json=big, timeout=30)
        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "code": "image_too_large",
            "message": f"input.images[0]: the image at {host.base}/big is 50000 bytes, over the limit of "
            "10000 bytes per input image (max_image_bytes)",
            "field": "input.images[0]",
            "status": 400,
        }
        endless = {"input": {"prompt": "p", "images": [inline, f"{host.base}/endless"]}}
        stopped = httpx.post(f"{server.url}/v1/tasks", json=endless, timeout=30)
        assert stopped.status_code == 400  # no Content-Length: stopped once past the limit
        assert (stopped.json()["error"]["code"], stopped.json()["error"]["field"]) == (
            "image_too_large",
            "input.images[1]",
        )
        assert "is over the limit of 10000 bytes per input image (max_image_bytes)" in stopped.text
