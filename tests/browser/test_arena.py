"""The arena page (``/arena``) in headless Chromium against a live server with the tiny engine,
whose contestants are ``tiny`` and ``tiny:2-steps`` (the same engine at half its steps).

What a voter relies on: the two sides run and show their images without their names; a vote
reveals the names and moves the leaderboard (overall and in the pair's category); an imported
prompt set feeds matches started without a prompt; the votes export as a file; a refused input
is said, naming its field; the page fits a phone; and on a server with keys it asks for one and
sends it (the export too, which a plain link could not).

The tests share one server and run in this order: the first one expects no votes yet.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from tests.browser.conftest import ACTION_TIMEOUT_MS, PHONE, new_page, page_errors, screenshot

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

pytestmark = pytest.mark.slow

CONTESTANTS = ("tiny", "tiny:2-steps")
FINISHED = {"succeeded", "failed", "cancelled"}
SIDES = {"left": "A", "right": "B"}


@pytest.fixture(scope="module")
def server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as live:
        yield live.wait_ready()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = new_page(browser)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    page = new_page(browser, **PHONE)
    yield page
    page.context.close()


def open_arena(page: Page, server: str) -> None:
    page.goto(f"{server}/arena")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=ACTION_TIMEOUT_MS)


def start(page: Page, prompt: str = "", category: str | None = None) -> None:
    """Start a match from the form: ``prompt`` (empty: the next imported one), at 512 px."""
    page.fill("#arena-prompt", prompt)
    if category is not None:
        page.select_option("#arena-category", category)
    page.select_option("#arena-resolution", "512")
    page.click("#arena-start")


def wait_ready_to_vote(page: Page) -> str:
    """Both sides' images shown and the vote buttons enabled; returns the pair's id."""
    for side in SIDES:
        expect(page.locator(f"#side-{side} img").first).to_be_visible(timeout=ACTION_TIMEOUT_MS)
    expect(page.locator("#vote-left")).to_be_enabled(timeout=ACTION_TIMEOUT_MS)
    pair_id = page.get_attribute("#match", "data-pair")
    assert pair_id and pair_id.startswith("pair_")
    return pair_id


def revealed(page: Page) -> dict[str, str]:
    """The names the page revealed under each side after the vote: {"left": name, "right": name}."""
    names = {}
    for side, letter in SIDES.items():
        reveal = page.locator(f"#reveal-{side}")
        expect(reveal).to_have_text(re.compile(rf"^{letter} was \S+$"), timeout=ACTION_TIMEOUT_MS)
        names[side] = reveal.inner_text().split(" was ", 1)[1]
    assert sorted(names.values()) == sorted(CONTESTANTS), names
    return names


def board(page: Page, votes: int, category: str = "") -> list[dict[str, str]]:
    """The leaderboard's rows, top first, once it shows ``votes`` votes (of ``category``)."""
    table = page.locator("#leaderboard")
    expect(table).to_have_attribute("data-category", category, timeout=ACTION_TIMEOUT_MS)
    expect(table).to_have_attribute("data-votes", str(votes), timeout=ACTION_TIMEOUT_MS)
    cells: list[list[str]] = page.eval_on_selector_all(
        "#leaderboard tbody tr",
        "rows => rows.map(row => [...row.cells].map(cell => cell.textContent.trim()))",
    )
    head = ["rank", "contestant", "rating", "ci", "wlt", "both_bad", "votes"]
    return [dict(zip(head, row, strict=True)) for row in cells]


def api(server: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server}/{path}", timeout=30, **kwargs)


def contestants_of(server: str, pair_id: str) -> dict[str, str]:
    """Which contestant ran each side of a pair not voted on yet (the pair does not say): the
    tiny engine ran its task with all its steps or with half of them, which the side's task (found
    by its image's file) tells: {"left": name, "right": name}."""
    deadline = time.monotonic() + 60
    while True:
        pair = api(server, "GET", f"v1/arena/pairs/{pair_id}").json()
        if all(pair[side]["status"] in FINISHED for side in SIDES):
            break
        assert time.monotonic() < deadline, pair
        time.sleep(0.2)
    steps_of_file = {
        image["url"].rsplit("/", 1)[-1]: task["output"]["steps"]
        for task in api(server, "GET", "v1/tasks?limit=50").json()["data"]
        if task["output"]
        for image in task["output"]["images"]
    }
    steps = {side: steps_of_file[pair[side]["images"][0]["url"].rsplit("/", 1)[-1]] for side in SIDES}
    assert steps["left"] != steps["right"], steps
    fewer = min(steps, key=lambda side: steps[side])
    return {side: "tiny:2-steps" if side == fewer else "tiny" for side in SIDES}


