"""The arena's records in the task store (storage/arena.py), on SQLite and PostgreSQL: prompt sets
walked through evenly, pairs read back as made, one vote per pair however many voters race for
it, votes replayed in the order cast, and migration 12 on a database made before it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plantain.errors import ConflictError, NotFoundError
from plantain.storage import postgres, sqlite
from plantain.storage.arena import ArenaPair, ArenaStore
from plantain.storage.db import Database, open_database

CONTESTANTS = ("tiny", "tiny:2-steps")


class Clock:
    """Each reading a second after the last, so every order is by time and never by a tie."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def database(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    database = open_database(tmp_path, database_url)
    yield database
    database.close()


@pytest.fixture
def arena(database: Database) -> ArenaStore:
    return ArenaStore(database, Clock())


def make_pair(arena: ArenaStore, category: str = "general", **fields: Any) -> ArenaPair:
    return arena.create_pair(
        prompt=fields.pop("prompt", f"a {category} picture"),
        category=category,
        left_contestant=CONTESTANTS[0],
        right_contestant=CONTESTANTS[1],
        left_task=fields.pop("left_task", "task_left"),
        right_task=fields.pop("right_task", "task_right"),
        **fields,
    )


def test_prompts_read_back_in_import_order_and_are_walked_through_evenly(arena: ArenaStore) -> None:
    assert arena.next_prompt() is None and arena.prompt_count() == 0 and arena.add_prompts("x", []) == 0
    entries = [(f"prompt {n}", "portrait" if n % 2 else "general") for n in range(5)]
    assert arena.add_prompts("first", entries) == 5
    assert arena.add_prompts("second", [("later", "product")]) == 1
    prompts = arena.prompts()
    assert [(p.prompt, p.category) for p in prompts] == [*entries, ("later", "product")]
    assert [p.set_name for p in prompts] == ["first"] * 5 + ["second"]
    assert all(p.id.startswith("ap_") and p.pairs == 0 for p in prompts)
    assert len({p.id for p in prompts}) == 6 and arena.prompt_count() == 6
    assert [p.prompt for p in arena.prompts(limit=2)] == ["prompt 0", "prompt 1"]

    shown = []
    for _ in range(14):  # two rounds through the six, then two more
        prompt = arena.next_prompt()
        assert prompt is not None
        shown.append(prompt.prompt)
        make_pair(arena, prompt.category, prompt=prompt.prompt, prompt_id=prompt.id)
    order = [p.prompt for p in prompts]
    assert shown == order + order + order[:2]
    assert [p.pairs for p in arena.prompts()] == [3, 3, 2, 2, 2, 2]


def test_a_pair_reads_back_as_made_and_unknown_ids_are_not_found(arena: ArenaStore) -> None:
    arena.add_prompts("set", [("a red fox", "general")])
    prompt = arena.next_prompt()
    assert prompt is not None
    made = make_pair(
        arena,
        "general",
        prompt="a red fox",
        prompt_id=prompt.id,
        seed=2**62,  # past 32 bits: BIGINT on PostgreSQL
        left_task="task_a",
        right_task="task_b",
        api_key_id="key_1",
    )
    assert made.id.startswith("pair_") and not made.voted and made.choice is None and made.voted_at is None
    assert (made.prompt, made.category, made.prompt_id, made.seed) == (
        "a red fox",
        "general",
        prompt.id,
        2**62,
    )
    assert (made.left_contestant, made.right_contestant) == CONTESTANTS
    assert (made.left_task, made.right_task, made.api_key_id) == ("task_a", "task_b", "key_1")
    assert arena.pair(made.id) == made
    own = make_pair(arena, "portrait")  # a voter's own prompt: no imported prompt, no seed, no key
    assert own.prompt_id is None and own.seed is None and own.api_key_id is None
    assert arena.pair(own.id) == own

    with pytest.raises(NotFoundError, match="arena pair 'pair_nope' does not exist"):
        arena.pair("pair_nope")
    with pytest.raises(NotFoundError, match="arena pair 'pair_nope' does not exist"):
        arena.vote("pair_nope", "left", None)
    with pytest.raises(NotFoundError, match="arena prompt 'ap_nope'"):
        make_pair(arena, prompt_id="ap_nope")
    assert len(arena.prompts()) == 1 and arena.prompts()[0].pairs == 1  # the refused pair counted nothing
    assert arena.vote_count() == 0


