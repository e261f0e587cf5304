"""The playground (``/playground``) in headless Chromium, against a live server with the tiny engine:
a run from a prompt, an edit of an uploaded image and of a result ("Edit this"), cancelling, a
refused request's error, History and "Same seed again", a server that wants an API key, and a
phone's width. The tiny engine's images are noise, but real files of the asked size."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, Locator, Page, expect
from tests.browser.conftest import PHONE, new_page, page_errors, screenshot

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

pytestmark = pytest.mark.slow

KEY = "playground-test-key"
WAIT_MS = 60_000  # a run on 2 CPU cores


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        yield live.wait_ready()


def open_playground(browser: Browser, base: str, width: int = 1280, height: int = 900) -> Page:
    page = new_page(browser, width, height)
    page.goto(f"{base}/playground")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    return page


def run(
    page: Page,
    prompt: str,
    *,
    ratio: str = "1:1",
    resolution: str = "512",
    seed: str = "",
    button: bool = False,
) -> Locator:
    """Fill the composer and submit with Ctrl+Enter (or the Run button); the new turn."""
    turns = page.locator(".turn").count()
    page.select_option("#aspect-ratio", ratio)
    page.select_option("#resolution", resolution)
    page.fill("#seed", seed)
    page.fill("#prompt", prompt)
    if button:
        page.click("#submit")
    else:
        page.press("#prompt", "Control+Enter")
    turn = page.locator(".turn").nth(turns)
    expect(turn).to_be_visible()
    return turn


def finished(turn: Locator, status: str = "succeeded") -> str:
    """Wait for the turn to end as ``status``; its task id."""
    expect(turn).to_have_attribute("data-status", status, timeout=WAIT_MS)
    task_id = turn.get_attribute("data-task-id")
    assert task_id, "the turn has no task"
    return task_id


def task(base: str, task_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(f"{base}/v1/tasks/{task_id}", headers=headers)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def natural_size(image: Locator) -> tuple[int, int]:
    expect(image).to_have_js_property("complete", True)
    size = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return int(size[0]), int(size[1])


def test_a_prompt_runs_with_progress_and_shows_the_image_seed_and_cost(browser: Browser, server: str) -> None:
    page = open_playground(browser, server)
    engine = page.locator("#engine")
    expect(engine).to_have_value("tiny")
    assert "auto" in page.locator("#aspect-ratio option").all_inner_texts()[0]
    turn = run(page, "a lighthouse at dusk", ratio="16:9")
    progress = turn.locator("progress")
    expect(progress).to_have_attribute("aria-label", re.compile(r"^Progress of task_"))
    task_id = finished(turn)
    assert progress.evaluate("bar => [bar.value, bar.max]") == [4, 4]  # each step's progress event
    image = turn.locator(".result img")
    expect(image).to_have_count(1)
    width, height = natural_size(image)
    assert abs(width / height - 16 / 9) < 0.04, (width, height)
    body = task(server, task_id)
    seed = body["output"]["images"][0]["seed"]
    expect(turn.locator(".meta-seed")).to_have_text(f"seed {seed}")
    expect(turn.locator(".meta-cost")).to_contain_text(body["usage"]["cost"]["currency"])
    expect(turn.locator(".meta-seconds")).to_contain_text("device s")
    download = turn.locator(".result a.download")
    expect(download).to_have_attribute("download", f"plantain-{task_id}-1.png")
    turn.locator("button.verify").click()
    expect(turn.locator("button.verify")).to_contain_text("watermark found", timeout=WAIT_MS)
    expect(page.locator("#usage")).to_contain_text(re.compile(r"\d+ tasks?, \d+ images?, .* USD"))
    screenshot(page, "playground-desktop")
    assert page_errors(page) == []


def test_an_uploaded_image_is_edited_and_edit_this_continues_the_conversation(
    browser: Browser, server: str, tmp_path: Path
) -> None:
    picture = tmp_path / "input.png"
    Image.new("RGB", (96, 64), (200, 40, 40)).save(picture)
    page = open_playground(browser, server)
    page.set_input_files("#images", str(picture))
    expect(page.locator("#attachments .thumb img")).to_have_count(1)
    first = run(page, "make it blue")
    expect(first.locator(".turn-inputs img")).to_have_count(1)
    first_id = finished(first)
    assert task(server, first_id)["input"]["images"] == 1
    expect(first.locator(".result img")).to_have_count(1)
    expect(page.locator("#attachments .thumb")).to_have_count(0)  # sent with its turn

    first.locator("button.edit-this").first.click()
    expect(page.locator("#attachments .thumb img")).to_have_count(1)
    expect(page.locator("#prompt")).to_be_focused()
    second = run(page, "now add a moon", button=True)
    second_id = finished(second)
    assert second_id != first_id
    assert task(server, second_id)["input"]["images"] == 1
    expect(second.locator(".result img")).to_have_count(1)
    assert page_errors(page) == []


def test_a_queued_run_is_cancelled_and_a_waiting_one_shows_previews(browser: Browser, server: str) -> None:
    # A long task ahead (many steps, submitted over the API) keeps the page's tasks queued.
    blocker = httpx.post(
        f"{server}/v1/tasks", json={"input": {"prompt": "a long one", "steps": 200, "resolution": "1K"}}
    ).json()
    try:
        page = open_playground(browser, server)
        doomed = run(page, "never made")
        cancel = doomed.locator("button.cancel")
        expect(doomed).to_have_attribute("data-status", "queued")
        waiting = run(page, "made once the long one stops")
        expect(waiting).to_have_attribute("data-status", "queued")
        expect(waiting).to_have_attribute("data-stream", "open")
        expect(cancel).to_be_enabled()
        cancel.click()
        task_id = finished(doomed, "cancelled")
        expect(doomed.locator(".turn-status .badge")).to_have_text("cancelled")
        expect(doomed.locator(".cancelled-note")).to_be_visible()
        expect(cancel).to_be_hidden()
        assert task(server, task_id)["status"] == "cancelled"
    finally:
        httpx.post(f"{server}/v1/tasks/{blocker['id']}/cancel")
    # The waiting turn was following its events before it started: its previews all arrived.
    waiting_id = finished(waiting)
    assert task(server, blocker["id"])["status"] == "cancelled"
    engines = httpx.get(f"{server}/v1/engines").json()
    assert engines["data"][0]["previews"] is True
    assert waiting.get_attribute("data-previews") == "2"  # input.previews: 2, shown as they came
    assert task(server, waiting_id)["status"] == "succeeded"
    expect(waiting.locator(".result img")).to_have_count(1)
    assert page_errors(page) == []


def test_a_refused_request_shows_the_field_and_the_page_keeps_working(browser: Browser, server: str) -> None:
    page = open_playground(browser, server)
    refused = run(page, "a cat", seed="-1")
    alert = refused.locator("[role=alert]")
    expect(alert).to_contain_text("input.seed")
    expect(refused).to_have_attribute("data-status", "refused")
    expect(page.locator("#prompt")).to_have_value("a cat")  # kept, to fix and run again

    page.select_option("#count", "1")
    ok = run(page, "a cat", seed="")
    finished(ok)
    expect(ok.locator(".result img")).to_have_count(1)
    expect(ok.locator("[role=alert]")).to_have_count(0)

    # dropped and pasted images are attached too, and each has a remove button
    page.evaluate(DROP_AND_PASTE)
    thumbs = page.locator("#attachments .thumb")
    expect(thumbs).to_have_count(2)
    thumbs.first.locator("button.remove").click()
    expect(thumbs).to_have_count(1)
    thumbs.first.locator("button.remove").click()
    expect(thumbs).to_have_count(0)

    # more input images than the engine takes: refused in the page, nothing sent
    most = page.evaluate(
        "() => fetch('v1/engines').then(a => a.json()).then(e => e.data[0].max_input_images)"
    )
    files = [{"name": f"{n}.png", "mimeType": "image/png", "buffer": _png()} for n in range(most + 1)]
    page.set_input_files("#images", files=files)
    expect(page.locator("#attachments .thumb")).to_have_count(most)
    expect(page.locator("#attach-message")).to_contain_text(f"at most {most}")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "playground-dark")
    assert page_errors(page) == []


DROP_AND_PASTE = """() => {
  const file = (name) => new File([new Uint8Array([137, 80, 78, 71])], name, {type: "image/png"});
  const dropped = new DataTransfer();
  dropped.items.add(file("dropped.png"));
  document.querySelector("#composer").dispatchEvent(
    new DragEvent("drop", {dataTransfer: dropped, bubbles: true, cancelable: true}));
  const pasted = new DataTransfer();
  pasted.items.add(file("pasted.png"));
  document.querySelector("#prompt").dispatchEvent(
    new ClipboardEvent("paste", {clipboardData: pasted, bubbles: true, cancelable: true}));
}"""


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_history_lists_runs_and_same_seed_again_reproduces_the_seed(browser: Browser, server: str) -> None:
    page = open_playground(browser, server)
    first = run(page, "a pear on a table")  # a random seed: only the button can give it again
    first_id = finished(first)
    seed = task(server, first_id)["output"]["images"][0]["seed"]
    assert page.input_value("#seed") == ""  # the form holds no seed to resend
    history = page.locator("#history li[data-task-id]")
    expect(history.first).to_have_attribute("data-task-id", first_id)  # newest first
    expect(history.first).to_contain_text("a pear on a table")
    expect(history.first.locator(".badge")).to_have_text("succeeded")

    first.locator("button.same-seed").click()
    again = page.locator(".turn").nth(1)
    again_id = finished(again)
    assert task(server, again_id)["input"]["seed"] == seed
    assert task(server, again_id)["output"]["images"][0]["seed"] == seed
    expect(again.locator(".meta-seed")).to_have_text(f"seed {seed}")
    assert natural_size(again.locator(".result img")) == natural_size(first.locator(".result img"))

    # A fresh page: History shows the earlier runs, and a click puts one in the conversation.
    # Pages of one task here (the page asks for 20), so "Load more" has pages to load.
    other = new_page(browser)
    other.route(
        re.compile(r".*/v1/tasks\?.*"),
        lambda route: route.continue_(url=route.request.url.replace("limit=20", "limit=1")),
    )
    other.goto(f"{server}/playground")
    listed = other.locator("#history li[data-task-id]")
    expect(listed).to_have_count(1)
    expect(listed.first).to_have_attribute("data-task-id", again_id)
    other.click("#load-more")
    expect(listed).to_have_count(2)
    expect(listed.nth(1)).to_have_attribute("data-task-id", first_id)
    other.locator(f"#history li[data-task-id='{first_id}'] button").click()
    shown = other.locator(f".turn[data-task-id='{first_id}']")
    expect(shown).to_have_attribute("data-status", "succeeded")
    expect(shown.locator(".result img")).to_have_count(1)
    expect(shown.locator(".turn-prompt")).to_have_text("a pear on a table")
    assert page_errors(page) == [] and page_errors(other) == []


def test_a_server_with_keys_asks_for_one_and_runs_with_it(
    browser: Browser, server_settings: Callable[..., Settings]
) -> None:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as live:
        base = live.wait_ready()
        page = open_playground(browser, base)
        field = page.locator("#api-key")
        expect(field).to_be_visible()
        expect(field).to_have_attribute("type", "password")
        field.fill(KEY)
        page.click("#save-key")
        expect(page.locator("#key-panel")).to_be_hidden()
        expect(page.locator("#engine option")).not_to_have_count(0)
        expect(page.locator("#engine")).to_have_value("tiny")
        turn = run(page, "a key-guarded fox")
        task_id = finished(turn)
        assert task(base, task_id, KEY)["status"] == "succeeded"
        assert page.evaluate("() => localStorage.getItem('plantain.apiKey')") == KEY
        # the header's key control opens the field again
        page.click("#key-button")
        expect(field).to_be_visible()
        expect(field).to_have_value(KEY)
        assert page_errors(page) == []


def test_the_page_fits_a_phone(browser: Browser, server: str) -> None:
    page = open_playground(browser, server, PHONE["width"], PHONE["height"])
    turn = run(page, "a very long prompt " * 12)
    finished(turn)
    expect(turn.locator(".result img")).to_have_count(1)
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    for selector in (
        "#prompt",
        "#engine",
        "#aspect-ratio",
        "#resolution",
        "#count",
        "#seed",
        "#format",
        "#submit",
    ):
        control = page.locator(selector)
        control.scroll_into_view_if_needed()
        expect(control).to_be_in_viewport()
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (selector, box)
    for selector in ("button.edit-this", "button.same-seed", "button.verify", "a.download"):
        box = turn.locator(selector).bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"], (selector, box)
    screenshot(page, "playground-phone")
    assert page_errors(page) == []
