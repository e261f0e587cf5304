"""The task store on SQLite and on PostgreSQL: submitting, idempotency, claiming, ends, retention,
cancellation, the webhook outbox and watermark serials behave the same on both engines; the
cross-process rules (one claim per task, one task per idempotency key, one migration) are checked
on PostgreSQL with two stores, as two processes would open it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from plantain.errors import IdempotencyConflictError, NotFoundError
from plantain.storage import postgres
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import (
    Cost,
    ImageRequest,
    InputImage,
    Task,
    TaskEvent,
    TaskOutput,
    TaskResult,
    TokenUsage,
    Usage,
)

RETENTION = 600.0
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
USAGE = Usage(
    tokens=TokenUsage(output=4), images=1, device_seconds=2.5, cost=Cost(amount=0.01, currency="USD")
)


def webhook_body(task: Task, event: TaskEvent) -> str:
    return json.dumps({"task": task.id, "type": event.type, "seq": event.seq})


class Clocked:
    """A task store on a clock the test moves."""

    def __init__(self, path: Path, database_url: str | None, now: float = 1000.0) -> None:
        self.now = now
        self.store = TaskStore(
            path,
            retention_seconds=RETENTION,
            clock=lambda: self.now,
            webhook_body=webhook_body,
            database_url=database_url,
        )

    def queue(self, **fields: Any) -> str:
        return submit(self.store, **fields)[0].id


def submit(store: TaskStore, **fields: Any) -> tuple[Task, bool]:
    request = ImageRequest.create(prompt="a cube", engine="tiny")
    return store.create(NewTask(request=request, model="tiny", engine="tiny", source="tasks", **fields))


@pytest.fixture
def clocked(tmp_path: Path, database_url: str | None) -> Iterator[Clocked]:
    clocked = Clocked(tmp_path, database_url)
    yield clocked
    clocked.store.close()


def result(file_id: str) -> TaskResult:
    output = TaskOutput(file_id=file_id, media_type="image/png", width=8, height=8, seed=1)
    return TaskResult(engine="tiny", outputs=(output,), steps=1, guidance=1.0, seconds=0.1)


def types(store: TaskStore, task_id: str) -> list[str]:
    return [event.type for event in store.events_after(task_id)]


def test_a_new_task_is_queued_with_its_place_in_the_queue(clocked: Clocked) -> None:
    """Each task is created queued with a 'queued' event naming its position; positions move up
    as older tasks are claimed, and a task that is no longer queued has none."""
    store = clocked.store
    first, created = submit(store)
    second = clocked.queue()
    assert created and first.status == "queued" and first.created_at == clocked.now
    [event] = store.events_after(second)
    assert (event.seq, event.type, event.data) == (1, "queued", {"position": 2})
    assert [store.queue_position(first.id), store.queue_position(second)] == [1, 2]
    store.runs.claim_next()
    assert [store.queue_position(first.id), store.queue_position(second)] == [None, 1]
    assert store.count("queued") == 1 and store.count("running") == 1


def test_pages_list_tasks_newest_first_and_the_cursor_continues_where_the_last_ended(
    clocked: Clocked,
) -> None:
    """page() is newest first; its cursor gives the next page with nothing repeated or skipped,
    also among tasks created in the same instant; ``status`` filters."""
    ids = []
    for index in range(5):
        clocked.now += 0 if index == 2 else 1  # two tasks share a creation time
        ids.append(clocked.queue())
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = clocked.store.page(limit=2, before=cursor)
        seen += [task.id for task in page]
        if cursor is None:
            break
    assert len(seen) == 5 and set(seen) == set(ids)
    created = [clocked.store.get(task_id).created_at for task_id in seen]
    assert created == sorted(created, reverse=True) and seen[0] == ids[-1]
    clocked.store.cancel(ids[0])
    assert [task.id for task in clocked.store.page(status="cancelled")[0]] == [ids[0]]


def test_events_after_a_sequence_number_are_the_later_ones_in_order(clocked: Clocked) -> None:
    """Events are numbered from 1 without gaps; events_after(seq) replays those after it."""
    task_id = clocked.queue()
    clocked.store.runs.claim_next()
    clocked.store.runs.add_event(task_id, "progress", {"step": 1, "total": 2}, attempt=1)
    later = clocked.store.events_after(task_id, 1)
    assert [(event.seq, event.type) for event in later] == [(2, "started"), (3, "progress")]
    assert clocked.store.events_after(task_id, 3) == []


def test_a_reused_idempotency_key_replays_the_first_task_or_conflicts(clocked: Clocked) -> None:
    """The same key with the same fingerprint returns the first task (created False); with another
    fingerprint it is refused, by create and by replayed alike."""
    store = clocked.store
    first, created = submit(store, idempotency_key="k1", fingerprint="body-a")
    again, created_again = submit(store, idempotency_key="k1", fingerprint="body-a")
    assert created and not created_again and again.id == first.id
    replay = store.replayed("k1", "body-a")
    assert replay is not None and replay.id == first.id and store.replayed("k2", "body-a") is None
    with pytest.raises(IdempotencyConflictError):
        submit(store, idempotency_key="k1", fingerprint="body-b")
    with pytest.raises(IdempotencyConflictError):
        store.replayed("k1", "body-b")
    assert store.count("queued") == 1


def test_claim_next_takes_the_oldest_queued_task_of_the_pool(clocked: Clocked) -> None:
    """The oldest queued task is claimed with its attempt counted and a 'started' event; a pool of
    other engines takes nothing, and an empty pool returns None."""
    runs = clocked.store.runs
    older, newer = clocked.queue(), clocked.queue()
    assert runs.claim_next(engines=["other"]) is None and runs.claim_next(engines=[]) is None
    clocked.now += 5
    claimed = runs.claim_next()
    assert claimed is not None
    task, event = claimed
    assert (task.id, task.status, task.attempts, task.started_at) == (older, "running", 1, clocked.now)
    assert (event.seq, event.type, event.data) == (2, "started", {"attempt": 1})
    claimed = runs.claim_next(engines=["tiny", "other"])
    assert claimed is not None and claimed[0].id == newer
    assert runs.claim_next() is None


def test_a_batch_claims_its_joiners_together_in_queue_order_leaving_ended_ones_out(clocked: Clocked) -> None:
    """claim_all takes the named tasks that are still queued in one statement, oldest first, each
    with its 'started' event; one cancelled meanwhile and one already running stay out."""
    runs = clocked.store.runs
    leader, first, cancelled, second = (clocked.queue() for _ in range(4))
    assert runs.claim_next() is not None and clocked.store.cancel(cancelled) is not None
    claimed = runs.claim_all([second, cancelled, first, leader])
    assert [task.id for task, _ in claimed] == [first, second]
    assert all(task.status == "running" and task.attempts == 1 for task, _ in claimed)
    assert [(event.task_id, event.type) for _, event in claimed] == [(first, "started"), (second, "started")]
    assert runs.claim_all([first]) == [] and runs.claim_all([]) == []


def test_a_success_records_files_usage_and_expiry_and_retention_deletes_them(clocked: Clocked) -> None:
    """succeed stores the files, a 'completed' event, a ledger row and the expiry; expire() after
    retention deletes the task, its events and its file, and the ledger's totals outlive it."""
    store = clocked.store
    task_id = clocked.queue()
    store.runs.claim_next()
    store.blobs.put("out_1", PNG, "image/png")
    clocked.now += 10
    event = store.runs.succeed(task_id, result("out_1"), {"images": 1}, USAGE, attempt=1)
    assert event is not None and event.type == "completed"
    assert store.runs.succeed(task_id, result("out_1"), {}, USAGE, attempt=1) is None  # only once
    task = store.get(task_id)
    assert (task.status, task.usage, task.expires_at) == ("succeeded", USAGE, clocked.now + RETENTION)
    assert task.result is not None and task.result.outputs[0].file_id == "out_1"
    assert store.file("out_1") == "image/png" and store.blobs.get("out_1") == PNG
    [totals] = store.ledger.totals()
    assert (totals.succeeded, totals.images, totals.device_seconds, totals.cost) == (1, 1, 2.5, 0.01)

    clocked.now += RETENTION - 1
    assert store.runs.expire() == 0 and store.get(task_id).status == "succeeded"
    clocked.now += 1
    assert store.runs.expire() == 1
    with pytest.raises(NotFoundError):
        store.get(task_id)
    with pytest.raises(NotFoundError):
        store.file("out_1")
    with pytest.raises(FileNotFoundError):
        store.blobs.get("out_1")
    assert store.events_after(task_id) == []
    assert store.ledger.totals()[0].succeeded == 1


