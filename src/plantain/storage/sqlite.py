"""The embedded task database: SQLite in the data directory, opened in WAL mode and migrated to the
newest schema on open.

Migrations are numbered by their place in :data:`MIGRATIONS` and recorded in ``PRAGMA
user_version``; a migration is never edited once released, only followed by a new one (and its
PostgreSQL twin, with the same number, in ``postgres.py``). WAL with ``synchronous=NORMAL``
survives a killed process (SIGKILL, OOM) without losing a committed transaction; only a power cut
can lose the last few.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plantain.errors import ConfigurationError
from plantain.storage.db import Connection, Database

MIGRATIONS: tuple[str, ...] = (
    # 1: tasks, their events and inputs, output files, webhook outbox.
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        queue_order INTEGER NOT NULL,
        status TEXT NOT NULL,
        model TEXT NOT NULL,
        engine TEXT NOT NULL,
        source TEXT NOT NULL,
        request TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT UNIQUE,
        fingerprint TEXT,
        webhook_url TEXT,
        webhook_events TEXT,
        result TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        completed_at REAL,
        expires_at REAL
    );
    CREATE INDEX tasks_by_status ON tasks (status, queue_order);
    CREATE INDEX tasks_by_expiry ON tasks (expires_at);
    CREATE TABLE task_inputs (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        label TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (task_id, position)
    );
    CREATE TABLE task_events (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (task_id, seq)
    );
    CREATE TABLE files (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        media_type TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX files_by_task ON files (task_id);
    CREATE TABLE webhook_outbox (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        url TEXT NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT,
        created_at REAL NOT NULL
    );
    CREATE INDEX outbox_due ON webhook_outbox (status, next_attempt_at);
    """,
    # 2: batches (storage/batches.py) and their member tasks, in request order. A batch's results
    # are kept together: while one member is unfinished the ended ones do not expire, and when
    # the last ends every member takes the latest expiry. Triggers keep that rule inside the
    # task store's own transactions, which know nothing of batches. When the tasks expire, the
    # memberships go with them (ON DELETE CASCADE) and the emptied batch goes too.
    """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        display_name TEXT NOT NULL,
        request_count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        cancelled_at REAL
    );
    CREATE INDEX batches_by_creation ON batches (created_at, id);
    CREATE TABLE batch_tasks (
        batch_id TEXT NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        task_id TEXT NOT NULL UNIQUE REFERENCES tasks (id) ON DELETE CASCADE,
        metadata TEXT,
        PRIMARY KEY (batch_id, position)
    );
    CREATE VIEW batch_expiry AS
        SELECT m.batch_id,
               MAX(t.status IN ('queued', 'running')) AS unfinished,
               MAX(t.expires_at) AS expires_at
        FROM batch_tasks AS m JOIN tasks AS t ON t.id = m.task_id
        GROUP BY m.batch_id;
    CREATE TRIGGER batch_member_ended AFTER UPDATE OF expires_at ON tasks
    WHEN NEW.expires_at IS NOT NULL AND EXISTS (SELECT 1 FROM batch_tasks WHERE task_id = NEW.id)
    BEGIN
        UPDATE tasks SET expires_at = (
            SELECT CASE WHEN e.unfinished THEN NULL ELSE e.expires_at END FROM batch_expiry AS e
            WHERE e.batch_id = (SELECT batch_id FROM batch_tasks WHERE task_id = NEW.id)
        )
        WHERE id IN (
            SELECT task_id FROM batch_tasks
            WHERE batch_id = (SELECT batch_id FROM batch_tasks WHERE task_id = NEW.id)
        );
    END;
    CREATE TRIGGER batch_last_member_added AFTER INSERT ON batch_tasks
    WHEN NEW.position = (SELECT request_count - 1 FROM batches WHERE id = NEW.batch_id)
    BEGIN
        UPDATE tasks SET expires_at = (
            SELECT CASE WHEN e.unfinished THEN NULL ELSE e.expires_at END FROM batch_expiry AS e
            WHERE e.batch_id = NEW.batch_id
        )
        WHERE id IN (SELECT task_id FROM batch_tasks WHERE batch_id = NEW.batch_id);
    END;
    CREATE TRIGGER batch_emptied AFTER DELETE ON batch_tasks
    WHEN NOT EXISTS (SELECT 1 FROM batch_tasks WHERE batch_id = OLD.batch_id)
    BEGIN
        DELETE FROM batches WHERE id = OLD.batch_id;
    END;
    """,
    # 3: the webhook deliverer looks up each task's pending messages (storage/outbox.py).
    """
    CREATE INDEX outbox_by_task ON webhook_outbox (task_id, status);
    """,
    # 4: who submitted each task (a key id, never the key), and a usage ledger (storage/ledger.py):
    # one row per ended task, written in the transaction that ends it. The ledger has no foreign
    # key, so its rows outlive the tasks they count: totals survive retention. Tasks that ended
    # before this migration have no row (their tokens and cost were never counted). Running totals
    # per group and a latency histogram are kept beside it, in the same transaction, so /metrics
    # reads a few rows however long the ledger grows.
    """
    ALTER TABLE tasks ADD COLUMN api_key_id TEXT NOT NULL DEFAULT 'anonymous';
    CREATE TABLE usage_ledger (
        task_id TEXT PRIMARY KEY,
        api_key_id TEXT NOT NULL,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        engine TEXT NOT NULL,
        status TEXT NOT NULL,
        images INTEGER NOT NULL,
        input_text_tokens INTEGER NOT NULL,
        input_image_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        device_seconds REAL NOT NULL,
        cost REAL NOT NULL,
        currency TEXT NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL NOT NULL
    );
    CREATE INDEX usage_by_key ON usage_ledger (api_key_id, finished_at);
    CREATE TABLE usage_totals (
        api_key_id TEXT NOT NULL,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        engine TEXT NOT NULL,
        status TEXT NOT NULL,
        currency TEXT NOT NULL,
        requests INTEGER NOT NULL,
        images INTEGER NOT NULL,
        input_text_tokens INTEGER NOT NULL,
        input_image_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        device_seconds REAL NOT NULL,
        cost REAL NOT NULL,
        PRIMARY KEY (api_key_id, source, model, engine, status, currency)
    );
    CREATE TABLE usage_latency (
        phase TEXT NOT NULL,
        le REAL NOT NULL,
        count INTEGER NOT NULL,
        seconds REAL NOT NULL,
        PRIMARY KEY (phase, le)
    );
    """,
    # 5: provenance (storage/marks.py). Each output image's watermark carries a random serial that
    # maps back to its task here; like the ledger, these rows outlive the tasks, so an image still
    # names its task id after the task has expired. The ledger keeps the time spent on provenance.
    """
    ALTER TABLE usage_ledger ADD COLUMN provenance_seconds REAL NOT NULL DEFAULT 0;
    CREATE TABLE image_marks (
        serial INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX marks_by_task ON image_marks (task_id, position);
    """,
    # 6: per-key quotas (storage/quotas.py). Requests per minute and concurrent tasks are counted
    # from the tasks themselves; images per day in their own rows, which outlive expired tasks.
    """
    ALTER TABLE tasks ADD COLUMN images INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX tasks_by_key ON tasks (api_key_id, created_at);
    CREATE TABLE quota_days (
        api_key_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        images INTEGER NOT NULL,
        PRIMARY KEY (api_key_id, day)
    );
    """,
    # 7: claims are leases (storage/leases.py): a running task's worker renews lease_until while
    # it holds the task; one whose lease ran out is queued again for another run.
    """
    ALTER TABLE tasks ADD COLUMN lease_until REAL;
    CREATE INDEX tasks_by_lease ON tasks (status, lease_until);
    """,
    # 8: any front door drains the webhook outbox (storage/outbox.py): a sender claims a message
    # until claimed_until, so two processes never send one message at the same time.
    """
    ALTER TABLE webhook_outbox ADD COLUMN claimed_until REAL;
    """,
    # 9: Gemini Files API uploads (storage/uploads.py): one row per file, owned by the key that
    # uploaded it, its bytes in the file store (key upload-<id>) once finalized. A resumable
    # session's chunks wait in upload_chunks until then, so any front door can take the next one.
    # A file expires retention_seconds after its upload began, with its session's chunks.
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        session TEXT NOT NULL UNIQUE,
        api_key_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        sha256 TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX uploads_by_key ON uploads (api_key_id, created_at, id);
    CREATE INDEX uploads_by_expiry ON uploads (expires_at);
    CREATE TABLE upload_chunks (
        upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
        start_offset INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (upload_id, start_offset)
    );
    """,
    # 10: every engine's tries (storage/engine_stats.py), a route's members one by one: running
    # totals by outcome and a latency histogram of the tries that served, read by /metrics and
    # GET /v1/usage for each engine's success rate, p50/p95 and cost. A task's usage keeps the
    # engine that served it (a route's member) and the planner stage's seconds (planner/).
    """
    ALTER TABLE usage_ledger ADD COLUMN served_by TEXT;
    ALTER TABLE usage_ledger ADD COLUMN planner_seconds REAL NOT NULL DEFAULT 0;
    CREATE TABLE engine_attempts (
        engine TEXT NOT NULL,
        outcome TEXT NOT NULL,
        currency TEXT NOT NULL,
        count INTEGER NOT NULL,
        images INTEGER NOT NULL,
        seconds REAL NOT NULL,
        cost REAL NOT NULL,
        PRIMARY KEY (engine, outcome, currency)
    );
    CREATE TABLE engine_latency (
        engine TEXT NOT NULL,
        le REAL NOT NULL,
        count INTEGER NOT NULL,
        seconds REAL NOT NULL,
        PRIMARY KEY (engine, le)
    );
    """,
    # 11: the planner's tokens and search grounding's time and calls (search/) in each task's
    # usage, and the planner's and the search's seconds, tokens and calls in the running totals
    # (GET /v1/usage); the totals' planner seconds, kept only per task until now, are summed from
    # the ledger so the all-time totals match it.
    """
    ALTER TABLE usage_ledger ADD COLUMN planner_input_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN planner_output_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN search_seconds REAL NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN searches INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_seconds REAL NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_input_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_output_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN search_seconds REAL NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN searches INTEGER NOT NULL DEFAULT 0;
    UPDATE usage_totals SET planner_seconds = COALESCE((
        SELECT SUM(l.planner_seconds) FROM usage_ledger AS l
        WHERE l.api_key_id = usage_totals.api_key_id AND l.source = usage_totals.source
        AND l.model = usage_totals.model AND l.engine = usage_totals.engine
        AND l.status = usage_totals.status AND l.currency = usage_totals.currency), 0);
    """,
    # 12: the blind arena (storage/arena.py). Imported prompt sets, each prompt counting the pairs
    # made from it so a set is walked through evenly, and the pairs: one prompt run by two
    # contestants (a task each), shown side by side without their names. A pair's vote lives on
    # its row, so a pair takes one vote (the UPDATE that records it requires none yet); the
    # leaderboard replays the votes in voted_at order.
    """
    CREATE TABLE arena_prompts (
        id TEXT PRIMARY KEY,
        set_name TEXT NOT NULL,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at REAL NOT NULL,
        pairs INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX arena_prompts_by_use ON arena_prompts (pairs, created_at);
    CREATE TABLE arena_pairs (
        id TEXT PRIMARY KEY,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        prompt_id TEXT,
        seed INTEGER,
        left_contestant TEXT NOT NULL,
        right_contestant TEXT NOT NULL,
        left_task TEXT NOT NULL,
        right_task TEXT NOT NULL,
        api_key_id TEXT,
        created_at REAL NOT NULL,
        choice TEXT,
        voted_at REAL,
        voter_key_id TEXT
    );
    CREATE INDEX arena_pairs_by_vote ON arena_pairs (voted_at);
    """,
)


class SqliteDatabase(Database):
    """The task database in one SQLite file; writers take SQLite's own write lock at ``BEGIN
    IMMEDIATE``, so two connections to one file cannot deadlock upgrading their read locks."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        super().__init__(str(path))
        self.path = path
        self._db = connect(path, read_only=read_only)

    def _connection(self) -> Connection:
        return self._db

    @property
    def version(self) -> int:
        with self.read() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def _begin(self, connection: Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path``; ``read_only`` opens an
    existing one as it is (``plantain verify`` beside a running server)."""
    if read_only:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        connection.row_factory = sqlite3.Row
        return connection
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")
    migrate(connection, path)
    return connection


def migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Apply every migration newer than the database's ``user_version``, each in one transaction."""
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise ConfigurationError(
            f"{path} has schema version {version}, newer than this Plantain knows ({len(MIGRATIONS)}); "
            "upgrade Plantain or point PLANTAIN_DATA_DIR elsewhere"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
