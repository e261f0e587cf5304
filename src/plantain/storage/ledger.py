"""The usage ledger: one row per ended task (who, which model and engine, how it ended, its
tokens, images, device seconds and cost), written by :class:`~plantain.storage.tasks.TaskStore`
in the transaction that ends the task and never deleted with it, so totals outlive retention and
are the same after a restart. ``GET /v1/usage`` and ``/metrics`` read their totals from here.

The same transaction adds the row to running totals per group (``usage_totals``) and to a latency
histogram (``usage_latency``): a scrape reads those few rows, not the whole ledger (100,000 rows
summed on each scrape took a second and held the store's lock). Only a time range
(``since``/``until``) sums ledger rows, through the index on (key, end time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from plantain.storage.db import Connection, Database, Row
from plantain.types import Usage

GROUP_COLUMNS = ("api_key_id", "source", "model", "engine", "status")
TOTAL_COLUMNS = (
    "requests",
    "images",
    "input_text_tokens",
    "input_image_tokens",
    "output_tokens",
    "device_seconds",
    "cost",
    "planner_seconds",
    "planner_input_tokens",
    "planner_output_tokens",
    "search_seconds",
    "searches",
)

# Upper bounds (seconds) of the task latency histogram: from a tiny test engine's fraction of a
# second to a large model's minutes at 4K, and a long queue wait. A longer time is in +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

_ADD_TO_TOTALS = f"""
    INSERT INTO usage_totals ({", ".join(GROUP_COLUMNS)}, currency, {", ".join(TOTAL_COLUMNS)})
    SELECT {", ".join(GROUP_COLUMNS)}, currency, 1, {", ".join(TOTAL_COLUMNS[1:])}
    FROM usage_ledger WHERE task_id = ?
    ON CONFLICT ({", ".join(GROUP_COLUMNS)}, currency) DO UPDATE SET
    {", ".join(f"{name} = usage_totals.{name} + excluded.{name}" for name in TOTAL_COLUMNS)}