def test_a_queued_task_is_cancelled_at_once(clocked: Clocked) -> None:
    """Cancelling a queued task ends it with a 'cancelled' event; cancelling it again does nothing."""
    task_id = clocked.queue()
    event = clocked.store.cancel(task_id)
    assert event is not None and (event.type, event.data) == ("cancelled", {"while": "queued"})
    assert clocked.store.get(task_id).status == "cancelled" and clocked.store.queue_position(task_id) is None
    assert clocked.store.cancel(task_id) is None and types(clocked.store, task_id) == ["queued", "cancelled"]
    assert clocked.store.runs.claim_next() is None


def test_a_running_task_is_flagged_and_its_worker_records_the_cancellation(clocked: Clocked) -> None:
    """Cancelling a running task sets cancel_requested for its worker, which then ends it."""
    store = clocked.store
    task_id, other = clocked.queue(), clocked.queue()
    store.runs.claim_next()
    store.runs.claim_next()
    assert store.cancel(task_id) is None
    assert store.get(task_id).status == "running" and store.get(task_id).cancel_requested
    assert store.leases.cancel_requested([task_id, other]) == [task_id]
    event = store.runs.mark_cancelled(task_id, 3, attempt=1)
    assert event is not None and event.data == {"while": "running", "step": 3}
    assert store.get(task_id).status == "cancelled"
    assert types(store, task_id) == ["queued", "started", "cancelled"]


