"""``bench/gpu_check.sh --dry-run``: the whole GPU check (every stage in its own process, the shared
budget, the report) on the CPU at tiny size, as a GPU machine runs it at full size."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.sh"
ENGINE_STAGES = {
    "klein": ["stock", "eager", "cached", "compile", "fp8"],
    "zimage": ["stock", "eager", "cached", "compile"],
    "qwen": ["stock", "eager", "compile"],
}
SHORT_BUDGET_S = 30.0


@dataclass
class Check:
    code: int
    output: str
    seconds: float
    report: dict[str, Any]
    markdown: str

    def stage(self, name: str) -> dict[str, Any]:
        return next(stage for stage in self.report["stages"] if stage["stage"] == name)


def run_check(out: Path, *args: str) -> Check:
    env = {**os.environ, "PYTHON": sys.executable}  # the interpreter running these tests
    started = time.monotonic()
    done = subprocess.run(
        [str(SCRIPT), "--dry-run", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    report = json.loads((out / "gpu-check.json").read_text())
    return Check(done.returncode, output, seconds, report, (out / "gpu-check.md").read_text())


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Check:
    return run_check(tmp_path_factory.mktemp("gpu-check"))


@pytest.fixture(scope="module")
def cut_short(tmp_path_factory: pytest.TempPathFactory) -> Check:
    """Z-Image alone, asked for far more runs than its budget holds."""
    out = tmp_path_factory.mktemp("gpu-check-short")
    return run_check(out, "--only", "zimage", "--repeats", "1000", "--budget", str(SHORT_BUDGET_S))


@pytest.mark.slow
def test_dry_run_reports_every_stage_and_row_with_numbers(full: Check) -> None:
    assert full.code == 0, full.output
    assert [stage["stage"] for stage in full.report["stages"]] == [*ENGINE_STAGES, "tests"]
    assert all(stage["status"] == "done" for stage in full.report["stages"]), full.output
    for name, variants in ENGINE_STAGES.items():
        stage = full.stage(name)
        assert [row["variant"] for row in stage["rows"]] == variants
        for row in stage["rows"]:
            if row["variant"] == "fp8":  # no CUDA here: skipped, saying why
                assert "fp8" in row["skipped"]
                continue
            assert row["runs"] == 2
            assert 0 < row["min"] <= row["p50"] <= row["max"]
            assert row["step_s"] > 0 and row["warmup_s"] > 0
            assert f"| {name} | {row['label']} | 128x128 | {stage['steps']} | 2 | " in full.markdown
    assert full.stage("qwen")["steps"] == 3 and full.stage("qwen")["preset_steps"] == 40
    assert all(row["at_preset_steps_s"] > row["p50"] for row in full.stage("qwen")["rows"])
    assert full.stage("tests")["counts"]["collected"] >= 1
    for name in [*ENGINE_STAGES, "tests"]:
        assert f"- {name} (" in full.markdown
        assert "[gpu-check" in full.output and f"] {name}: start" in full.output  # progress as it goes


@pytest.mark.slow
def test_only_the_repeated_prompt_row_skips_the_text_encoder(full: Check) -> None:
    for name in ENGINE_STAGES:
        for row in full.stage(name)["rows"]:
            cache = row.get("text_encoder_cache")
            if cache is None:
                continue
            if row["variant"] == "cached":
                assert cache["hits"] == row["runs"]
            else:
                assert cache["hits"] == 0, (name, row["variant"])


@pytest.mark.slow
def test_plantain_eager_makes_the_images_stock_diffusers_makes(full: Check) -> None:
    for name in ENGINE_STAGES:
        eager = next(row for row in full.stage(name)["rows"] if row["variant"] == "eager")
        assert eager["deviation"]["against"] == "stock diffusers"
        assert eager["deviation"]["pairs"] == 2
        assert eager["deviation"]["psnr_db"] > 40


@pytest.mark.slow
def test_only_runs_the_named_stages(cut_short: Check) -> None:
    assert [stage["stage"] for stage in cut_short.report["stages"]] == ["zimage"]
    assert "| klein |" not in cut_short.markdown


@pytest.mark.slow
def test_a_short_budget_stops_in_time_and_keeps_the_runs_it_finished(cut_short: Check) -> None:
    assert cut_short.code == 0, cut_short.output
    assert cut_short.seconds < SHORT_BUDGET_S
    stage = cut_short.stage("zimage")
    assert stage["status"] == "stopped"
    stock, *later = stage["rows"]
    assert 1 <= stock["runs"] < 1000 and stock["stopped"].startswith("budget")
    assert all(row.get("runs", 0) < 1000 for row in later)
    assert all(row.get("stopped") or row["skipped"].startswith("budget") for row in later)
    assert f"| zimage | stock diffusers | 128x128 | 8 | {stock['runs']} | " in cut_short.markdown


def gpu_check_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_a_stage_past_its_allotment_is_stopped() -> None:
    hung = [sys.executable, "-c", "import time; time.sleep(60)"]
    code, seconds = gpu_check_module().run_with_deadline(hung, 1.0)
    assert code is None
    assert seconds < 10
