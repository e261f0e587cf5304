"""Each engine's tries, on both engines of the store: counts by outcome, cost, and p50/p95 read
back from the latency histogram (what /metrics and GET /v1/usage show per engine)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from plantain.storage.engine_stats import ENGINE_BUCKETS
from plantain.storage.tasks import TaskStore


@pytest.fixture
def store(tmp_path: Path, database_url: str | None) -> Iterator[TaskStore]:
    store = TaskStore(tmp_path, retention_seconds=60, database_url=database_url)
    yield store
    store.close()


def test_tries_add_up_by_engine_and_outcome(store: TaskStore) -> None:
    stats = store.engine_stats
    stats.record("cloud", "failed", 0.2, images=0, cost=0.0, currency="USD")
    stats.record("cloud", "succeeded", 6.0, images=2, cost=0.078, currency="USD")
    stats.record("local", "succeeded", 1.5, images=1, cost=0.001, currency="USD")
    stats.record("local", "refused", 0.0, images=0, cost=0.0, currency="USD")
    cloud, local = store.engine_stats.totals()
    assert (cloud.engine, cloud.attempts, cloud.images) == ("cloud", {"failed": 1, "succeeded": 1}, 2)
    assert cloud.cost == pytest.approx(0.078) and cloud.success_rate == 0.5
    assert local.tries == 2 and local.success_rate == 0.5
    assert sum(local.latency) == 1 and local.latency_seconds == pytest.approx(1.5)


def test_p50_and_p95_come_back_within_a_bucket_of_the_truth(store: TaskStore) -> None:
    seconds = [0.5 + 0.1 * i for i in range(100)]  # 0.5 .. 10.4 s
    for value in seconds:
        store.engine_stats.record("local", "succeeded", value, images=1, cost=0.0, currency="USD")
    [local] = store.engine_stats.totals()
    for q, truth in ((0.5, 5.45), (0.95, 9.95)):
        estimate = local.quantile(q)
        assert estimate is not None and abs(estimate - truth) / truth < 0.125


def test_an_engine_that_never_served_has_no_latency(store: TaskStore) -> None:
    store.engine_stats.record("down", "failed", 30.0, images=0, cost=0.0, currency="USD")
    [down] = store.engine_stats.totals()
    assert down.quantile(0.5) is None and down.success_rate == 0.0


def test_a_try_longer_than_the_last_bucket_is_counted_beyond_it(store: TaskStore) -> None:
    store.engine_stats.record("slow", "succeeded", ENGINE_BUCKETS[-1] * 2, images=1, cost=0.0, currency="USD")
    [slow] = store.engine_stats.totals()
    assert slow.latency_over == 1 and slow.quantile(0.5) == ENGINE_BUCKETS[-1]


def test_an_unknown_outcome_is_a_programming_error(store: TaskStore) -> None:
    with pytest.raises(ValueError, match="outcome"):
        store.engine_stats.record("x", "maybe", 1.0, images=0, cost=0.0, currency="USD")


def test_metrics_give_an_engine_one_series_when_its_tries_span_two_currencies(store: TaskStore) -> None:
    from plantain.server.metrics import engine_metrics

    store.engine_stats.record("cloud", "succeeded", 2.0, images=1, cost=0.04, currency="USD")
    store.engine_stats.record("cloud", "succeeded", 3.0, images=1, cost=0.03, currency="EUR")
    samples = [
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in engine_metrics(store.engine_stats.totals())
        for sample in family.samples
    ]
    tries = [
        s for s in samples if s[0] == "plantain_engine_attempts_total" and ("outcome", "succeeded") in s[1]
    ]
    assert [value for *_, value in tries] == [2]  # one series, both tries
    assert [s[2] for s in samples if s[0] == "plantain_engine_latency_seconds_count"] == [2]
    costs = {
        dict(labels)["currency"]: value
        for name, labels, value in samples
        if name == "plantain_engine_cost_total"
    }
    assert costs == {"USD": pytest.approx(0.04), "EUR": pytest.approx(0.03)}