def vote_over_api(server: str, prompt: str, choice: str) -> str:
    """A pair made, run and voted on through the API; returns its id."""
    made = api(server, "POST", "v1/arena/pairs", json={"prompt": prompt, "resolution": "512"})
    assert made.status_code == 201, made.text
    pair_id: str = made.json()["id"]
    contestants_of(server, pair_id)  # waits for both sides
    voted = api(server, "POST", f"v1/arena/pairs/{pair_id}/vote", json={"choice": choice})
    assert voted.status_code == 200, voted.text
    assert sorted(voted.json()[side]["contestant"] for side in SIDES) == sorted(CONTESTANTS)
    return pair_id


def test_a_match_hides_the_names_until_the_vote_then_ranks_them(page: Page, server: str) -> None:
    open_arena(page, server)
    expect(page.locator("#arena-category")).to_have_value("")  # the server's default: general
    expect(page.locator("#arena-category option[value=portrait]")).to_have_count(1)
    start(page, "A lighthouse on a cliff at dusk, oil painting", category="portrait")
    wait_ready_to_vote(page)
    expect(page.locator("#match-prompt")).to_have_text("A lighthouse on a cliff at dusk, oil painting")
    for side in SIDES:  # blind: neither name anywhere in either side before the vote
        text = page.locator(f"#side-{side}").inner_text()
        assert not any(name in text for name in CONTESTANTS), text
    assert "tiny" not in page.locator("#match").inner_text()
    expect(page.locator("#next-match")).to_be_hidden()

    page.click("#vote-left")
    names = revealed(page)
    winner, loser = names["left"], names["right"]
    expect(page.locator("#vote-left")).to_be_disabled()
    expect(page.locator("#next-match")).to_be_visible()

    rows = board(page, votes=1)
    assert [row["contestant"] for row in rows] == [winner, loser], rows
    assert rows[0]["wlt"] == "1 / 0 / 0" and rows[1]["wlt"] == "0 / 1 / 0", rows
    assert rows[0]["votes"] == rows[1]["votes"] == "1"
    assert float(rows[0]["rating"]) > float(rows[1]["rating"])
    assert rows[0]["ci"] == "too few votes" and rows[0]["rank"] == rows[1]["rank"] == "1", rows  # one vote

    page.select_option("#leaderboard-category", "portrait")
    portrait = board(page, votes=1, category="portrait")
    assert [(row["contestant"], row["wlt"]) for row in portrait] == [
        (row["contestant"], row["wlt"]) for row in rows
    ]
    expect(page.locator("#leaderboard caption")).to_contain_text("portrait")
    screenshot(page, "arena-desktop")
    assert page_errors(page) == []


def test_votes_for_the_loser_change_the_ranking(page: Page, server: str) -> None:
    open_arena(page, server)
    votes = api(server, "GET", "v1/arena").json()["votes"]
    if votes == 0:  # run alone: one vote first, so there is a ranking to overturn
        start(page, "A bowl of ramen, top-down photo")
        wait_ready_to_vote(page)
        page.click("#vote-left")
        revealed(page)
        votes = 1
    before = [row["contestant"] for row in board(page, votes=votes)]
    loser = before[-1]

    start(page, "A bowl of ramen, top-down photo")
    for round_ in range(2):
        if round_:
            page.click("#next-match")  # the same settings again
        pair_id = wait_ready_to_vote(page)
        expect(page.locator("#match-prompt")).to_have_text("A bowl of ramen, top-down photo")
        sides = contestants_of(server, pair_id)
        side = next(side for side, name in sides.items() if name == loser)
        if round_:
            page.click(f"#vote-{side}")
        else:  # by keyboard: 1 = A is better, 2 = B is better
            page.locator("#arena-start").focus()
            page.keyboard.press("1" if side == "left" else "2")
        assert revealed(page)[side] == loser
        votes += 1
        board(page, votes=votes)

    after = [row["contestant"] for row in board(page, votes=votes)]
    assert after != before and after[0] == loser, (before, after)
    assert page_errors(page) == []