"""

_SUMS = """
    {requests} AS requests,
    SUM({requests_of} * CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS succeeded,
    SUM({requests_of} * CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed,
    SUM({requests_of} * CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled,
    SUM(images) AS images,
    SUM(input_text_tokens) AS input_text_tokens,
    SUM(input_image_tokens) AS input_image_tokens,
    SUM(output_tokens) AS output_tokens,
    SUM(device_seconds) AS device_seconds,
    SUM(cost) AS cost,
    SUM(planner_seconds) AS planner_seconds,
    SUM(planner_input_tokens) AS planner_input_tokens,
    SUM(planner_output_tokens) AS planner_output_tokens,
    SUM(search_seconds) AS search_seconds,
    SUM(searches) AS searches
"""


@dataclass(frozen=True)
class Totals:
    """Sums over ledger rows sharing ``group`` (column -> value) and a currency."""

    group: dict[str, str]
    currency: str
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    images: int = 0
    input_text_tokens: int = 0
    input_image_tokens: int = 0
    output_tokens: int = 0
    device_seconds: float = 0.0
    cost: float = 0.0
    planner_seconds: float = 0.0
    planner_input_tokens: int = 0
    planner_output_tokens: int = 0
    search_seconds: float = 0.0
    searches: int = 0


@dataclass(frozen=True)
class Latencies:
    """A histogram of one phase: cumulative counts at each bucket's upper bound, count and sum."""

    cumulative: list[int]
    count: int
    total: float


class UsageLedger:
    """Reads and writes ``usage_ledger`` on the task store's connection, under its lock."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(self, db: Connection, task_id: str, usage: Usage, finished_at: float) -> None:
        """The row of a task that has just ended (inside the store's transaction: ``db``), its
        key, model, engine, source, status and times copied from the task."""
        tokens = usage.tokens
        db.execute(
            "INSERT INTO usage_ledger (task_id, api_key_id, source, model, engine, status, images, "
            "input_text_tokens, input_image_tokens, output_tokens, device_seconds, cost, currency, "
            "provenance_seconds, served_by, planner_seconds, planner_input_tokens, planner_output_tokens, "
            "search_seconds, searches, created_at, started_at, finished_at) "
            "SELECT id, api_key_id, source, model, engine, status, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "created_at, started_at, ? FROM tasks WHERE id = ?",
            (
                usage.images,
                tokens.input_text,
                tokens.input_image,
                tokens.output,
                usage.device_seconds,
                usage.cost.amount,
                usage.cost.currency,
                usage.provenance_seconds,
                usage.served_by,
                usage.planner_seconds,
                usage.planner_input_tokens,
                usage.planner_output_tokens,
                usage.search_seconds,
                usage.searches,
                finished_at,
                task_id,
            ),
        )
        db.execute(_ADD_TO_TOTALS, (task_id,))
        times = db.execute(
            "SELECT created_at, started_at FROM usage_ledger WHERE task_id = ?", (task_id,)
        ).fetchone()
        if times is not None and times["started_at"] is not None:  # it ran
            _observe(db, "queue", times["started_at"] - times["created_at"])
            _observe(db, "run", finished_at - times["started_at"])

    def totals(
        self,
        *,
        key_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        group_by: Sequence[str] = (),
    ) -> list[Totals]:
        """Sums of the rows that ended in [since, until) (of ``key_id`` only, if given), one per
        distinct ``group_by`` values and currency: costs in two currencies are never added."""
        unknown = set(group_by) - set(GROUP_COLUMNS)
        if unknown:
            raise ValueError(f"cannot group usage by {sorted(unknown)}; use {GROUP_COLUMNS}")
        where, params = _filters(key_id, since, until)
        columns = [*group_by, "currency"]
        listed = ", ".join(columns)
        if since is None and until is None:  # all time: the running totals
            sums, table = _SUMS.format(requests="SUM(requests)", requests_of="requests"), "usage_totals"
        else:
            sums, table = _SUMS.format(requests="COUNT(*)", requests_of="1"), "usage_ledger"
        query = f"SELECT {listed}, {sums} FROM {table} {where} GROUP BY {listed} ORDER BY {listed}"
        with self._database.read() as db:
            rows = db.execute(query, params).fetchall()
        return [_totals(row, group_by) for row in rows]

    def latencies(self, phase: str) -> Latencies:
        """The histogram of queue waits (``queue``: start - submission) or runs (``run``: end -
        start) of the tasks that ran, over :data:`LATENCY_BUCKETS`."""
        with self._database.read() as db:
            rows = db.execute(
                "SELECT le, count, seconds FROM usage_latency WHERE phase = ?", (phase,)
            ).fetchall()
        counts = {float(row["le"]): int(row["count"]) for row in rows}
        cumulative = [sum(n for le, n in counts.items() if le <= bound) for bound in LATENCY_BUCKETS]
        total = sum(float(row["seconds"]) for row in rows)
        return Latencies(cumulative=cumulative, count=sum(counts.values()), total=total)


def _observe(db: Connection, phase: str, seconds: float) -> None:
    """One more task in the queue or run histogram."""
    observe(db, "usage_latency", ("phase", phase), LATENCY_BUCKETS, seconds)


def observe(
    db: Connection, table: str, key: tuple[str, str], bounds: Sequence[float], seconds: float
) -> None:
    """One more observation in a latency histogram table (``key`` column and value, ``le``,
    ``count``, ``seconds``): in the bucket of the first of ``bounds`` that ``seconds`` does not
    exceed, else +Inf. Tables and columns are this module's callers' constants, never input."""
    column, value = key
    bound = next((bound for bound in bounds if seconds <= bound), math.inf)
    db.execute(
        f"INSERT INTO {table} ({column}, le, count, seconds) VALUES (?, ?, 1, ?) "
        f"ON CONFLICT ({column}, le) DO UPDATE SET count = {table}.count + 1, "
        f"seconds = {table}.seconds + excluded.seconds",
        (value, bound, seconds),
    )


def _filters(key_id: str | None, since: float | None, until: float | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    for clause, value in (
        ("api_key_id = ?", key_id),
        ("finished_at >= ?", since),
        ("finished_at < ?", until),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _totals(row: Row, group_by: Sequence[str]) -> Totals:
    return Totals(
        group={column: str(row[column]) for column in group_by},
        currency=str(row["currency"]),
        requests=int(row["requests"]),
        succeeded=int(row["succeeded"]),
        failed=int(row["failed"]),
        cancelled=int(row["cancelled"]),
        images=int(row["images"]),
        input_text_tokens=int(row["input_text_tokens"]),
        input_image_tokens=int(row["input_image_tokens"]),
        output_tokens=int(row["output_tokens"]),
        device_seconds=float(row["device_seconds"]),
        cost=float(row["cost"]),
        planner_seconds=float(row["planner_seconds"]),
        planner_input_tokens=int(row["planner_input_tokens"]),
        planner_output_tokens=int(row["planner_output_tokens"]),
        search_seconds=float(row["search_seconds"]),
        searches=int(row["searches"]),
    )
