"""Prometheus metrics at ``GET /metrics``, in the text exposition format.

A custom collector reads every counter from the usage ledger's running totals (storage/ledger.py)
at each scrape, so counters are exact after a restart and never count a task twice; the gauges
read the task table. Each app has its own :class:`CollectorRegistry` (not prometheus_client's
global one), so several apps in one process (tests) do not collide.

Counters count tasks once they have ended (a request refused before it became a task is not
counted); ``status`` is how the task ended: succeeded, failed or cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from plantain.storage.engine_stats import ENGINE_BUCKETS, OUTCOMES, EngineTotals
from plantain.storage.ledger import GROUP_COLUMNS, LATENCY_BUCKETS, Totals
from plantain.storage.tasks import TaskStore

LATENCY_PHASES = ("queue", "run")


class UsageCollector(Collector):
    """Plantain's metrics, computed from the store at each scrape."""

    def __init__(self, store: TaskStore, currency: str) -> None:
        self._store = store
        self._currency = currency  # reported (as 0) before anything has been counted

    def describe(self) -> Iterable[Metric]:
        return []  # so registering does not read the store

    def collect(self) -> Iterator[Metric]:
        rows = self._store.ledger.totals(group_by=GROUP_COLUMNS)
        yield _requests(rows)
        yield _counter("plantain_images", "Images made.", ["engine"], rows, _by("engine"), _images)
        yield _tokens(rows)
        yield _counter(
            "plantain_device_seconds",
            "Device seconds spent running tasks (failed and cancelled runs included).",
            ["engine"],
            rows,
            _by("engine"),
            _device_seconds,
        )
        yield _cost(rows, self._currency)
        yield _by_key(rows)
        yield from self._gauges()
        yield self._latency()
        yield from engine_metrics(self._store.engine_stats.totals())

    def _gauges(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "plantain_queued_tasks", "Tasks waiting in the queue.", value=self._store.count("queued")
        )
        yield GaugeMetricFamily(
            "plantain_running_tasks", "Tasks running now.", value=self._store.count("running")
        )

    def _latency(self) -> Metric:
        family = HistogramMetricFamily(
            "plantain_task_latency_seconds",
            "Seconds each ended task waited in the queue (phase=queue) and ran (phase=run).",
            labels=["phase"],
        )
        for phase in LATENCY_PHASES:
            found = self._store.ledger.latencies(phase)
            buckets = [
                (_bound(bound), count) for bound, count in zip(LATENCY_BUCKETS, found.cumulative, strict=True)
            ]
            family.add_metric([phase], [*buckets, ("+Inf", found.count)], found.total)
        return family


def engine_metrics(engines: Sequence[EngineTotals]) -> Iterator[Metric]:
    """Each engine's tries (a route's members each their own): by outcome, cost, the latency
    histogram of the tries that served, and its p50 and p95 estimated from it."""
    attempts = CounterMetricFamily(
        "plantain_engine_attempts",
        "Tries of each engine by outcome (succeeded, failed, refused); a route's members count "
        "their own, so a failover shows as a failed try of one and a served try of the next.",
        labels=["engine", "outcome"],
    )
    cost = CounterMetricFamily(
        "plantain_engine_cost",
        "Cost of each engine's tries: a provider's price per image, or device time at its price.",
        labels=["engine", "currency"],
    )
    latency = HistogramMetricFamily(
        "plantain_engine_latency_seconds", "Seconds of each engine's tries that served.", labels=["engine"]
    )
    quantiles = GaugeMetricFamily(
        "plantain_engine_latency_quantile_seconds",
        "p50 and p95 of each engine's served tries, estimated from its histogram.",
        labels=["engine", "quantile"],
    )
    tries: dict[tuple[str, str], int] = defaultdict(int)  # summed over currencies: one series each
    for entry in engines:
        cost.add_metric([entry.engine, entry.currency], entry.cost)
        for outcome in OUTCOMES:
            tries[(entry.engine, outcome)] += entry.attempts.get(outcome, 0)
    for (engine, outcome), count in tries.items():
        attempts.add_metric([engine, outcome], count)
    # The latency histogram is the engine's, whatever the currency: each entry of an engine holds it.
    for entry in {entry.engine: entry for entry in engines}.values():
        cumulative = list(itertools.accumulate(entry.latency))
        buckets = [(_bound(b), n) for b, n in zip(ENGINE_BUCKETS, cumulative, strict=True)]
        served = tries[(entry.engine, "succeeded")]
        latency.add_metric([entry.engine], [*buckets, ("+Inf", served)], entry.latency_seconds)
        for q in (0.5, 0.95):
            value = entry.quantile(q)
            if value is not None:
                quantiles.add_metric([entry.engine, str(q)], value)
    yield from (attempts, cost, latency, quantiles)


