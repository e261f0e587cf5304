"""The blind arena's records in the task database (migration 12): imported prompts and the pairs
shown to voters, each pair with the one vote it may take.

A prompt (``arena_prompts``) belongs to a named set and counts the pairs made from it, so
:meth:`ArenaStore.next_prompt` walks a set through evenly (the least used first, then the oldest)
rather than showing some prompts again before others were seen once. A pair (``arena_pairs``) is
one prompt run by two contestants, a task each, shown as left and right without their names. Its
vote lives on its row: :meth:`ArenaStore.vote` records it with an UPDATE that requires none yet,
under the database's write lock, so of two voters at once (or one who clicks twice) exactly one
counts and the other hears who came first. The leaderboard replays the votes in the order they
were cast (:meth:`ArenaStore.voted_pairs`); this module stores them and rates nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plantain.errors import ConflictError, NotFoundError
from plantain.storage.db import Connection, Database, Row

CHOICES: tuple[str, ...] = ("left", "right", "tie", "both_bad")


@dataclass(frozen=True)
class ArenaPrompt:
    id: str
    set_name: str
    prompt: str
    category: str
    created_at: float
    pairs: int  # the pairs made from it so far


@dataclass(frozen=True)
class ArenaPair:
    id: str
    prompt: str
    category: str
    prompt_id: str | None  # the imported prompt it came from; None for a voter's own prompt
    seed: int | None
    left_contestant: str
    right_contestant: str
    left_task: str
    right_task: str
    api_key_id: str | None  # who asked for the pair
    created_at: float
    choice: str | None  # one of CHOICES once voted
    voted_at: float | None
    voter_key_id: str | None = None

    @property
    def voted(self) -> bool:
        return self.choice is not None


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(8)


class ArenaStore:
    """Arena prompts and pairs on the task store's connection, under its lock. Thread-safe."""

    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self._database = database
        self._clock = clock

    # --- prompts ----------------------------------------------------------------------------

    def add_prompts(self, set_name: str, entries: Sequence[tuple[str, str]]) -> int:
        """Add ``(prompt, category)`` entries to the set ``set_name`` in one transaction (an
        import is whole or absent); returns how many were added."""
        if not entries:
            return 0
        with self._database.transaction() as db:
            now = self._clock()
            db.executemany(
                "INSERT INTO arena_prompts (id, set_name, prompt, category, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(new_id("ap_"), set_name, prompt, category, now) for prompt, category in entries],
            )
        return len(entries)

    def prompts(self, limit: int = 1000) -> list[ArenaPrompt]:
        """The imported prompts, oldest first and in the order each import listed them."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT * FROM arena_prompts ORDER BY created_at, rowid LIMIT ?", (limit,)
            ).fetchall()
        return [_prompt(row) for row in rows]

    def prompt_count(self) -> int:
        with self._database.read() as db:
            return _count(db, "SELECT COUNT(*) FROM arena_prompts")

    def next_prompt(self) -> ArenaPrompt | None:
        """The prompt used in the fewest pairs, the oldest among those (None: none imported), so
        every prompt of the sets is shown once before any is shown twice."""
        with self._database.read() as db:
            row = db.execute(
                "SELECT * FROM arena_prompts ORDER BY pairs, created_at, rowid LIMIT 1"
            ).fetchone()
        return None if row is None else _prompt(row)

    # --- pairs ------------------------------------------------------------------------------

    def create_pair(
        self,
        *,
        prompt: str,
        category: str,
        left_contestant: str,
        right_contestant: str,
        left_task: str,
        right_task: str,
        prompt_id: str | None = None,
        seed: int | None = None,
        api_key_id: str | None = None,
    ) -> ArenaPair:
        """Record a new, unvoted pair; one made from an imported prompt counts towards that
        prompt's use in the same transaction (NotFoundError, nothing written, for an unknown one)."""
        pair_id = new_id("pair_")
        with self._database.transaction() as db:
            if prompt_id is not None:
                used = db.execute(
                    "UPDATE arena_prompts SET pairs = pairs + 1 WHERE id = ?", (prompt_id,)
                ).rowcount
                if not used:
                    raise NotFoundError(f"arena prompt {prompt_id!r} does not exist", field="prompt_id")
            db.execute(
                "INSERT INTO arena_pairs (id, prompt, category, prompt_id, seed, left_contestant, "
                "right_contestant, left_task, right_task, api_key_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pair_id,
                    prompt,
                    category,
                    prompt_id,
                    seed,
                    left_contestant,
                    right_contestant,
                    left_task,
                    right_task,
                    api_key_id,
                    self._clock(),
                ),
            )
            return _pair_in(db, pair_id)

    def pair(self, pair_id: str) -> ArenaPair:
        """The pair ``pair_id`` as it is now, or NotFoundError naming it."""
        with self._database.read() as db:
            return _pair_in(db, pair_id)

    def vote(self, pair_id: str, choice: str, voter_key_id: str | None) -> ArenaPair:
        """Record ``choice`` as the pair's one vote; ConflictError (the first vote kept) when it
        has one, NotFoundError when there is no such pair. The routes validate ``choice`` for
        the caller; a value outside :data:`CHOICES` reaching here is a bug (ValueError)."""
        if choice not in CHOICES:
            raise ValueError(f"choice {choice!r} is not one of {', '.join(CHOICES)}")
        with self._database.transaction() as db:
            changed = db.execute(
                "UPDATE arena_pairs SET choice = ?, voted_at = ?, voter_key_id = ? "
                "WHERE id = ? AND choice IS NULL",
                (choice, self._clock(), voter_key_id, pair_id),
            ).rowcount
            pair = _pair_in(db, pair_id)
        if not changed:
            raise already_voted(pair)
        return pair

    def voted_pairs(self, category: str | None = None) -> list[ArenaPair]:
        """Every voted pair (of ``category``, if given) in the order the votes were cast, the
        order the rating replays them in."""
        where, params = _voted(category)
        with self._database.read() as db:
            rows = db.execute(
                f"SELECT * FROM arena_pairs WHERE {where} ORDER BY voted_at, id", params
            ).fetchall()
        return [_pair(row) for row in rows]

    def vote_count(self, category: str | None = None) -> int:
        where, params = _voted(category)
        with self._database.read() as db:
            return _count(db, f"SELECT COUNT(*) FROM arena_pairs WHERE {where}", params)

    def categories(self) -> list[tuple[str, int]]:
        """Each category that has votes and how many, the most voted first."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT category, COUNT(*) AS votes FROM arena_pairs WHERE choice IS NOT NULL "
                "GROUP BY category ORDER BY votes DESC, category"
            ).fetchall()
        return [(row["category"], int(row["votes"])) for row in rows]


def already_voted(pair: ArenaPair) -> ConflictError:
    when = datetime.fromtimestamp(pair.voted_at or 0.0, UTC).isoformat(timespec="seconds")
    return ConflictError(
        f"arena pair {pair.id!r} was already voted {pair.choice!r} at {when}; a pair takes one "
        "vote: ask for a new pair to vote again",
        field="choice",
    )


def not_found(pair_id: str) -> NotFoundError:
    return NotFoundError(f"arena pair {pair_id!r} does not exist", field="pair_id")


def _voted(category: str | None) -> tuple[str, tuple[Any, ...]]:
    if category is None:
        return "choice IS NOT NULL", ()
    return "choice IS NOT NULL AND category = ?", (category,)


def _count(db: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    return int(db.execute(sql, params).fetchone()[0])


def _pair_in(db: Connection, pair_id: str) -> ArenaPair:
    row = db.execute("SELECT * FROM arena_pairs WHERE id = ?", (pair_id,)).fetchone()
    if row is None:
        raise not_found(pair_id)
    return _pair(row)


def _prompt(row: Row) -> ArenaPrompt:
    return ArenaPrompt(
        id=row["id"],
        set_name=row["set_name"],
        prompt=row["prompt"],
        category=row["category"],
        created_at=float(row["created_at"]),
        pairs=int(row["pairs"]),
    )


def _pair(row: Row) -> ArenaPair:
    seed, voted_at = row["seed"], row["voted_at"]
    return ArenaPair(
        id=row["id"],
        prompt=row["prompt"],
        category=row["category"],
        prompt_id=row["prompt_id"],
        seed=None if seed is None else int(seed),
        left_contestant=row["left_contestant"],
        right_contestant=row["right_contestant"],
        left_task=row["left_task"],
        right_task=row["right_task"],
        api_key_id=row["api_key_id"],
        created_at=float(row["created_at"]),
        choice=row["choice"],
        voted_at=None if voted_at is None else float(voted_at),
        voter_key_id=row["voter_key_id"],
    )
