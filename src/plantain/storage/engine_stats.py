"""Every engine's tries, durably: how often each served, failed or refused, how fast, at what cost.

A task's usage (``ledger.py``) names only the engine that served it; a route (providers/routing.py)
may have tried others first, and those tries are what an operator weighs engines by: a provider
that fails one call in ten, a local engine that falls over under load. Each try adds one row to
running totals by (engine, outcome, currency), and a served try adds its seconds to the engine's
latency histogram, in one short write. ``/metrics`` and ``GET /v1/usage`` read those few rows
(the same across every process sharing the store); p50 and p95 are estimated from the histogram,
whose buckets grow by a quarter each, so an estimate is within about 12% of the true quantile.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from plantain.storage.db import Database
from plantain.storage.ledger import observe

# Upper bounds (seconds) of each engine's latency histogram: 0.05 s to about an hour, each bound a
# quarter above the last.
ENGINE_BUCKETS: tuple[float, ...] = tuple(round(0.05 * 1.25**k, 4) for k in range(51))
OUTCOMES = ("succeeded", "failed", "refused")


@dataclass(frozen=True)
class EngineTotals:
    """One engine's tries: counts by outcome, images made, seconds, cost and latency."""

    engine: str
    currency: str
    attempts: dict[str, int] = field(default_factory=dict)  # outcome -> tries
    images: int = 0
    seconds: float = 0.0  # all tries
    cost: float = 0.0
    latency: list[int] = field(default_factory=list)  # served tries per ENGINE_BUCKETS bound (not cumulative)
    latency_over: int = 0  # served tries longer than the last bound
    latency_seconds: float = 0.0  # sum over served tries

    @property
    def tries(self) -> int:
        return sum(self.attempts.values())

    @property
    def success_rate(self) -> float | None:
        return None if not self.tries else self.attempts.get("succeeded", 0) / self.tries

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile of served tries' seconds, interpolated within its bucket (None: none)."""
        total = sum(self.latency) + self.latency_over
        if total == 0:
            return None
        rank = q * total
        seen = 0
        lower = 0.0
        for bound, count in zip(ENGINE_BUCKETS, self.latency, strict=True):
            if count and seen + count >= rank:
                return lower + (bound - lower) * (rank - seen) / count
            seen += count
            lower = bound
        return ENGINE_BUCKETS[-1]


class EngineStats:
    """Reads and writes ``engine_attempts`` and ``engine_latency``."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def record(
        self, engine: str, outcome: str, seconds: float, *, images: int, cost: float, currency: str
    ) -> None:
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {OUTCOMES}")
        with self._database.transaction() as db:
            db.execute(
                "INSERT INTO engine_attempts (engine, outcome, currency, count, images, seconds, cost) "
                "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (engine, outcome, currency) DO UPDATE SET "
                "count = engine_attempts.count + 1, images = engine_attempts.images + excluded.images, "
                "seconds = engine_attempts.seconds + excluded.seconds, "
                "cost = engine_attempts.cost + excluded.cost",
                (engine, outcome, currency, images, seconds, cost),
            )
            if outcome == "succeeded":
                observe(db, "engine_latency", ("engine", engine), ENGINE_BUCKETS, seconds)

    def totals(self) -> list[EngineTotals]:
        """Every engine tried so far, one entry per (engine, currency), by engine name."""
        with self._database.read() as db:
            attempts = db.execute(
                "SELECT engine, outcome, currency, count, images, seconds, cost FROM engine_attempts"
            ).fetchall()
            latency = db.execute("SELECT engine, le, count, seconds FROM engine_latency").fetchall()
        histograms: dict[str, _Histogram] = {}
        for row in latency:
            histograms.setdefault(str(row["engine"]), _Histogram()).add(
                float(row["le"]), int(row["count"]), float(row["seconds"])
            )
        found: dict[tuple[str, str], EngineTotals] = {}
        for row in attempts:
            key = (str(row["engine"]), str(row["currency"]))
            histogram = histograms.get(key[0], _Histogram())
            entry = found.get(key) or EngineTotals(
                engine=key[0],
                currency=key[1],
                latency=histogram.counts,
                latency_over=histogram.over,
                latency_seconds=histogram.seconds,
            )
            found[key] = replace(
                entry,
                attempts={**entry.attempts, str(row["outcome"]): int(row["count"])},
                images=entry.images + int(row["images"]),
                seconds=entry.seconds + float(row["seconds"]),
                cost=entry.cost + float(row["cost"]),
            )
        return [found[key] for key in sorted(found)]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(ENGINE_BUCKETS))
    over: int = 0
    seconds: float = 0.0

    def add(self, le: float, count: int, seconds: float) -> None:
        position = _POSITION.get(le)
        if position is None:
            self.over += count
        else:
            self.counts[position] += count
        self.seconds += seconds


_POSITION = {bound: i for i, bound in enumerate(ENGINE_BUCKETS)}
