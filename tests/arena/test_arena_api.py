"""The arena's API on a live server (tiny engine, so the contestants are ``tiny`` and
``tiny:2-steps``): a pair's two tasks, the blind sides, one vote each, the leaderboard, prompt
sets and the export."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer, make_input

CONTESTANTS = ["tiny", "tiny:2-steps"]


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings())) as server:
        yield server.wait_ready()


@pytest.fixture
def fresh(server_settings: Callable[..., Settings]) -> Iterator[str]:
    """A server with no prompts and no votes."""
    with LiveServer(create_app(server_settings())) as server:
        yield server.wait_ready()


def start(base: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{base}/v1/arena/pairs", json={"resolution": "512", **body}, timeout=60)


def finished(base: str, pair_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        pair: dict[str, Any] = httpx.get(f"{base}/v1/arena/pairs/{pair_id}").json()
        if all(pair[side]["status"] not in {"queued", "running"} for side in ("left", "right")):
            return pair
        assert time.monotonic() < deadline, pair
        time.sleep(0.1)


def vote(base: str, pair_id: str, choice: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/arena/pairs/{pair_id}/vote", json={"choice": choice})


def task_of(base: str, pair_id: str) -> dict[str, dict[str, Any]]:
    """Each side's task, found by its output file among the task list (the pair hides them)."""
    pair = httpx.get(f"{base}/v1/arena/pairs/{pair_id}").json()
    tasks = httpx.get(f"{base}/v1/tasks", params={"limit": 100}).json()["data"]
    by_url = {image["url"]: task for task in tasks for image in (task["output"] or {}).get("images", [])}
    return {side: by_url[pair[side]["images"][0]["url"]] for side in ("left", "right")}


def test_the_default_contestants_are_the_engine_and_itself_at_half_its_steps(base: str) -> None:
    summary = httpx.get(f"{base}/v1/arena").json()
    assert summary["contestants"] == CONTESTANTS
    assert {"general", "portrait", "photorealism", "text-rendering", "product"} <= set(summary["categories"])


def test_a_pair_runs_both_blind_with_one_seed_and_reveals_them_with_its_vote(base: str) -> None:
    answer = start(base, prompt="a red fox in snow", category="Portrait")
    assert answer.status_code == 201, answer.text
    pair = answer.json()
    assert pair["category"] == "portrait" and pair["vote"] is None
    assert pair["left"]["contestant"] is None and pair["right"]["contestant"] is None
    assert not set(CONTESTANTS) & set(json.dumps(pair).split('"'))  # no name anywhere in it
    done = finished(base, pair["id"])
    assert done["left"]["status"] == done["right"]["status"] == "succeeded"
    tasks = task_of(base, pair["id"])
    seeds = {task["output"]["images"][0]["seed"] for task in tasks.values()}
    assert seeds == {pair["seed"]}  # one seed for both: the engines differ, not the noise
    steps = sorted(task["output"]["steps"] for task in tasks.values())
    assert steps == [2, 4]

    voted = vote(base, pair["id"], "left")
    assert voted.status_code == 200, voted.text
    revealed = voted.json()
    assert revealed["vote"]["choice"] == "left"
    assert sorted([revealed["left"]["contestant"], revealed["right"]["contestant"]]) == CONTESTANTS

    again = vote(base, pair["id"], "right")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert "already voted 'left'" in again.json()["error"]["message"]

    board = httpx.get(f"{base}/v1/arena/leaderboard").json()
    first, second = board["data"]
    assert first["contestant"] == revealed["left"]["contestant"] and first["wins"] == 1
    assert second["losses"] == 1 and first["rating"] > second["rating"]
    portrait = httpx.get(f"{base}/v1/arena/leaderboard", params={"category": "portrait"}).json()
    assert portrait["votes"] == 1 and portrait["data"][0]["contestant"] == first["contestant"]
    assert {"name": "portrait", "votes": 1} in board["categories"]


def test_a_vote_before_both_sides_finish_is_refused(base: str) -> None:
    blocker = httpx.post(
        f"{base}/v1/tasks", json={"model": "tiny", "input": {"prompt": "slow", "steps": 40}}, timeout=60
    )
    pair = start(base, prompt="a lamp").json()
    early = vote(base, pair["id"], "tie")
    assert early.status_code == 409 and "not ready" in early.json()["error"]["message"]
    finished(base, pair["id"])
    assert vote(base, pair["id"], "tie").status_code == 200
    assert httpx.get(f"{base}/v1/tasks/{blocker.json()['id']}").json()["status"] == "succeeded"


