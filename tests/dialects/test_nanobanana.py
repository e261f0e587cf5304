"""nanobananaapi.dev's ``POST /v1/images/generate`` against a live server serving the ``tiny``
engine: the vendor's curl example with only the host changed, the answer its clients read
(``result.data.url``), the ``-hd`` preset, and refusals in the vendor's envelope."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import FileHost, LiveServer, make_input

KEY = "sk-nano-test"
AUTH = {"Authorization": f"Bearer {KEY}"}

# The request nanobananaapi.dev's clients send (docs/nanobananaapi.md), as a curl command whose
# only change is the host: https://api.nanobananaapi.dev -> the live server.
VENDOR_BODY = """{
    "prompt": "A cute cat sitting on a windowsill at sunset",
    "num": 1,
    "model": "gemini-2.5-flash-image",
    "image_size": "16:9"
  }"""


class Server:
    def __init__(self, url: str, host: FileHost) -> None:
        self.url = url
        self.host = host
        self.http = httpx.Client(base_url=url, headers=AUTH, timeout=120)

    def generate(self, **body: Any) -> httpx.Response:
        return self.http.post("/v1/images/generate", json=body)

    def picture(self, url: str) -> Image.Image:
        answer = httpx.get(url, timeout=30)  # the file URL needs no key
        assert answer.status_code == 200, answer.text
        return Image.open(io.BytesIO(answer.content))


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[Server]:
    with FileHost() as host:
        host.files["red.png"] = make_input(96, 64).data
        app = create_app(server_settings(api_keys=[KEY], allowed_hosts=[host.host_port]))
        with LiveServer(app) as live:
            server = Server(live.url, host)
            yield server
            server.http.close()


def refused(answer: httpx.Response, status: int, field: str) -> str:
    """The vendor's error envelope, its ``code`` the HTTP status; returns the message."""
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == status and body["data"] is None
    assert body["error"]["field"] == field
    message: str = body["message"]
    return message


# --- the vendor's example -------------------------------------------------------------------


def vendor_request(url: str) -> tuple[int, dict[str, Any]]:
    """The vendor's curl example, host changed: run by curl where there is one, else by httpx
    with the identical method, headers and body."""
    endpoint = f"{url}/v1/images/generate"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    curl = shutil.which("curl")
    if curl is None:
        answer = httpx.post(endpoint, headers=headers, content=VENDOR_BODY, timeout=120)
        return answer.status_code, answer.json()
    command = [curl, "-s", "-w", "\n%{http_code}", "-X", "POST", endpoint]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    command += ["-d", VENDOR_BODY]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    text, _, status = out.rpartition("\n")
    return int(status), json.loads(text)


def test_the_vendors_curl_example_answers_result_data_url(server: Server) -> None:
    status, result = vendor_request(server.url)
    assert status == 200
    assert (result["code"], result["message"]) == (0, "success")
    url = result["data"]["url"]
    assert isinstance(url, str) and url.startswith(f"{server.url}/v1/files/")
    image = server.picture(url)
    assert image.format == "PNG"
    assert image.width > image.height  # 16:9
    assert abs(image.width / image.height - 16 / 9) < 0.05


def test_several_images_answer_a_list_of_urls(server: Server) -> None:
    answer = server.generate(prompt="two cats", model="gemini-2.5-flash-image", num=2, image_size="1:1")
    assert answer.status_code == 200, answer.text
    urls = answer.json()["data"]["url"]
    assert isinstance(urls, list) and len(urls) == 2 and urls[0] != urls[1]
    assert [server.picture(url).size for url in urls] == [(1024, 1024)] * 2
    assert len(answer.headers["X-Plantain-Seeds"].split(",")) == 2


def test_hd_makes_the_same_pixels_with_more_steps(server: Server) -> None:
    made: dict[str, tuple[int, tuple[int, int]]] = {}
    for model in ("gemini-2.5-flash-image", "gemini-2.5-flash-image-hd"):
        answer = server.generate(prompt="a lighthouse", model=model, image_size="1:1")
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        task = server.http.get(f"/v1/tasks/{data['task_id']}").json()
        assert task["model"] == "gemini-2.5-flash-image"  # the -hd preset is not a model of its own
        made[model] = (task["output"]["steps"], server.picture(data["url"]).size)
    plain_steps, plain_size = made["gemini-2.5-flash-image"]
    hd_steps, hd_size = made["gemini-2.5-flash-image-hd"]
    assert plain_size == hd_size == (1024, 1024)
    assert hd_steps == round(plain_steps * 1.5) > plain_steps


