"""The shared task database: PostgreSQL (``database_url=postgresql://…``), for several front doors
and workers on one queue. Imported only when that setting asks for it (the ``cluster`` extra).

:data:`MIGRATIONS` are SQLite's (``sqlite.py``) number for number, written in PostgreSQL's types:
``DOUBLE PRECISION`` for SQLite's REAL (PostgreSQL's ``REAL`` is 4 bytes and would round a Unix
time to minutes), ``BYTEA`` for BLOB, ``BIGINT`` where a value passes 2**31, an identity column
named ``rowid`` where the SQLite queries order by SQLite's implicit one, and the batch triggers
as PL/pgSQL functions. The applied number is kept in ``plantain_schema``; processes starting
together migrate one at a time under an advisory lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import RowMaker

from plantain.errors import ConfigurationError
from plantain.storage.db import Connection, Cursor, Database

WRITE_LOCK = 0x706C616E  # "plan": the advisory lock every write transaction holds
MIGRATION_LOCK = 0x6D696772  # "migr": held while one process migrates

MIGRATIONS: tuple[str, ...] = (
    # 1: tasks, their events and inputs, output files, webhook outbox.
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        queue_order BIGINT NOT NULL,
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
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        completed_at DOUBLE PRECISION,
        expires_at DOUBLE PRECISION
    );
    CREATE INDEX tasks_by_status ON tasks (status, queue_order);
    CREATE INDEX tasks_by_expiry ON tasks (expires_at);
    CREATE TABLE task_inputs (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        label TEXT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (task_id, position)
    );
    CREATE TABLE task_events (
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (task_id, seq)
    );
    CREATE TABLE files (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        media_type TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX files_by_task ON files (task_id);
    CREATE TABLE webhook_outbox (
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        url TEXT NOT NULL,
        event_type TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX outbox_due ON webhook_outbox (status, next_attempt_at);
    """,
    # 2: batches and their member tasks; the triggers keep a batch's results together (see
    # sqlite.py). SQLite does not fire a trigger from its own UPDATE; pg_trigger_depth() keeps
    # that so here, and the inner UPDATE computes what an outer one would.
    """
    CREATE TABLE batches (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        display_name TEXT NOT NULL,
        request_count INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        cancelled_at DOUBLE PRECISION
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
               MAX(CASE WHEN t.status IN ('queued', 'running') THEN 1 ELSE 0 END) AS unfinished,
               MAX(t.expires_at) AS expires_at
        FROM batch_tasks AS m JOIN tasks AS t ON t.id = m.task_id
        GROUP BY m.batch_id;
    CREATE FUNCTION batch_keep_together(batch TEXT) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE tasks SET expires_at = (
            SELECT CASE WHEN e.unfinished = 1 THEN NULL ELSE e.expires_at END FROM batch_expiry AS e
            WHERE e.batch_id = batch
        )
        WHERE id IN (SELECT task_id FROM batch_tasks WHERE batch_id = batch);
    END $$;
    CREATE FUNCTION batch_member_ended() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE batch TEXT;
    BEGIN
        IF pg_trigger_depth() > 1 THEN RETURN NULL; END IF;
        SELECT batch_id INTO batch FROM batch_tasks WHERE task_id = NEW.id;
        IF batch IS NOT NULL THEN PERFORM batch_keep_together(batch); END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER batch_member_ended AFTER UPDATE OF expires_at ON tasks
    FOR EACH ROW WHEN (NEW.expires_at IS NOT NULL) EXECUTE FUNCTION batch_member_ended();
    CREATE FUNCTION batch_last_member_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.position = (SELECT request_count - 1 FROM batches WHERE id = NEW.batch_id) THEN
            PERFORM batch_keep_together(NEW.batch_id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER batch_last_member_added AFTER INSERT ON batch_tasks
    FOR EACH ROW EXECUTE FUNCTION batch_last_member_added();
    CREATE FUNCTION batch_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM batch_tasks WHERE batch_id = OLD.batch_id) THEN
            DELETE FROM batches WHERE id = OLD.batch_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER batch_emptied AFTER DELETE ON batch_tasks
    FOR EACH ROW EXECUTE FUNCTION batch_emptied();
    """,
    # 3: each task's pending webhook messages.
    """
    CREATE INDEX outbox_by_task ON webhook_outbox (task_id, status);
    """,
    # 4: who submitted each task, the usage ledger, its running totals and latency histogram.
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
        device_seconds DOUBLE PRECISION NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        currency TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX usage_by_key ON usage_ledger (api_key_id, finished_at);
    CREATE TABLE usage_totals (
        api_key_id TEXT NOT NULL,
        source TEXT NOT NULL,
        model TEXT NOT NULL,
        engine TEXT NOT NULL,
        status TEXT NOT NULL,
        currency TEXT NOT NULL,
        requests BIGINT NOT NULL,
        images BIGINT NOT NULL,
        input_text_tokens BIGINT NOT NULL,
        input_image_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        device_seconds DOUBLE PRECISION NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (api_key_id, source, model, engine, status, currency)
    );
    CREATE TABLE usage_latency (
        phase TEXT NOT NULL,
        le DOUBLE PRECISION NOT NULL,
        count BIGINT NOT NULL,
        seconds DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (phase, le)
    );
    """,
    # 5: provenance serials, which outlive their tasks.
    """
    ALTER TABLE usage_ledger ADD COLUMN provenance_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE TABLE image_marks (
        serial BIGINT PRIMARY KEY,
        task_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX marks_by_task ON image_marks (task_id, position);
    """,
    # 6: per-key quotas.
    """
    ALTER TABLE tasks ADD COLUMN images INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX tasks_by_key ON tasks (api_key_id, created_at);
    CREATE TABLE quota_days (
        api_key_id TEXT NOT NULL,
        day BIGINT NOT NULL,
        images BIGINT NOT NULL,
        PRIMARY KEY (api_key_id, day)
    );
    """,
    # 7: claims are leases.
    """
    ALTER TABLE tasks ADD COLUMN lease_until DOUBLE PRECISION;
    CREATE INDEX tasks_by_lease ON tasks (status, lease_until);
    """,
    # 8: webhook messages are claimed by the process sending them.
    """
    ALTER TABLE webhook_outbox ADD COLUMN claimed_until DOUBLE PRECISION;
    """,
    # 9: Gemini Files API uploads and their resumable sessions' chunks.
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        session TEXT NOT NULL UNIQUE,
        api_key_id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        mime_type TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        received BIGINT NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        sha256 TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX uploads_by_key ON uploads (api_key_id, created_at, id);
    CREATE INDEX uploads_by_expiry ON uploads (expires_at);
    CREATE TABLE upload_chunks (
        upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
        start_offset BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (upload_id, start_offset)
    );
    """,
    # 10: every engine's tries (storage/engine_stats.py), a route's members one by one: running
    # totals by outcome and a latency histogram of the tries that served, read by /metrics and
    # GET /v1/usage for each engine's success rate, p50/p95 and cost. A task's usage keeps the
    # engine that served it (a route's member) and the planner stage's seconds (planner/).
    """
    ALTER TABLE usage_ledger ADD COLUMN served_by TEXT;
    ALTER TABLE usage_ledger ADD COLUMN planner_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
    CREATE TABLE engine_attempts (
        engine TEXT NOT NULL,
        outcome TEXT NOT NULL,
        currency TEXT NOT NULL,
        count BIGINT NOT NULL,
        images BIGINT NOT NULL,
        seconds DOUBLE PRECISION NOT NULL,
        cost DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (engine, outcome, currency)
    );
    CREATE TABLE engine_latency (
        engine TEXT NOT NULL,
        le DOUBLE PRECISION NOT NULL,
        count BIGINT NOT NULL,
        seconds DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (engine, le)
    );
    """,
    # 11: the planner's tokens and search grounding's time and calls (search/) in each task's
    # usage, and the planner's and the search's seconds, tokens and calls in the running totals
    # (GET /v1/usage); the totals' planner seconds, kept only per task until now, are summed from
    # the ledger so the all-time totals match it.
    """
    ALTER TABLE usage_ledger ADD COLUMN planner_input_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN planner_output_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN search_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE usage_ledger ADD COLUMN searches BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_input_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN planner_output_tokens BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN search_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE usage_totals ADD COLUMN searches BIGINT NOT NULL DEFAULT 0;
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
        rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        id TEXT PRIMARY KEY,
        set_name TEXT NOT NULL,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        pairs INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX arena_prompts_by_use ON arena_prompts (pairs, created_at);
    CREATE TABLE arena_pairs (
        id TEXT PRIMARY KEY,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        prompt_id TEXT,
        seed BIGINT,
        left_contestant TEXT NOT NULL,
        right_contestant TEXT NOT NULL,
        left_task TEXT NOT NULL,
        right_task TEXT NOT NULL,
        api_key_id TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        choice TEXT,
        voted_at DOUBLE PRECISION,
        voter_key_id TEXT
    );
    CREATE INDEX arena_pairs_by_vote ON arena_pairs (voted_at);
    """,
)


