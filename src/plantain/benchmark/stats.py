"""Samples, the figures of one repeat, and their spread across repeats.

Percentiles interpolate linearly between the two nearest ranks (numpy's default), so p99 of a
handful of samples lies just under the largest: read tail figures with the sample count in mind.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One measured request, in seconds; None where the target cannot tell."""

    latency: float  # end to end, as the caller saw it
    images: int
    queue_wait: float | None = None  # task started_at - created_at
    run: float | None = None  # task completed_at - started_at: engine, post-processing, storage
    engine: float | None = None  # the pipeline call alone


@dataclass(frozen=True)
class RepeatRun:
    """One repeat of the workload: its samples and what the machine did meanwhile."""

    samples: tuple[Sample, ...]
    wall: float  # seconds from the first request sent to the last answer
    peak_rss_bytes: int | None = None
    peak_gpu_bytes: int | None = None

    @property
    def images(self) -> int:
        return sum(sample.images for sample in self.samples)

    def record(self) -> dict[str, Any]:
        """Every raw figure, as JSON values."""
        return {
            "wall_s": self.wall,
            "images": self.images,
            "peak_rss_bytes": self.peak_rss_bytes,
            "peak_gpu_bytes": self.peak_gpu_bytes,
            "latency_s": [sample.latency for sample in self.samples],
            "queue_wait_s": [sample.queue_wait for sample in self.samples],
            "run_s": [sample.run for sample in self.samples],
            "engine_s": [sample.engine for sample in self.samples],
            "images_per_request": [sample.images for sample in self.samples],
        }


# The figures of one repeat, in the order the table shows them: (name, label, unit).
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("latency_p50", "latency p50", "ms"),
    ("latency_p95", "latency p95", "ms"),
    ("latency_p99", "latency p99", "ms"),
    ("images_per_s", "images/s", ""),
    ("queue_wait_p50", "queue wait p50", "ms"),
    ("queue_wait_p95", "queue wait p95", "ms"),
    ("run_p50", "run time p50", "ms"),
    ("engine_p50", "engine p50", "ms"),
    ("peak_rss_mib", "peak CPU RSS", "MiB"),
    ("peak_gpu_mib", "peak GPU memory", "MiB"),
)

Figures = dict[str, float | None]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be from 0 to 100; got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def figures(run: RepeatRun) -> Figures:
    """The figures of one repeat (seconds for times; None where nothing was measured)."""
    latencies = [sample.latency for sample in run.samples]
    return {
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latency_p99": percentile(latencies, 99),
        "images_per_s": run.images / run.wall if run.wall > 0 else None,
        "queue_wait_p50": _optional(run, "queue_wait", 50),
        "queue_wait_p95": _optional(run, "queue_wait", 95),
        "run_p50": _optional(run, "run", 50),
        "engine_p50": _optional(run, "engine", 50),
        "peak_rss_mib": None if run.peak_rss_bytes is None else run.peak_rss_bytes / MIB,
        "peak_gpu_mib": None if run.peak_gpu_bytes is None else run.peak_gpu_bytes / MIB,
    }


def _optional(run: RepeatRun, name: str, q: float) -> float | None:
    values = [getattr(sample, name) for sample in run.samples]
    known = [value for value in values if value is not None]
    return percentile(known, q) if known else None


@dataclass(frozen=True)
class Spread:
    """One figure across repeats."""

    min: float
    median: float
    max: float
    values: tuple[float, ...] = field(default=())

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(min(values), statistics.median(values), max(values), tuple(values))


def summarize(per_repeat: Sequence[Mapping[str, float | None]]) -> dict[str, Spread | None]:
    """Each figure's min/median/max across repeats; None for a figure no repeat measured."""
    summary: dict[str, Spread | None] = {}
    for name, _label, _unit in FIGURES:
        values = [value for repeat in per_repeat if (value := repeat.get(name)) is not None]
        summary[name] = Spread.of(values) if values else None
    return summary


def ratio(ours: Spread | None, theirs: Spread | None) -> float | None:
    """Median over median: the figure of Plantain relative to the baseline's."""
    if ours is None or theirs is None or theirs.median == 0:
        return None
    return ours.median / theirs.median