def test_webhook_messages_are_written_with_their_events_and_handed_out_one_per_task(
    clocked: Clocked,
) -> None:
    """A task with a webhook gets one outbox message per event; due() hands out each task's oldest
    pending message only, oldest first, and a delivered one lets the task's next through."""
    outbox = clocked.store.outbox
    first = clocked.queue(webhook_url="https://a.example/hook")
    clocked.now += 1
    second = clocked.queue(webhook_url="https://b.example/hook")
    clocked.queue()  # no webhook: no message
    clocked.store.runs.claim_next()
    assert [message.event_type for message in outbox.messages(first)] == ["queued", "started"]
    due = outbox.due(clocked.now, 10)
    assert [(message.task_id, message.event_type) for message in due] == [
        (first, "queued"),
        (second, "queued"),
    ]
    assert json.loads(due[0].body) == {"task": first, "type": "queued", "seq": 1}
    outbox.delivered(due[0].id)
    assert [(m.task_id, m.event_type) for m in outbox.due(clocked.now, 10)] == [(first, "started")]
    assert outbox.pending_count() == 2 and outbox.messages(first)[0].status == "delivered"


def test_a_message_handed_out_is_claimed_until_its_claim_runs_out(clocked: Clocked) -> None:
    """due() claims what it returns: another sender gets it only once the claim has run out (its
    first sender died), and then with the same webhook id."""
    outbox = clocked.store.outbox
    clocked.queue(webhook_url="https://a.example/hook")
    [message] = outbox.due(clocked.now, 10, claim_seconds=60)
    assert outbox.due(clocked.now + 59, 10) == []
    [again] = outbox.due(clocked.now + 60, 10)
    assert (again.id, again.body, again.attempts) == (message.id, message.body, 0)


