"""Moving an embedded server's tasks to PostgreSQL: :func:`copy_embedded` copies every table of a
data directory's SQLite task database (``<data_dir>/plantain.db``) into an empty, freshly migrated
task database (``database_url``), so a server that outgrew one process keeps its queue, results,
events, webhook outbox, batches, usage totals, watermark serials, quota counts and arena votes.

The whole copy is one transaction on the target. A copy that fails halfway (a lost connection, a
row the target refuses) leaves the target as empty as it was, ready to try again, rather than
half filled and refused by the emptiness check on the next try; and no server sharing the target
sees a queue without its inputs or a task without its events. The source is read inside one
transaction too (SQLite's write lock held throughout), so every table is copied as of the same
moment, and a server still writing to it waits rather than adding rows the copy would miss. Stop
the embedded server first all the same: what it writes after the copy stays behind in SQLite.

Rows go in chunks (``executemany`` of :data:`CHUNK_ROWS`), read from SQLite as they are sent, so
a large database is never held in memory whole.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from plantain.errors import ConfigurationError
from plantain.storage.db import Connection, Database
from plantain.storage.sqlite import SqliteDatabase

# Every table of the task store, parents before the rows that reference them. The order rows
# are inserted in is SQLite's rowid order: the outbox hands messages out in that order, and the
# target's identity ``rowid`` numbers them as they arrive. Batch memberships come after the
# tasks: inserting a batch's last member fires ``batch_last_member_added``, which sets every
# member's expiry from theirs by the same rule the source's trigger followed.
TABLES: tuple[str, ...] = (
    "tasks",
    "task_inputs",
    "task_events",
    "files",
    "webhook_outbox",
    "batches",
    "batch_tasks",
    "usage_ledger",
    "usage_totals",
    "usage_latency",
    "image_marks",
    "quota_days",
    "uploads",  # Gemini Files API uploads (their bytes stay in the file store), then chunks
    "upload_chunks",
    "engine_attempts",  # each engine's tries and latency (storage/engine_stats.py)
    "engine_latency",
    "arena_prompts",  # the arena's prompt sets (rowid order is each import's order), then pairs
    "arena_pairs",
)

CHUNK_ROWS = 500


def copy_embedded(data_dir: Path, target: Database, *, chunk_rows: int = CHUNK_ROWS) -> dict[str, int]:
    """Copy the task database of the embedded data directory ``data_dir`` into ``target`` (empty
    and migrated: a new :class:`~plantain.storage.postgres.PostgresDatabase`); returns the rows
    copied per table. The source is migrated to the newest schema first, as a server would.

    Refuses (ConfigurationError, nothing written) a target that already holds rows, or whose
    schema version differs from the source's. A data directory with no database yet copies
    nothing (all counts 0) and creates none. Output files are not moved: they stay where the
    data directory (``<data_dir>/files``) or ``storage_url`` keeps them; moving them into a
    bucket is a separate step, and the servers on ``target`` must read them from there.
    """
    path = data_dir / "plantain.db"
    if not path.is_file():
        if not data_dir.is_dir():
            raise ConfigurationError(f"cannot copy from {data_dir}: it is not a directory")
        return dict.fromkeys(TABLES, 0)
    source = SqliteDatabase(path)
    try:
        with source.transaction() as reading, target.transaction() as writing:
            _check(path, source, target, writing)
            return {table: _copy_table(reading, writing, table, chunk_rows) for table in TABLES}
    finally:
        source.close()


def _check(path: Path, source: Database, target: Database, writing: Connection) -> None:
    """Refuse a target at another schema version than the source, or one that is not empty."""
    theirs, ours = source.version, target.version  # read in the transactions the copy holds
    if theirs != ours:
        raise ConfigurationError(
            f"cannot copy {path} (schema version {theirs}) into {target.description} (schema "
            f"version {ours}): both must be at the same version; open both with the same Plantain"
        )
    found = {table: _count(writing, table) for table in TABLES}
    held = ", ".join(f"{count} in {table}" for table, count in found.items() if count)
    if held:
        raise ConfigurationError(
            f"cannot copy {path} into {target.description}: the target is not empty (it holds "
            f"rows: {held}); copy into a new, empty database, which Plantain migrates when it opens it"
        )


def _count(db: Connection, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _copy_table(source: Connection, target: Connection, table: str, chunk_rows: int) -> int:
    """Rows of ``table`` in rowid order, ``chunk_rows`` at a time; returns how many. Columns are
    named (SQLite's implicit rowid is not one), so the target's own identity columns fill in."""
    columns = ", ".join(row["name"] for row in source.execute(f"PRAGMA table_info({table})"))
    values = ", ".join("?" for _ in columns.split(", "))
    insert = f"INSERT INTO {table} ({columns}) VALUES ({values})"
    rows = iter(source.execute(f"SELECT {columns} FROM {table} ORDER BY rowid"))
    copied = 0
    while chunk := [tuple(row) for row in islice(rows, chunk_rows)]:
        target.executemany(insert, chunk)
        copied += len(chunk)
    return copied