def _requests(rows: Sequence[Totals]) -> Metric:
    return _counter(
        "plantain_requests",
        "Requests (tasks) that have ended, by the dialect they came in by, the model asked for "
        "and how they ended.",
        ["dialect", "model", "status"],
        rows,
        _by("source", "model", "status"),
        lambda row: row.requests,
    )


def _tokens(rows: Sequence[Totals]) -> Metric:
    family = CounterMetricFamily(
        "plantain_tokens", "Tokens as Gemini counts them (input ones estimated).", labels=["kind"]
    )
    for kind, value in (
        ("input_text", sum(row.input_text_tokens for row in rows)),
        ("input_image", sum(row.input_image_tokens for row in rows)),
        ("output", sum(row.output_tokens for row in rows)),
    ):
        family.add_metric([kind], value)
    return family


def _cost(rows: Sequence[Totals], currency: str) -> Metric:
    family = CounterMetricFamily(
        "plantain_cost",
        "Estimated cost of the device time (price_per_device_hour), by currency.",
        labels=["currency"],
    )
    sums = _sum(rows, lambda row: (row.currency,), lambda row: row.cost)
    for (name,), value in (sums or {(currency,): 0.0}).items():
        family.add_metric([name], value)
    return family


def _by_key(rows: Sequence[Totals]) -> Metric:
    """Totals per API key id, one sample per kind; ``currency`` is set on the cost samples only."""
    family = CounterMetricFamily(
        "plantain_usage_by_key",
        "Usage per API key id (a hash of the key, or anonymous): requests, images, tokens, "
        "device seconds and estimated cost.",
        labels=["key_id", "kind", "currency"],
    )
    values: dict[tuple[str, str, str], float] = defaultdict(float)
    for row in rows:
        key = row.group["api_key_id"]
        values[(key, "requests", "")] += row.requests
        values[(key, "images", "")] += row.images
        values[(key, "input_tokens", "")] += row.input_text_tokens + row.input_image_tokens
        values[(key, "output_tokens", "")] += row.output_tokens
        values[(key, "device_seconds", "")] += row.device_seconds
        values[(key, "cost", row.currency)] += row.cost
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


def _counter(
    name: str,
    documentation: str,
    labels: list[str],
    rows: Sequence[Totals],
    key: Callable[[Totals], tuple[str, ...]],
    value: Callable[[Totals], float],
) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for label_values, total in sorted(_sum(rows, key, value).items()):
        family.add_metric(list(label_values), total)
    return family


def _sum(
    rows: Iterable[Totals], key: Callable[[Totals], tuple[str, ...]], value: Callable[[Totals], float]
) -> dict[tuple[str, ...], float]:
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for row in rows:
        sums[key(row)] += value(row)
    return dict(sums)


def _by(*columns: str) -> Callable[[Totals], tuple[str, ...]]:
    return lambda row: tuple(row.group[column] for column in columns)


def _images(row: Totals) -> float:
    return row.images


def _device_seconds(row: Totals) -> float:
    return row.device_seconds


def _bound(bound: float) -> str:
    return repr(float(bound))  # "0.1", "1.0": as prometheus_client writes bucket bounds


def registry_for(store: TaskStore, currency: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(store, currency))
    return registry


def install(app: FastAPI, store: TaskStore, currency: str) -> None:
    """``GET /metrics`` on ``app``, from its own registry. It is behind the API-key check like
    every other route (Prometheus sends a key with ``authorization: {credentials: …}``)."""
    registry = registry_for(store, currency)

    @app.api_route("/metrics", methods=["GET", "HEAD"], include_in_schema=False)
    async def metrics() -> Response:
        body = await asyncio.to_thread(generate_latest, registry)  # SQLite reads: off the loop
        return Response(body, media_type=CONTENT_TYPE_LATEST)


__all__ = ["LATENCY_BUCKETS", "UsageCollector", "install", "registry_for"]