class PgRow(tuple[Any, ...]):
    """A row by position or by column name, as ``sqlite3.Row`` is."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _rows(cursor: Any) -> RowMaker[PgRow]:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, names)


def placeholders(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Adapter:
    """A psycopg connection that takes the store's SQL as the sqlite3 module does."""

    def __init__(self, connection: psycopg.Connection[PgRow]) -> None:
        self.raw = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.execute(placeholders(sql) if parameters else sql, tuple(parameters) or None)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.raw.cursor()
        rows = [tuple(row) for row in parameters]
        if rows:
            cursor.executemany(placeholders(sql), rows)
        return cursor


class PostgresDatabase(Database):
    dialect = "postgresql"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        super().__init__(redact(url))
        self.url = url
        self._adapter = self._connect()
        self._migrate()

    def _connect(self) -> _Adapter:
        try:
            raw = psycopg.connect(self.url, autocommit=True, row_factory=_rows)
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"cannot connect to database_url {self.description}: {str(exc).strip()}"
            ) from exc
        return _Adapter(raw)

    def _connection(self) -> Connection:
        """The connection, opened again if the last one broke (a server restart, a dropped link):
        the statement that saw it break failed; the next one gets a fresh connection."""
        if self._adapter.raw.broken or self._adapter.raw.closed:
            self._adapter = self._connect()
        return self._adapter

    def _begin(self, connection: Connection) -> None:
        connection.execute("BEGIN")
        connection.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    def _rollback(self, connection: Connection) -> None:
        if not self._adapter.raw.broken:
            connection.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._adapter.raw.close()

    def _migrate(self) -> None:
        with self._lock:
            db = self._adapter
            db.execute(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
            try:
                db.execute("CREATE TABLE IF NOT EXISTS plantain_schema (version INTEGER NOT NULL)")
                row = db.execute("SELECT version FROM plantain_schema").fetchone()
                version = 0 if row is None else int(row[0])
                if version > len(MIGRATIONS):
                    raise ConfigurationError(
                        f"the database at {self.description} has schema version {version}, newer "
                        f"than this Plantain knows ({len(MIGRATIONS)}); upgrade Plantain"
                    )
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    with self.raw_transaction():
                        db.execute(script)
                        db.execute("DELETE FROM plantain_schema")
                        db.execute("INSERT INTO plantain_schema (version) VALUES (?)", (number,))
            finally:
                db.execute(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")

    @property
    def version(self) -> int:
        with self.read() as db:
            row = db.execute("SELECT version FROM plantain_schema").fetchone()
        return 0 if row is None else int(row[0])

    def raw_transaction(self) -> AbstractContextManager[psycopg.Transaction]:
        return self._adapter.raw.transaction()


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