def test_ref_images_are_fetched_and_edited(server: Server) -> None:
    ref = f"http://{server.host.host_port}/red.png"
    answer = server.generate(prompt="make it blue", model="gemini-2.5-flash-image", ref_images=[ref])
    assert answer.status_code == 200, answer.text
    assert server.picture(answer.json()["data"]["url"]).format == "PNG"
    assert "/red.png" in server.host.requests


def test_service_tier_is_accepted_and_reported_ignored(server: Server) -> None:
    answer = server.generate(prompt="a cat", model="gemini-2.5-flash-image", service_tier="priority")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Plantain-Ignored-Parameters"] == "service_tier"


# --- refusals, in the vendor's envelope -----------------------------------------------------


@pytest.mark.parametrize("num", [0, 10, "many"])
def test_num_outside_1_to_9_is_refused_naming_the_limit(server: Server, num: Any) -> None:
    message = refused(server.generate(prompt="a cat", model="gemini-2.5-flash-image", num=num), 400, "num")
    assert f"num: {num!r} is not allowed" in message and "between 1 and 9" in message


def test_more_than_three_ref_images_is_refused_before_any_is_fetched(server: Server) -> None:
    refs = [f"http://{server.host.host_port}/many-{index}.png" for index in range(4)]
    answer = server.generate(prompt="a collage", model="gemini-2.5-flash-image", ref_images=refs)
    message = refused(answer, 400, "ref_images")
    assert "4 images is more than 3" in message
    assert not any(path.startswith("/many-") for path in server.host.requests)


def test_a_ref_image_that_is_no_url_is_refused_naming_it(server: Server) -> None:
    answer = server.generate(
        prompt="a cat", model="gemini-2.5-flash-image", ref_images=["file:///etc/passwd"]
    )
    assert "is not an http(s) URL" in refused(answer, 400, "ref_images[0]")


def test_an_image_size_that_is_no_aspect_ratio_lists_the_ratios(server: Server) -> None:
    message = refused(
        server.generate(prompt="a cat", model="gemini-2.5-flash-image", image_size="2K"), 400, "image_size"
    )
    assert "'2K'" in message and "16:9" in message


def test_an_unknown_model_is_a_404_listing_the_served_ones(server: Server) -> None:
    message = refused(server.generate(prompt="a cat", model="gemini-9-ultra-image"), 404, "model")
    assert "'gemini-9-ultra-image' is not served here" in message
    assert "gemini-2.5-flash-image-hd" in message and "tiny" in message


@pytest.mark.parametrize(
    ("body", "field"), [({"model": "gemini-2.5-flash-image"}, "prompt"), ({"prompt": "a cat"}, "model")]
)
def test_prompt_and_model_are_required(server: Server, body: dict[str, Any], field: str) -> None:
    assert f"{field} is required" in refused(server.generate(**body), 400, field)


def test_an_unknown_field_is_refused_by_name(server: Server) -> None:
    answer = server.generate(prompt="a cat", model="gemini-2.5-flash-image", aspect_ratio="16:9")
    assert "aspect_ratio is not a known field of /v1/images/generate" in refused(answer, 400, "aspect_ratio")


def test_a_bad_service_tier_is_refused_naming_the_choices(server: Server) -> None:
    answer = server.generate(prompt="a cat", model="gemini-2.5-flash-image", service_tier="turbo")
    assert "default, priority" in refused(answer, 400, "service_tier")


def test_a_body_that_is_not_json_is_refused(server: Server) -> None:
    answer = server.http.post(
        "/v1/images/generate", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in refused(answer, 400, "body")


def test_the_openai_route_beside_it_is_unchanged(server: Server) -> None:
    """``/v1/images/generations`` (OpenAI) and ``/v1/images/generate`` (this vendor) are two routes."""
    answer = server.http.post("/v1/images/generations", json={"prompt": "a cat", "num": 2})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "num"  # OpenAI's envelope: `num` is not one of its fields


def test_a_wrong_key_is_refused(server: Server) -> None:
    answer = httpx.post(
        f"{server.url}/v1/images/generate",
        json={"prompt": "a cat", "model": "gemini-2.5-flash-image"},
        headers={"Authorization": "Bearer wrong"},
        timeout=30,
    )
    assert answer.status_code == 403


def test_a_missing_or_wrong_key_is_refused_in_the_vendors_envelope(server: Server) -> None:
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403)):
        answer = httpx.post(f"{server.url}/v1/images/generate", json={"prompt": "x"}, headers=headers)
        assert answer.status_code == status
        body = answer.json()
        assert body["code"] == status and body["data"] is None and body["message"]
