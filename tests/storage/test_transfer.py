"""Moving an embedded store to PostgreSQL (storage/transfer.py): what users see of the copy is what
they saw of the original, a target that is not empty is refused untouched, and a data directory
with no database yet copies nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plantain.errors import ConfigurationError
from plantain.storage.arena import ArenaStore
from plantain.storage.batches import BatchStore
from plantain.storage.ledger import GROUP_COLUMNS
from plantain.storage.postgres import PostgresDatabase
from plantain.storage.tasks import NewTask, TaskStore
from plantain.storage.transfer import TABLES, copy_embedded
from plantain.types import (
    Cost,
    ImageRequest,
    InputImage,
    Task,
    TaskError,
    TaskEvent,
    TaskOutput,
    TaskResult,
    TokenUsage,
    Usage,
)

RETENTION = 3600.0
HOOK = "https://hooks.example/plantain"
BYTES = bytes(range(256)) * 3  # every byte value, NUL and invalid UTF-8 included


class Clock:
    """Every reading later than the last (orderings never hang on a tie), until it is frozen."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.frozen = False

    def __call__(self) -> float:
        if not self.frozen:
            self.now += 1.25
        return self.now


def body(task: Task, event: TaskEvent) -> str:
    return json.dumps({"id": task.id, "type": event.type, "seq": event.seq})


def open_store(path: Path, clock: Clock, database_url: str | None = None) -> TaskStore:
    return TaskStore(
        path, retention_seconds=RETENTION, clock=clock, webhook_body=body, database_url=database_url
    )


def new(prompt: str, images: tuple[InputImage, ...] = (), **fields: Any) -> NewTask:
    request = ImageRequest.create(prompt=prompt, engine="tiny", images=images)
    return NewTask(request=request, model="tiny", engine="tiny", source="tasks", **fields)


def result(file_id: str) -> TaskResult:
    output = TaskOutput(file_id=file_id, media_type="image/png", width=8, height=8, seed=7)
    return TaskResult(engine="tiny", outputs=(output,), steps=4, guidance=1.5, seconds=0.5)


USAGE = Usage(
    tokens=TokenUsage(input_text=12, input_image=0, output=1290),
    images=1,
    device_seconds=0.75,
    cost=Cost(amount=0.125, currency="USD"),
    provenance_seconds=0.25,
)


class Embedded:
    """An embedded store filled through its public API with a task in every state."""

    def __init__(self, path: Path) -> None:
        self.clock = Clock()
        store = open_store(path, self.clock)
        batches = BatchStore(store.database, clock=self.clock)
        self.done, _ = store.create(
            new("done", idempotency_key="key-1", fingerprint="fp-1", api_key_id="key_a", webhook_url=HOOK)
        )
        self.running, _ = store.create(new("running", api_key_id="key_b"))
        self.queued, _ = store.create(new("queued", images=(InputImage(data=BYTES, label="in.bin"),)))
        self.cancelled, _ = store.create(new("cancelled", webhook_url=HOOK, webhook_events=("cancelled",)))
        ended = [store.create(new(f"ended {n}"))[0].id for n in range(2)]
        waiting = [store.create(new(f"waiting {n}"))[0].id for n in range(2)]
        batches.create(
            source="gemini", model="tiny", display_name="ended", members=[(i, None) for i in ended]
        )
        members = [(waiting[0], {"n": 0}), (waiting[1], None)]
        self.waiting_batch = batches.create(source="gemini", model="tiny", display_name="w", members=members)
        assert store.runs.claim_next() is not None and store.runs.claim_next() is not None
        self.serials = store.marks.reserve(self.done.id, 2)
        store.runs.succeed(self.done.id, result("file-1"), {"images": 1}, USAGE, attempt=1)
        store.cancel(self.cancelled.id)
        for index, task_id in enumerate(ended):  # the batch's members end at different times
            store.runs.fail(task_id, TaskError(code="engine_failed", message=f"boom {index}", status=500))
        store.cancel(waiting[0])  # ended, but its batch is not: it does not expire yet
        messages = store.outbox.messages(self.done.id)
        store.outbox.delivered(messages[0].id)
        store.outbox.retry_at(messages[1].id, self.clock.now + 30, "503 from the receiver")
        arena = ArenaStore(store.database, self.clock)
        arena.add_prompts("set", [("a fox", "general"), ("a face", "portrait"), ("a jar", "product")])
        first = arena.next_prompt()
        assert first is not None
        pair = arena.create_pair(
            prompt=first.prompt,
            category=first.category,
            prompt_id=first.id,
            seed=2**40,
            left_contestant="tiny",
            right_contestant="tiny:2-steps",
            left_task=self.done.id,
            right_task=self.running.id,
            api_key_id="key_a",
        )
        arena.vote(pair.id, "left", "key_b")
        arena.create_pair(
            prompt="unvoted",
            category="general",
            left_contestant="a",
            right_contestant="b",
            left_task="t1",
            right_task="t2",
        )
        self.ids = [self.done.id, self.running.id, self.queued.id, self.cancelled.id, *ended, *waiting]
        self.waiting = waiting
        self.clock.frozen = True  # the copy is read at the same moment
        self.snapshot = view(store, self.ids, self.serials)
        self.done_now = store.get(self.done.id)
        self.inputs = store.request(self.queued.id)
        store.close()


