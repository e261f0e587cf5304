"""The SQLite database: opened in WAL mode and migrated to the newest schema on open.

Migrations are numbered by their place in :data:`MIGRATIONS` and recorded in ``PRAGMA
user_version``; a migration is never edited once released, only followed by a new one. WAL with
``synchronous=NORMAL`` survives a killed process (SIGKILL, OOM) without losing a committed
transaction; only a power cut can lose the last few.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from plantain.errors import ConfigurationError

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
)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path``."""
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