def test_a_retried_webhook_waits_and_a_given_up_one_lets_the_next_through(clocked: Clocked) -> None:
    """retry_at counts the attempt and holds the task's messages until then; give_up settles it."""
    outbox = clocked.store.outbox
    task_id = clocked.queue(webhook_url="https://a.example/hook")
    clocked.store.runs.claim_next()
    [queued] = outbox.due(clocked.now, 10)
    outbox.retry_at(queued.id, clocked.now + 60, "503 Service Unavailable")
    assert outbox.due(clocked.now, 10) == []  # 'started' waits behind it
    [held] = outbox.due(clocked.now + 60, 10)
    assert (held.id, held.attempts, held.last_error) == (queued.id, 1, "503 Service Unavailable")
    outbox.give_up(held.id, "too many attempts")
    assert outbox.messages(task_id)[0].status == "failed"
    assert [message.event_type for message in outbox.due(clocked.now, 10)] == ["started"]


def test_a_gone_receiver_stops_the_tasks_later_webhooks(clocked: Clocked) -> None:
    """410 Gone settles every pending message of the task to that URL and queues no more."""
    outbox = clocked.store.outbox
    task_id = clocked.queue(webhook_url="https://a.example/hook")
    other = clocked.queue(webhook_url="https://a.example/hook")
    clocked.store.runs.claim_next()
    message, _ = outbox.due(clocked.now, 10)
    assert message.task_id == task_id
    outbox.gone(message, "410 Gone")
    assert [item.status for item in outbox.messages(task_id)] == ["gone", "gone"]
    assert outbox.is_gone(task_id, "https://a.example/hook") and not outbox.is_gone(
        other, "https://a.example/hook"
    )
    clocked.store.runs.mark_cancelled(task_id, None, attempt=1)
    assert len(outbox.messages(task_id)) == 2  # the 'cancelled' event queued nothing
    assert [item.task_id for item in outbox.due(clocked.now + 60, 10)] == [other]  # claims ran out


def test_watermark_serials_are_distinct_kept_for_a_retry_and_name_their_task(clocked: Clocked) -> None:
    """reserve() gives distinct serials, the same ones again for a retried run of the task (and
    new ones only beyond them); find() names the task and the image's position."""
    marks = clocked.store.marks
    task_id, other = clocked.queue(), clocked.queue()
    serials = marks.reserve(task_id, 3)
    assert len(set(serials)) == 3 and all(0 <= serial < 2**32 for serial in serials)
    assert marks.reserve(task_id, 3) == serials
    more = marks.reserve(task_id, 4)
    assert more[:3] == serials and more[3] not in serials
    assert not set(marks.reserve(other, 2)) & set(more)
    found = marks.find(serials[1])
    assert found is not None and (found.task_id, found.position) == (task_id, 1)
    assert marks.find(next(n for n in range(2**32) if n not in more)) is None


def test_times_round_trip_to_the_microsecond(tmp_path: Path, database_url: str | None) -> None:
    """Unix times keep their microseconds (PostgreSQL's 4-byte REAL would round them to minutes),
    so a page cursor on such a time neither repeats nor skips a task."""
    clocked = Clocked(tmp_path, database_url, now=1_700_000_000.123456)
    store = clocked.store
    first = clocked.queue()
    clocked.now += 0.000001
    second = clocked.queue()
    assert store.get(first).created_at == 1_700_000_000.123456
    assert store.get(second).created_at == 1_700_000_000.123457
    clocked.now = 1_700_000_000.654321
    store.runs.claim_next()
    assert store.get(first).started_at == 1_700_000_000.654321
    assert store.events_after(first)[-1].created_at == 1_700_000_000.654321
    assert [task.id for task in store.page(limit=1, before=second)[0]] == [first]
    store.close()


