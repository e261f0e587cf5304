"""A benchmark's outcome as a table for people and as JSON for the records.

The JSON holds every raw sample (seconds), the per-repeat figures, their min/median/max, the
workload, the settings (secrets left out), the machine, the date and the command line, so a
figure in docs/performance.md can be traced to the run that made it.
"""

from __future__ import annotations

from typing import Any

from plantain.benchmark.machine import describe
from plantain.benchmark.session import Outcome, Phase
from plantain.benchmark.stats import FIGURES, Spread
from plantain.settings import SECRET_SETTINGS, Settings

SCHEMA = 1
LABEL_WIDTH = 20
VALUE_WIDTH = 9
RATIO_LINE = "ratio plantain/stock (medians): "


def render(outcome: Outcome) -> str:
    """The readable table, with the ratio line when the baseline ran."""
    phases = [outcome.plantain, *([outcome.stock] if outcome.stock is not None else [])]
    summaries = [phase.summary() for phase in phases]
    lines = [*_header(outcome), "", _phase_header(phases), _column_header(len(phases))]
    for name, label, unit in FIGURES:
        cells = "".join(_cells(summary[name], unit) for summary in summaries)
        lines.append(f"{_label(label, unit):<{LABEL_WIDTH}}{cells}")
    lines += ["", *_notes(outcome)]
    if outcome.stock is not None:
        lines.append(ratio_line(outcome.ratios()))
    return "\n".join(lines)


def ratio_line(ratios: dict[str, float | None]) -> str:
    latency, throughput = (_times(ratios.get(name)) for name in ("latency_p50", "images_per_s"))
    return f"{RATIO_LINE}latency p50 {latency} (below 1: faster), images/s {throughput} (above 1: more)"


def _header(outcome: Outcome) -> list[str]:
    lines = [f"plantain bench: {outcome.workload.describe()}"]
    shape = outcome.shape
    if shape:
        guidance = f", guidance {shape['guidance']:g}" if shape.get("guidance") is not None else ""
        lines.append(f"requests: {shape['width']}x{shape['height']}, {shape['steps']} steps{guidance}")
    lines.append(f"machine: {describe(outcome.machine)}")
    loads = [
        f"{phase.label} {phase.load_seconds:.1f} s"
        for phase in (outcome.plantain, outcome.stock)
        if phase is not None and phase.load_seconds is not None
    ]
    if loads:
        lines.append(f"load (not in the figures): {', '.join(loads)}")
    return lines


def _phase_header(phases: list[Phase]) -> str:
    width = 3 * VALUE_WIDTH
    return " " * LABEL_WIDTH + "".join(f"{phase.label[: width - 2]:>{width}}" for phase in phases)


def _column_header(count: int) -> str:
    columns = "".join(f"{name:>{VALUE_WIDTH}}" for name in ("min", "median", "max"))
    return f"{'figure':<{LABEL_WIDTH}}" + columns * count


def _label(label: str, unit: str) -> str:
    return f"{label} ({unit})" if unit else label


def _cells(spread: Spread | None, unit: str) -> str:
    if spread is None:
        return f"{'n/a':>{VALUE_WIDTH}}" * 3
    return "".join(
        f"{_value(value, unit):>{VALUE_WIDTH}}" for value in (spread.min, spread.median, spread.max)
    )


def _value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.1f}"
    if unit == "MiB":
        return f"{value:.0f}"
    return f"{value:.2f}"


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _notes(outcome: Outcome) -> list[str]:
    notes = [
        f"{outcome.workload.repeats} repeat(s); each figure is min/median/max over them; "
        f"{outcome.plantain.label}: {_included(outcome)}"
    ]
    if outcome.plan.mode == "server":
        notes.append("peak CPU RSS is this client's; the server's memory is not seen from here")
    if outcome.stock is not None:
        notes.append(
            "stock diffusers: from_pretrained + __call__ + Pillow encode, one request at a time"
            + (" (its latency has no queue wait)" if outcome.workload.concurrency > 1 else "")
        )
    return notes


def _included(outcome: Outcome) -> str:
    if outcome.plan.mode == "engine-only":
        return "latency is decode, plan, pipeline call and encode (no HTTP, queue or provenance)"
    return "latency is submit to the last image downloaded (HTTP, queue, engine, post-processing)"


# --- JSON ------------------------------------------------------------------------------------------


def document(outcome: Outcome, settings: Settings, command: str) -> dict[str, Any]:
    """The record of one benchmark, as JSON values."""
    return {
        "schema": SCHEMA,
        "command": command,
        "date": outcome.started_at,
        "machine": outcome.machine,
        "workload": outcome.workload.record(),
        "target": {"mode": outcome.plan.mode, "server": outcome.plan.server},
        "requests": outcome.shape,
        "settings": public_settings(settings),
        "units": {"times": "seconds", "raw memory": "bytes", "figures memory": "MiB"},
        "plantain": phase_record(outcome.plantain),
        "stock_diffusers": phase_record(outcome.stock) if outcome.stock is not None else None,
        "ratio_plantain_over_stock": outcome.ratios() or None,
    }


def phase_record(phase: Phase) -> dict[str, Any]:
    per_repeat = phase.per_repeat()
    return {
        "label": phase.label,
        "concurrency": phase.concurrency,
        "load_s": phase.load_seconds,
        "repeats": [
            {**run.record(), "figures": numbers}
            for run, numbers in zip(phase.repeats, per_repeat, strict=True)
        ],
        "summary": {
            name: None if spread is None else {"min": spread.min, "median": spread.median, "max": spread.max}
            for name, spread in phase.summary().items()
        },
    }


def public_settings(settings: Settings) -> dict[str, Any]:
    """The settings, with secrets (API keys, the webhook secret) shown only as set or not."""
    values = settings.model_dump(mode="json")
    for name in SECRET_SETTINGS:
        values[name] = "(set)" if values.get(name) else None
    return values