def test_an_imported_prompt_set_feeds_a_match_without_a_prompt(
    page: Page, server: str, tmp_path: Path
) -> None:
    prompts = tmp_path / "mini-set.csv"
    prompts.write_text(
        "prompt,category\nA paper boat on a rainy pond,product\nA neon sign that reads OPEN,text-rendering\n"
    )
    open_arena(page, server)
    page.set_input_files("#prompt-file", str(prompts))
    expect(page.locator("#import-status")).to_contain_text(
        re.compile(r"Imported 2 prompts \(total \d+\)"), timeout=ACTION_TIMEOUT_MS
    )
    listed = api(server, "GET", "v1/arena/prompts").json()["data"]
    assert {"A paper boat on a rainy pond", "A neon sign that reads OPEN"} <= {p["prompt"] for p in listed}
    assert {p["set"] for p in listed if p["prompt"] == "A paper boat on a rainy pond"} == {"mini-set"}

    start(page, "")
    wait_ready_to_vote(page)
    expect(page.locator("#match-prompt")).to_have_text("A paper boat on a rainy pond")
    expect(page.locator("#match-category")).to_have_text("product")  # the imported prompt's own
    assert page_errors(page) == []


def test_the_votes_export_as_csv_and_json(page: Page, server: str, tmp_path: Path) -> None:
    open_arena(page, server)
    cast = api(server, "GET", "v1/arena").json()["votes"]
    if cast == 0:  # run alone: a vote to export
        vote_over_api(server, "A =SUM(A1) formula in a prompt", "left")
        cast = 1

    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / "votes.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "plantain-arena-votes.csv"
    with saved.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        assert {"prompt", "choice", "winner"} <= set(reader.fieldnames or ()), reader.fieldnames
    assert len(rows) == cast
    for row in rows:  # the winner is the chosen side's contestant, none for a draw
        assert row["prompt"] and row["choice"] in {"left", "right", "tie", "both_bad"}, row
        assert row["winner"] == (row[row["choice"]] if row["choice"] in SIDES else ""), row

    with page.expect_download() as download:
        page.click("#export-json")
    saved = tmp_path / "votes.json"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "plantain-arena-votes.json"
    exported = json.loads(saved.read_text())
    assert exported["object"] == "arena.export"
    assert [vote["pair_id"] for vote in exported["votes"]] == [row["pair_id"] for row in rows]
    assert page_errors(page) == []


def test_a_second_vote_conflicts_and_a_refused_input_names_its_field(page: Page, server: str) -> None:
    pair_id = vote_over_api(server, "Two red apples", "tie")
    again = api(server, "POST", f"v1/arena/pairs/{pair_id}/vote", json={"choice": "left"})
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "conflict"

    open_arena(page, server)
    page.eval_on_selector(  # a category the server does not know, as a stale page could send
        "#arena-category",
        "select => { select.add(new Option('Bad Category!')); select.value = 'Bad Category!'; }",
    )
    start(page, "A cat")
    alert = page.locator("[role=alert]")
    expect(alert).to_be_visible(timeout=ACTION_TIMEOUT_MS)
    expect(alert).to_contain_text("category")
    expect(alert).to_contain_text("Bad Category!")
    expect(page.locator("#match")).to_be_hidden()
    expect(page.locator("#arena-start")).to_be_enabled()
    assert page_errors(page) == []


def test_the_arena_fits_a_phone(phone: Page, server: str) -> None:
    page = phone
    open_arena(page, server)
    start(page, "A tiny house in a meadow")
    wait_ready_to_vote(page)
    page.click("#vote-tie")
    revealed(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow} px wider than the phone"
    left = page.locator("#side-left").bounding_box()
    right = page.locator("#side-right").bounding_box()
    assert left and right
    assert right["y"] >= left["y"] + left["height"] - 1, (left, right)  # B below A
    assert abs(right["x"] - left["x"]) < 1 and left["width"] <= PHONE["width"]
    screenshot(page, "arena-phone")
    assert page_errors(page) == []


def test_a_server_with_keys_asks_for_one_and_the_export_sends_it(
    browser: Browser, server_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    key = "arena-test-key"
    with LiveServer(create_app(server_settings(api_keys=[key]))) as live:
        url = live.wait_ready()
        page = new_page(browser)
        try:
            open_arena(page, url)
            expect(page.locator("[role=alert]")).to_be_visible(timeout=ACTION_TIMEOUT_MS)
            expect(page.locator("#api-key")).to_be_visible()
            assert page.get_attribute("#api-key", "type") == "password"
            page.fill("#api-key", key)
            page.click("#api-key-save")
            expect(page.locator("#leaderboard")).to_have_attribute(
                "data-votes", "0", timeout=ACTION_TIMEOUT_MS
            )
            expect(page.locator("[role=alert]")).to_be_hidden()
            expect(page.locator("#api-key-section")).to_be_hidden()
            with page.expect_download() as download:  # a plain link could not send the key
                page.click("#export-csv")
            saved = tmp_path / "votes.csv"
            download.value.save_as(saved)
            assert saved.read_text().startswith("pair_id,")
            assert page_errors(page) == []
        finally:
            page.context.close()
