"""One benchmark end to end: Plantain on the chosen target, then stock diffusers on the same
checkpoint, each warmed up and then repeated.

Plantain runs first and is released (its server stopped, its pipeline dropped) before the
baseline loads, so neither holds memory during the other's figures. Both phases send the same
requests: request ``i`` has the same prompt and seed in each.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from plantain.benchmark.load import Call, drive
from plantain.benchmark.machine import machine_info
from plantain.benchmark.stats import RepeatRun, Spread, figures, ratio, summarize
from plantain.benchmark.targets import EngineTarget, TaskApiTarget
from plantain.benchmark.workload import Workload
from plantain.settings import Settings

if TYPE_CHECKING:
    from plantain.engines.base import Engine

Mode = Literal["in-process", "server", "engine-only"]
Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """Where to run: ``mode``, the server for ``server`` mode, and whether to run the baseline."""

    mode: Mode = "in-process"
    server: str | None = None
    api_key: str | None = None
    baseline: bool = True


@dataclass
class Phase:
    """One side of the comparison: its repeats and load time."""

    label: str
    concurrency: int
    repeats: list[RepeatRun] = field(default_factory=list)
    load_seconds: float | None = None

    def per_repeat(self) -> list[dict[str, float | None]]:
        return [figures(run) for run in self.repeats]

    def summary(self) -> dict[str, Spread | None]:
        return summarize(self.per_repeat())


@dataclass
class Outcome:
    """Everything one benchmark found, with what is needed to reproduce it."""

    workload: Workload
    plan: Plan
    plantain: Phase
    stock: Phase | None
    machine: dict[str, Any]
    shape: dict[str, Any] | None  # width, height, steps (and guidance) of the requests
    started_at: str

    def ratios(self) -> dict[str, float | None]:
        """Plantain over stock, median over median: latency below 1 and images/s above 1 are wins."""
        if self.stock is None:
            return {}
        ours, theirs = self.plantain.summary(), self.stock.summary()
        return {name: ratio(ours[name], theirs[name]) for name in ("latency_p50", "images_per_s")}


def run_benchmark(workload: Workload, settings: Settings, plan: Plan, say: Say) -> Outcome:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    engine = _local_engine(workload, settings, plan)
    inputs = workload.input_bytes()
    ran = _plantain_phase(workload, settings, plan, engine, inputs, say)
    stock, shape = None, ran.shape
    if plan.baseline and engine is not None:
        stock, shape = _stock_phase(workload, engine, inputs, say)
    return Outcome(
        workload=workload,
        plan=plan,
        plantain=ran.phase,
        stock=stock,
        machine=machine_info(),
        shape=shape,
        started_at=started_at,
    )


@dataclass
class _Ran:
    phase: Phase
    shape: dict[str, Any] | None = None


def _local_engine(workload: Workload, settings: Settings, plan: Plan) -> Engine | None:
    """The engine under test, here: for the in-process modes and for the baseline."""
    if plan.mode == "server" and not plan.baseline:
        return None
    from plantain.engines.registry import EngineRegistry

    return EngineRegistry(settings).get(workload.engine)


def _plantain_phase(
    workload: Workload, settings: Settings, plan: Plan, engine: Engine | None, inputs: bytes | None, say: Say
) -> _Ran:
    if plan.mode == "engine-only":
        return _Ran(_engine_only_phase(workload, settings, inputs, say))
    with _task_api(workload, settings, plan, engine, inputs, say) as (target, load_seconds):
        phase = Phase(target.label, workload.concurrency, load_seconds=load_seconds)
        _repeat(phase, target.call, workload, say)
        return _Ran(phase, target.shape)


def _engine_only_phase(workload: Workload, settings: Settings, inputs: bytes | None, say: Say) -> Phase:
    """The engine from a registry of its own, dropped afterwards: the baseline then loads into
    the memory this one held."""
    from plantain.engines.registry import EngineRegistry

    engine = EngineRegistry(settings).get(workload.engine)
    say(f"loading {engine.name}…")
    started = time.perf_counter()
    engine.load()
    phase = Phase("plantain (engine-only)", workload.concurrency, load_seconds=time.perf_counter() - started)
    _repeat(phase, EngineTarget(engine, workload, inputs).call, workload, say)
    del engine
    _release()
    return phase


@contextmanager
def _task_api(
    workload: Workload, settings: Settings, plan: Plan, engine: Engine | None, inputs: bytes | None, say: Say
) -> Iterator[tuple[TaskApiTarget, float | None]]:
    if plan.mode == "server":
        assert plan.server is not None
        target = TaskApiTarget(
            plan.server, workload, label="plantain (server)", api_key=plan.api_key, input_image=inputs
        )
        try:
            yield target, None
        finally:
            target.close()
        return
    from plantain.benchmark.inprocess import serve_engine

    assert engine is not None
    say(f"starting a server for {engine.name} in this process…")
    started = time.perf_counter()
    with serve_engine(settings, engine) as url:
        target = TaskApiTarget(url, workload, label="plantain (in-process)", input_image=inputs)
        try:
            yield target, time.perf_counter() - started
        finally:
            target.close()
    _release()


def _stock_phase(
    workload: Workload, engine: Engine, inputs: bytes | None, say: Say
) -> tuple[Phase, dict[str, Any]]:
    from plantain.benchmark.stock import StockDiffusers

    baseline = StockDiffusers(engine, workload, inputs)
    say(f"loading stock diffusers ({engine.source.resolve()})…")
    phase = Phase(baseline.label, 1, load_seconds=baseline.load())
    _repeat(phase, baseline.call, workload, say, concurrency=1)
    baseline.close()
    _release()
    job = baseline.job
    return phase, {"width": job.width, "height": job.height, "steps": job.steps, "guidance": job.guidance}


def _repeat(phase: Phase, call: Call, workload: Workload, say: Say, concurrency: int | None = None) -> None:
    """Warm up, then run the workload ``repeats`` times into ``phase``."""
    slots = concurrency or workload.concurrency
    index = 0
    if workload.warmup:
        say(f"{phase.label}: {workload.warmup} warm-up request(s)…")
        _, index = drive(
            call, concurrency=min(slots, workload.warmup), first_index=index, requests=workload.warmup
        )
    for number in range(1, workload.repeats + 1):
        say(f"{phase.label}: repeat {number} of {workload.repeats}…")
        # Request numbers go on across repeats: no prompt is sent twice (unless repeat_prompt).
        run, index = drive(
            call, concurrency=slots, first_index=index, requests=workload.requests, duration=workload.duration
        )
        phase.repeats.append(run)


def _release() -> None:
    """Give memory back between phases (the GPU cache too, where torch holds one)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
