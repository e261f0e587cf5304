"""Arena export: every vote as CSV a spreadsheet opens safely and csv.DictReader reads back, and as
JSON with the prompt as typed."""

from __future__ import annotations

import csv
import io
import json

import pytest

from plantain.arena.export import EXPORT_FIELDS, VoteRow, to_csv, to_json
from plantain.arena.rating import winner_of


def row(prompt: str = "a cat", choice: str = "left", seed: int | None = 42, **fields: str) -> VoteRow:
    values = {
        "pair_id": "pair_1",
        "voted_at": "2026-03-01T12:00:00Z",
        "category": "general",
        "left": "tiny",
        "right": "tiny:2-steps",
        "left_task": "task_a",
        "right_task": "task_b",
        **fields,
    }
    return VoteRow(
        prompt=prompt,
        choice=choice,
        seed=seed,
        winner=winner_of(values["left"], values["right"], choice),
        **values,
    )


def test_csv_round_trips_through_dictreader() -> None:
    prompts = ['a sign reading "OPEN, 24/7"', "two\nlines, and a\r\nCRLF", "plain", "ünïcode 🍌"]
    rows = [
        row(p, choice, pair_id=f"pair_{i}")
        for i, (p, choice) in enumerate(zip(prompts, ["left", "right", "tie", "both_bad"], strict=True))
    ]
    text = to_csv(rows)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == EXPORT_FIELDS
    back = list(reader)
    assert [r["prompt"] for r in back] == prompts
    assert [r["winner"] for r in back] == ["tiny", "tiny:2-steps", "", ""]
    assert back[0] == {
        "pair_id": "pair_0",
        "voted_at": "2026-03-01T12:00:00Z",
        "category": "general",
        "prompt": prompts[0],
        "left": "tiny",
        "right": "tiny:2-steps",
        "choice": "left",
        "winner": "tiny",
        "seed": "42",
        "left_task": "task_a",
        "right_task": "task_b",
    }


def test_csv_is_rfc_4180() -> None:
    text = to_csv([row('say "hi", then go', seed=None)])
    assert text.startswith(",".join(EXPORT_FIELDS) + "\r\n")
    assert ',"say ""hi"", then go",' in text
    assert text.endswith(",left,tiny,,task_a,task_b\r\n")  # no seed: an empty cell


@pytest.mark.parametrize("prompt", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tcmd"])
def test_csv_prompts_cannot_run_as_formulas(prompt: str) -> None:
    (back,) = csv.DictReader(io.StringIO(to_csv([row(prompt)]), newline=""))
    assert back["prompt"] == "'" + prompt
    assert json.loads(to_json([row(prompt)]))["votes"][0]["prompt"] == prompt  # JSON keeps it as typed


def test_csv_leaves_other_prompts_alone() -> None:
    (back,) = csv.DictReader(io.StringIO(to_csv([row("a = b, 'quoted'")]), newline=""))
    assert back["prompt"] == "a = b, 'quoted'"


def test_json_export() -> None:
    body = json.loads(to_json([row("a dog", "tie", seed=None), row("a cat", "right")]))
    assert body["object"] == "arena.export"
    first, second = body["votes"]
    assert list(first) == list(EXPORT_FIELDS)
    assert (first["prompt"], first["choice"], first["winner"], first["seed"]) == ("a dog", "tie", "", None)
    assert (second["winner"], second["seed"], second["right_task"]) == ("tiny:2-steps", 42, "task_b")


def test_no_votes() -> None:
    assert to_csv([]) == ",".join(EXPORT_FIELDS) + "\r\n"
    assert json.loads(to_json([])) == {"object": "arena.export", "votes": []}


def test_a_winner_must_match_the_choice() -> None:
    with pytest.raises(ValueError, match="winner 'tiny' does not match choice 'tie'"):
        VoteRow("p", "2026-03-01T12:00:00Z", "general", "x", "tiny", "big", "tie", "tiny", 1, "a", "b")