def view(store: TaskStore, ids: list[str], serials: tuple[int, ...]) -> dict[str, object]:
    """Everything a user or an operator can read of the store's tasks."""
    totals = store.ledger.totals(group_by=GROUP_COLUMNS)
    return {
        "tasks": [store.get(task_id) for task_id in ids],
        "events": [store.events_after(task_id) for task_id in ids],
        "outbox": [store.outbox.messages(task_id) for task_id in ids],
        "page": store.page(limit=100),
        "totals": sorted(totals, key=lambda t: sorted(t.group.items())),
        "all_totals": store.ledger.totals(),
        "latencies": [store.ledger.latencies("queue"), store.ledger.latencies("run")],
        "marks": [store.marks.find(serial) for serial in serials],
        "quotas": [store.quota_use(key) for key in ("key_a", "key_b", "anonymous")],
        "file": store.file("file-1"),
        "counts": [store.count(status) for status in ("queued", "running", "succeeded", "cancelled")],
        "arena": arena_view(ArenaStore(store.database)),
    }


def arena_view(arena: ArenaStore) -> object:
    """The arena's prompts in import order, its votes in the order cast, and the next prompt."""
    return (arena.prompts(), arena.voted_pairs(), arena.categories(), arena.next_prompt())


@pytest.fixture
def target(postgres_url: str) -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_url)
    yield database
    database.close()


def sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in TABLES}


def test_the_copy_shows_users_what_the_embedded_store_showed(
    tmp_path: Path, target: PostgresDatabase, postgres_url: str
) -> None:
    embedded = Embedded(tmp_path / "embedded")
    counts = copy_embedded(tmp_path / "embedded", target, chunk_rows=3)  # several chunks per table
    assert counts == sqlite_counts(tmp_path / "embedded" / "plantain.db")
    assert counts["tasks"] == 8 and counts["batch_tasks"] == 4 and counts["image_marks"] == 2
    assert counts["webhook_outbox"] == 4 and counts["task_inputs"] == 1  # the queued one's input
    assert counts["arena_prompts"] == 3 and counts["arena_pairs"] == 2

    clock = embedded.clock
    copy = open_store(tmp_path / "copy", clock, postgres_url)
    try:
        assert view(copy, embedded.ids, embedded.serials) == embedded.snapshot
        expiries = [copy.get(task_id).expires_at for task_id in embedded.ids]
        assert expiries[4] == expiries[5] is not None  # the ended batch: the later failure's expiry
        assert expiries[6] is None and expiries[7] is None  # the trigger left the waiting batch so
        assert copy.request(embedded.queued.id) == embedded.inputs  # input bytes, every one of them
        assert copy.request(embedded.queued.id).images[0].data == BYTES
        original = open_store(tmp_path / "embedded", clock)  # due() claims what it hands out: now
        try:
            due = copy.outbox.due(clock.now + 60, limit=100)
            assert due == original.outbox.due(clock.now + 60, limit=100)
        finally:
            original.close()
        assert f"msg_{embedded.done.id}_2" in [m.id for m in due] and len(due) == 2  # a task's oldest

        replay, created = copy.create(new("done", idempotency_key="key-1", fingerprint="fp-1"))
        assert (replay, created) == (embedded.done_now, False)
        claimed = copy.runs.claim_next()
        assert claimed is not None and claimed[0].id == embedded.queued.id
        assert [m.id for m in copy.outbox.messages(embedded.done.id)][:3] == [
            f"msg_{embedded.done.id}_{seq}" for seq in (1, 2, 3)
        ]

        copy.runs.fail(embedded.waiting[1], TaskError(code="x", message="y", status=500))
        ended = copy.get(embedded.waiting[1]).expires_at
        assert ended is not None and copy.get(embedded.waiting[0]).expires_at == ended  # triggers work
    finally:
        copy.close()


def test_a_target_that_is_not_empty_is_refused_and_left_as_it_was(
    tmp_path: Path, target: PostgresDatabase, postgres_url: str
) -> None:
    Embedded(tmp_path / "embedded")
    other = open_store(tmp_path / "other", Clock(), postgres_url)
    try:
        there, _ = other.create(new("already here"))
        before = other.events_after(there.id)
        with pytest.raises(ConfigurationError) as refused:
            copy_embedded(tmp_path / "embedded", target)
        message = str(refused.value)
        assert target.description in message and "not empty" in message
        assert "1 in tasks" in message and "1 in task_events" in message and "1 in quota_days" in message
        assert other.get(there.id) == there and other.events_after(there.id) == before
        assert other.page(limit=10)[0] == [there]
    finally:
        other.close()


def test_a_target_at_another_schema_version_is_refused(tmp_path: Path, target: PostgresDatabase) -> None:
    Embedded(tmp_path / "embedded")
    newest = target.version
    with target.transaction() as db:
        db.execute("UPDATE plantain_schema SET version = ?", (newest - 1,))
    with pytest.raises(ConfigurationError, match=f"version {newest}\\).*version {newest - 1}\\)"):
        copy_embedded(tmp_path / "embedded", target)
    with target.read() as db:
        assert db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 0


def test_a_data_dir_with_no_database_yet_copies_nothing_and_creates_none(
    tmp_path: Path, target: PostgresDatabase
) -> None:
    assert copy_embedded(tmp_path, target) == dict.fromkeys(TABLES, 0)
    assert not (tmp_path / "plantain.db").exists()
    with pytest.raises(ConfigurationError, match="not a directory"):
        copy_embedded(tmp_path / "missing", target)


def test_every_table_of_the_embedded_schema_is_copied(tmp_path: Path) -> None:
    """A migration that adds a table must add it to TABLES too, or the copy would leave it behind."""
    open_store(tmp_path, Clock()).close()
    with sqlite3.connect(tmp_path / "plantain.db") as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        assert sorted(row[0] for row in rows) == sorted(TABLES)