@pytest.fixture
def stores(tmp_path: Path, postgres_url: str) -> Iterator[list[TaskStore]]:
    """Two stores on one PostgreSQL database, each with its own connection (as two processes)."""
    pair = [
        TaskStore(tmp_path / name, retention_seconds=RETENTION, database_url=postgres_url) for name in "ab"
    ]
    yield pair
    for store in pair:
        store.close()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in ``count`` threads started together."""
    start = threading.Barrier(count)

    def run(index: int) -> Any:
        start.wait()
        return work(index)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_claims_from_two_processes_take_every_task_exactly_once(stores: list[TaskStore]) -> None:
    """8 workers on two stores claim 40 queued tasks: no task is claimed twice, none is missed."""
    ids = [submit(stores[0])[0].id for _ in range(40)]

    def drain(index: int) -> list[str]:
        claimed = []
        while (next_task := stores[index % 2].runs.claim_next()) is not None:
            claimed.append(next_task[0].id)
        return claimed

    claimed = [task_id for batch in in_threads(8, drain) for task_id in batch]
    assert sorted(claimed) == sorted(ids)
    assert all(stores[1].get(task_id).attempts == 1 for task_id in ids)
    assert stores[0].count("running") == 40


def test_one_idempotency_key_sent_at_once_to_two_processes_makes_one_task(stores: list[TaskStore]) -> None:
    """20 submissions of one key across two stores: one creates the task, the rest replay it."""
    made = in_threads(20, lambda i: submit(stores[i % 2], idempotency_key="same", fingerprint="fp"))
    assert sum(created for _, created in made) == 1
    assert len({task.id for task, _ in made}) == 1
    assert stores[0].count("queued") == 1 and stores[1].count("queued") == 1


def test_a_database_migrated_by_one_process_is_not_migrated_again(
    stores: list[TaskStore], tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second store sees the schema version the first wrote; reopening runs no migration."""
    first, second = stores
    version = len(postgres.MIGRATIONS)
    assert first.database.version == second.database.version == version
    task_id = submit(first)[0].id
    monkeypatch.setattr(postgres, "MIGRATIONS", tuple("SELECT 1 / 0" for _ in range(version)))
    again = TaskStore(tmp_path / "c", retention_seconds=RETENTION, database_url=postgres_url)
    assert again.database.version == version
    assert again.get(task_id).status == "queued"
    with again.database.read() as db:
        assert db.execute("SELECT COUNT(*) FROM plantain_schema").fetchone()[0] == 1
    again.close()


def test_a_store_whose_connection_was_cut_reconnects_on_its_next_call(stores: list[TaskStore]) -> None:
    """A dropped connection (a database restart, a cut link) fails the call that meets it; the
    next call opens a new connection, and nothing committed is lost."""
    store, other = stores
    task_id = submit(store)[0].id
    with store.database.read() as db:
        pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    with other.database.read() as db:
        db.execute("SELECT pg_terminate_backend(?)", (pid,))
        while db.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ?", (pid,)).fetchone():
            time.sleep(0.01)  # the backend ends a moment after it is told to
    with pytest.raises(psycopg.OperationalError):
        store.get(task_id)
    assert store.get(task_id).status == "queued"
    assert submit(store)[0].status == "queued"


def test_a_mask_survives_the_store_round_trip_after_the_images(clocked: Clocked) -> None:
    """A worker in another process reads the request back from the store: the mask with it, apart
    from the images, and a request without one reads back without one."""
    images = (InputImage(data=PNG, label="image 1"), InputImage(data=PNG[::-1], label="image 2"))
    mask = InputImage(data=PNG + b"mask", label="mask")
    request = ImageRequest.create(prompt="a cube", engine="tiny", images=images, mask=mask)
    store = clocked.store
    task, _ = store.create(NewTask(request=request, model="tiny", engine="tiny", source="openai"))
    assert store.request(task.id) == request
    assert task.input_count == 2 and task.request["mask_label"] == "mask"
    plain = request.model_copy(update={"mask": None})
    task, _ = store.create(NewTask(request=plain, model="tiny", engine="tiny", source="openai"))
    assert store.request(task.id) == plain and store.request(task.id).mask is None
