"""Every arena vote as a file: CSV for spreadsheets, JSON for scripts.

One row per vote with the pair's prompt, both contestants, the choice and the winner, so a team
can recompute ratings its own way (e.g. Bradley-Terry) or read the prompts a model lost on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plantain.arena.rating import winner_of

EXPORT_FIELDS = (
    "pair_id",
    "voted_at",
    "category",
    "prompt",
    "left",
    "right",
    "choice",
    "winner",
    "seed",
    "left_task",
    "right_task",
)

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class VoteRow:
    """One vote as exported. ``voted_at`` is ISO-8601 UTC; ``winner`` is the winning contestant's
    name, ``""`` for a tie or "both bad" (:func:`~plantain.arena.rating.winner_of` makes it)."""

    pair_id: str
    voted_at: str
    category: str
    prompt: str
    left: str
    right: str
    choice: str
    winner: str
    seed: int | None
    left_task: str
    right_task: str

    def __post_init__(self) -> None:
        expected = winner_of(self.left, self.right, self.choice)
        if self.winner != expected:
            raise ValueError(f"winner {self.winner!r} does not match choice {self.choice!r} ({expected!r})")

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EXPORT_FIELDS}


def _safe_cell(text: str) -> str:
    """A prompt made inert for spreadsheets: a leading apostrophe before a formula character.

    Only the prompt needs it: it is the one free text a user typed. The other cells are ids,
    timestamps, numbers, engine names and categories (letters, digits and hyphens, never leading
    with a hyphen) that the server made. The JSON export keeps the prompt as typed.
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: Iterable[VoteRow]) -> str:
    """A header row of :data:`EXPORT_FIELDS`, then a row per vote (RFC 4180: CRLF line ends,
    cells with commas, quotes or line breaks quoted); a missing seed is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        cells = row.to_json()
        cells["prompt"] = _safe_cell(row.prompt)
        writer.writerow("" if cells[name] is None else cells[name] for name in EXPORT_FIELDS)
    return out.getvalue()


def to_json(rows: Iterable[VoteRow]) -> str:
    """``{"object": "arena.export", "votes": [...]}``, each vote an object of :data:`EXPORT_FIELDS`."""
    return json.dumps({"object": "arena.export", "votes": [row.to_json() for row in rows]})