def test_a_pair_takes_one_vote_and_keeps_the_first(arena: ArenaStore) -> None:
    pair = make_pair(arena)
    voted = arena.vote(pair.id, "right", "key_1")
    assert voted.voted and voted.choice == "right" and voted.voter_key_id == "key_1"
    assert voted.voted_at is not None and voted.voted_at > pair.created_at
    assert voted == arena.pair(pair.id)
    with pytest.raises(ConflictError) as again:
        arena.vote(pair.id, "left", "key_2")
    assert again.value.status == 409 and again.value.code == "conflict"
    assert pair.id in again.value.message and "already voted 'right'" in again.value.message
    assert arena.pair(pair.id) == voted
    with pytest.raises(ValueError, match="'sideways'"):
        arena.vote(make_pair(arena).id, "sideways", None)


def test_voters_racing_for_one_pair_record_exactly_one_vote(tmp_path: Path, database_url: str | None) -> None:
    """Four threads, each on its own connection (as four processes), vote on one pair at once."""
    databases = [open_database(tmp_path, database_url) for _ in range(4)]
    try:
        stores = [ArenaStore(database, Clock()) for database in databases]
        pair = make_pair(stores[0])
        choices = ("left", "right", "tie", "both_bad")
        start = threading.Barrier(4)

        def vote(index: int) -> str | None:
            start.wait()
            try:
                return stores[index].vote(pair.id, choices[index], f"key_{index}").choice
            except ConflictError:
                return None

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(vote, range(4)))
        winners = [choice for choice in results if choice is not None]
        assert len(winners) == 1
        assert stores[3].pair(pair.id).choice == winners[0]
        assert stores[1].vote_count() == 1
    finally:
        for database in databases:
            database.close()


def test_votes_replay_in_the_order_cast_by_category(arena: ArenaStore) -> None:
    pairs = [make_pair(arena, category) for category in ("portrait", "general", "portrait", "product")]
    unvoted = make_pair(arena, "portrait")
    for pair, choice in zip(reversed(pairs), ("tie", "left", "both_bad", "right"), strict=True):
        arena.vote(pair.id, choice, None)
    every = arena.voted_pairs()
    assert [p.id for p in every] == [p.id for p in reversed(pairs)]
    assert [p.voted_at for p in every] == sorted(p.voted_at for p in every if p.voted_at is not None)
    assert [p.choice for p in every] == ["tie", "left", "both_bad", "right"]
    assert [p.id for p in arena.voted_pairs("portrait")] == [pairs[2].id, pairs[0].id]
    assert arena.voted_pairs("landscape") == [] and unvoted.id not in {p.id for p in every}
    assert arena.vote_count() == 4 and arena.vote_count("portrait") == 2 and arena.vote_count("x") == 0
    assert arena.categories() == [("portrait", 2), ("general", 1), ("product", 1)]


def test_migration_12_applies_to_a_database_at_version_11(
    tmp_path: Path, new_database: Callable[[], str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database()
    module: Any = postgres if url else sqlite
    newest = len(module.MIGRATIONS)
    assert newest == 12 and len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS)
    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:11])
    old = open_database(tmp_path, url)
    assert old.version == 11
    with old.transaction() as db:
        db.execute(
            "INSERT INTO tasks (id, queue_order, status, model, engine, source, request, created_at) "
            "VALUES ('task_old', 1, 'queued', 'tiny', 'tiny', 'tasks', '{}', 1)"
        )
    old.close()
    monkeypatch.undo()

    database = open_database(tmp_path, url)
    try:
        assert database.version == 12
        with database.read() as db:
            assert db.execute("SELECT id FROM tasks").fetchone()[0] == "task_old"
        arena = ArenaStore(database, Clock())
        arena.add_prompts("set", [("a cat", "general")])
        pair = make_pair(arena)
        assert arena.vote(pair.id, "tie", None).choice == "tie" and arena.prompt_count() == 1
    finally:
        database.close()