def test_an_edit_pair_gives_both_sides_the_input(base: str) -> None:
    image = base64.b64encode(make_input(64, 48).data).decode()
    pair = start(base, prompt="make it blue", images=[f"data:image/png;base64,{image}"]).json()
    finished(base, pair["id"])
    assert [task["input"]["images"] for task in task_of(base, pair["id"]).values()] == [1, 1]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"prompt": "x", "category": "Bad Category!"}, "category", "Bad Category!"),
        ({"prompt": "x", "aspect_ratio": "5:7"}, "aspect_ratio", "5:7"),
        ({"prompt": "x", "images": ["not base64!"]}, "images[0]", "base64"),
        ({"prompt": "x", "colour": "red"}, "colour", "colour"),
    ],
)
def test_bad_pairs_are_refused_naming_the_field(
    base: str, body: dict[str, Any], field: str, words: str
) -> None:
    answer = start(base, **body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and words in error["message"], error


def test_a_bad_vote_is_refused_naming_the_choices(base: str) -> None:
    pair = start(base, prompt="a kite").json()
    answer = vote(base, pair["id"], "draw")
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "choice" and "both_bad" in answer.json()["error"]["message"]
    assert httpx.post(f"{base}/v1/arena/pairs/pair_nope/vote", json={"choice": "left"}).status_code == 404


def test_prompt_sets_feed_pairs_evenly_and_votes_export(fresh: str) -> None:
    refused = start(fresh).json()["error"]
    assert refused["field"] == "prompt" and "import a prompt set" in refused["message"]
    rows = 'prompt,category\n"a shop sign that reads ""OPEN""",text-rendering\na pear on a plate,product\n'
    imported = httpx.post(
        f"{fresh}/v1/arena/prompts",
        params={"set": "mine"},
        content=rows,
        headers={"content-type": "text/csv"},
    )
    assert imported.status_code == 201 and imported.json()["imported"] == 2 and imported.json()["total"] == 2
    first, second = start(fresh).json(), start(fresh).json()
    assert [first["prompt"], second["prompt"]] == ['a shop sign that reads "OPEN"', "a pear on a plate"]
    assert [first["category"], second["category"]] == ["text-rendering", "product"]
    listed = httpx.get(f"{fresh}/v1/arena/prompts").json()["data"]
    assert [(p["set"], p["pairs"]) for p in listed] == [("mine", 1), ("mine", 1)]
    for pair, choice in ((first, "right"), (second, "both_bad")):
        finished(fresh, pair["id"])
        assert vote(fresh, pair["id"], choice).status_code == 200

    as_csv = httpx.get(f"{fresh}/v1/arena/export", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    exported = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [(row["prompt"], row["choice"]) for row in exported] == [
        ('a shop sign that reads "OPEN"', "right"),
        ("a pear on a plate", "both_bad"),
    ]
    assert exported[0]["winner"] in CONTESTANTS and exported[1]["winner"] == ""
    as_json = httpx.get(f"{fresh}/v1/arena/export").json()
    assert [vote["pair_id"] for vote in as_json["votes"]] == [first["id"], second["id"]]
    bad = httpx.get(f"{fresh}/v1/arena/export", params={"format": "xlsx"}).json()["error"]
    assert bad["field"] == "format" and "csv" in bad["message"]


def test_a_bad_prompt_file_is_refused_naming_the_entry(base: str) -> None:
    body = json.dumps([{"prompt": "fine"}, {"prompt": ""}])
    answer = httpx.post(
        f"{base}/v1/arena/prompts", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "prompts[1].prompt"


def test_a_pair_refused_halfway_leaves_no_task_running(server_settings: Callable[..., Settings]) -> None:
    """The second side meets a full queue: the answer is that 429, and the first side's task,
    already queued, is cancelled rather than left to run for a pair that does not exist."""
    with LiveServer(create_app(server_settings(max_queued_tasks=1))) as server:
        base = server.wait_ready()
        blocker = httpx.post(
            f"{base}/v1/tasks", json={"model": "tiny", "input": {"prompt": "slow", "steps": 60}}, timeout=60
        ).json()
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/v1/tasks/{blocker['id']}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        refused = start(base, prompt="a half-made pair")
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "queue_full", refused.text
        cancelled = httpx.get(f"{base}/v1/tasks", params={"status": "cancelled"}).json()["data"]
        assert [task["input"]["prompt"] for task in cancelled] == ["a half-made pair"]
        assert httpx.get(f"{base}/v1/arena").json()["votes"] == 0
        httpx.post(f"{base}/v1/tasks/{blocker['id']}/cancel")


def test_a_set_name_over_its_limit_is_refused_not_cut(base: str) -> None:
    name = "s" * 81
    answer = httpx.post(
        f"{base}/v1/arena/prompts",
        params={"set": name},
        content="a prompt\n",
        headers={"content-type": "text/plain"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == "set" and "81 characters" in error["message"] and "80" in error["message"]
