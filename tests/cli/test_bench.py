"""`plantain bench`: its statistics, workload checks, load driver, and real short runs on tiny
(in-process server with the stock diffusers baseline, a live server by URL, the engine alone)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from plantain.benchmark.load import drive
from plantain.benchmark.memory import PeakMemory
from plantain.benchmark.report import RATIO_LINE
from plantain.benchmark.stats import RepeatRun, Sample, figures, percentile, ratio, summarize
from plantain.benchmark.workload import Workload
from plantain.cli.main import cli
from plantain.errors import InvalidRequestError
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

KEY = "bench-test-key"
QUICK = ["-e", "tiny", "-s", "512", "--requests", "2"]


def bench(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "bench", *args], catch_exceptions=False)


# --- statistics ------------------------------------------------------------------------------------


def test_percentiles_interpolate_between_ranks_as_numpy_does() -> None:
    samples = [0.4, 0.1, 0.3, 0.2]
    assert percentile(samples, 0) == 0.1
    assert percentile(samples, 100) == 0.4
    assert percentile(samples, 50) == pytest.approx(0.25)
    assert percentile([7.0], 99) == 7.0
    rng = np.random.default_rng(0)
    for size in (2, 5, 31):
        values = list(rng.exponential(size=size))
        for q in (50, 95, 99):
            assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_refuses_no_samples_and_a_rank_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="from 0 to 100"):
        percentile([1.0], 101)


def test_figures_of_one_repeat() -> None:
    run = RepeatRun(
        samples=(
            Sample(latency=1.0, images=2, queue_wait=0.0, run=0.9, engine=0.8),
            Sample(latency=3.0, images=2, queue_wait=1.0, run=1.1, engine=1.0),
        ),
        wall=4.0,
        peak_rss_bytes=512 * 1024 * 1024,
    )
    numbers = figures(run)
    assert numbers["latency_p50"] == 2.0
    assert numbers["images_per_s"] == 1.0  # 4 images in 4 s
    assert numbers["queue_wait_p50"] == 0.5
    assert numbers["run_p50"] == pytest.approx(1.0)
    assert numbers["peak_rss_mib"] == 512
    assert numbers["peak_gpu_mib"] is None


def test_figures_a_target_cannot_measure_are_none() -> None:
    numbers = figures(RepeatRun(samples=(Sample(latency=1.0, images=1),), wall=1.0))
    assert numbers["queue_wait_p50"] is None and numbers["run_p50"] is None


def test_each_figure_is_summarized_as_min_median_max_across_repeats() -> None:
    summary = summarize(
        [
            {"latency_p50": 3.0, "images_per_s": 1.0, "peak_gpu_mib": None},
            {"latency_p50": 1.0, "images_per_s": 4.0, "peak_gpu_mib": None},
            {"latency_p50": 2.0, "images_per_s": 2.0, "peak_gpu_mib": None},
        ]
    )
    latency = summary["latency_p50"]
    assert latency is not None and (latency.min, latency.median, latency.max) == (1.0, 2.0, 3.0)
    assert summary["peak_gpu_mib"] is None
    assert ratio(summary["images_per_s"], summary["latency_p50"]) == 1.0  # medians 2 and 2


# --- workload --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"concurrency": 0}, "--concurrency"),
        ({"tier": "3K"}, "--tier"),
        ({"aspect_ratio": "7:3"}, "--aspect-ratio"),
        ({"images": 11}, "--images"),
        ({"steps": 0}, "--steps"),
        ({"requests": 0}, "--requests"),
        ({"duration": 0.0}, "--duration"),
        ({"requests": 4, "duration": 5.0}, "--duration"),
        ({"repeats": 0}, "--repeats"),
        ({"warmup": -1}, "--warmup"),
        ({"output_format": "gif"}, "--format"),
        ({"prompt": "  "}, "--prompt"),
        ({"input_image": Path("no-such-picture.png")}, "--input-image"),
    ],
)
def test_a_bad_workload_is_refused_naming_the_option(fields: dict[str, Any], option: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Workload.create(engine="tiny", **fields)
    assert raised.value.field == option
    assert raised.value.message.startswith(option) or option in raised.value.message


def test_workload_defaults_scale_with_concurrency() -> None:
    workload = Workload.create(engine="tiny", concurrency=3, tier="1k")
    assert (workload.tier, workload.requests, workload.warmup, workload.duration) == ("1K", 12, 3, None)
    timed = Workload.create(engine="tiny", duration=2.5, warmup=0)
    assert (timed.requests, timed.warmup) == (None, 0)


def test_every_request_has_its_own_seed_and_prompt_unless_asked() -> None:
    workload = Workload.create(engine="tiny", images=2, seed=10)
    first, second = workload.task_input(0), workload.task_input(1)
    assert (first["seed"], second["seed"]) == (10, 12)
    assert first["prompt"] != second["prompt"]
    same = Workload.create(engine="tiny", repeat_prompt=True)
    assert same.prompt_for(0) == same.prompt_for(5)


def test_the_command_refuses_bad_options_before_loading_anything(data_dir: Path) -> None:
    result = bench(data_dir, "-e", "tiny", "--concurrency", "0")
    assert result.exit_code == 1
    assert "--concurrency: must be from 1 to 256; got 0" in result.stderr
    both = bench(data_dir, "--server", "http://127.0.0.1:1", "--engine-only")
    assert both.exit_code == 1 and "--server and --engine-only" in both.stderr
    nowhere = bench(data_dir, "-e", "tiny", "--json", str(data_dir / "no-such-folder" / "run.json"))
    assert nowhere.exit_code == 1 and "--json: no such directory" in nowhere.stderr


def test_bench_help_loads_no_engine_code() -> None:
    code = """
import sys
from click.testing import CliRunner
from plantain.cli.main import cli
assert CliRunner().invoke(cli, ["bench", "--help"]).exit_code == 0
print(sorted({"torch", "diffusers", "transformers", "fastapi"} & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the load driver -------------------------------------------------------------------------------


def test_the_driver_keeps_concurrency_requests_in_flight_and_runs_each_once() -> None:
    lock, in_flight, most, seen = threading.Lock(), [0], [0], []
    gate = threading.Barrier(3)

    def call(index: int) -> Sample:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            seen.append(index)
        if index < 13:  # the first three meet: all three slots were busy at once
            gate.wait(timeout=30)
        with lock:
            in_flight[0] -= 1
        return Sample(latency=0.001, images=1)

    run, next_index = drive(call, concurrency=3, first_index=10, requests=7)
    assert sorted(seen) == list(range(10, 17)) and next_index == 17
    assert most[0] == 3
    assert [sample.images for sample in run.samples] == [1] * 7
    assert run.peak_rss_bytes is not None and run.peak_rss_bytes > 0


def test_the_driver_stops_starting_requests_after_the_duration() -> None:
    run, next_index = drive(
        lambda index: Sample(latency=0.001, images=1), concurrency=2, first_index=0, duration=0.05
    )
    assert len(run.samples) == next_index >= 1


def test_a_failed_request_stops_the_run_and_is_raised() -> None:
    def call(index: int) -> Sample:
        if index == 2:
            raise InvalidRequestError("request 2 failed")
        return Sample(latency=0.001, images=1)

    with pytest.raises(InvalidRequestError, match="request 2 failed"):
        drive(call, concurrency=2, first_index=0, requests=50)


def test_peak_memory_is_measured() -> None:
    memory = PeakMemory()
    memory.reset()
    assert memory.rss() > 0
    assert memory.gpu() is None or memory.gpu() >= 0


# --- real runs on tiny -----------------------------------------------------------------------------


def test_in_process_run_with_the_stock_baseline(data_dir: Path, tmp_path: Path) -> None:
    record = tmp_path / "bench.json"
    result = bench(data_dir, *QUICK, "-c", "2", "--warmup", "1", "--repeats", "2", "--json", str(record))
    assert result.exit_code == 0, result.output
    assert RATIO_LINE in result.stdout and "latency p95 (ms)" in result.stdout
    doc = json.loads(record.read_text())
    assert doc["target"]["mode"] == "in-process"
    assert doc["workload"]["engine"] == "tiny" and doc["workload"]["concurrency"] == 2
    assert doc["requests"] == {"width": 512, "height": 512, "steps": 4, "guidance": 1.0}
    options = "--engine tiny --tier 512 --concurrency 2 --requests 2 --warmup 1 --repeats 2 --json"
    assert doc["command"] == f"plantain --data-dir {data_dir} bench {options} {record}"
    assert doc["date"] and doc["machine"]["cores"] >= 1
    assert doc["machine"]["versions"]["diffusers"]
    for side in (doc["plantain"], doc["stock_diffusers"]):
        assert len(side["repeats"]) == 2 and side["load_s"] > 0
        for repeat in side["repeats"]:
            assert len(repeat["latency_s"]) == 2 and min(repeat["latency_s"]) > 0
            assert repeat["images"] == 2 and repeat["peak_rss_bytes"] > 0
            assert min(repeat["engine_s"]) > 0
        summary = side["summary"]
        assert (
            summary["latency_p50"]["min"] <= summary["latency_p50"]["median"] <= summary["latency_p50"]["max"]
        )
        assert summary["images_per_s"]["median"] > 0
    plantain_repeat = doc["plantain"]["repeats"][0]
    assert min(plantain_repeat["queue_wait_s"]) >= 0 and min(plantain_repeat["run_s"]) > 0
    assert doc["stock_diffusers"]["concurrency"] == 1
    assert doc["stock_diffusers"]["summary"]["queue_wait_p50"] is None
    ratios = doc["ratio_plantain_over_stock"]
    assert ratios["latency_p50"] > 0 and ratios["images_per_s"] > 0
    assert doc["settings"]["api_keys"] is None


@pytest.fixture(scope="module")
def live_server(server_settings: Callable[..., Settings]) -> Iterator[str]:
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as server:
        yield server.wait_ready()


def test_a_live_server_by_url(data_dir: Path, live_server: str) -> None:
    args = [*QUICK, "-c", "2", "--warmup", "0", "-r", "1", "--server", live_server, "--json", "-"]
    result = CliRunner(env={"PLANTAIN_API_KEY": KEY}).invoke(
        cli, ["--data-dir", str(data_dir), "bench", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # the JSON alone on stdout; the table went to stderr
    assert "latency p50 (ms)" in result.stderr and RATIO_LINE not in result.stderr
    assert doc["target"] == {"mode": "server", "server": live_server}
    assert "--api-key" not in doc["command"]  # from the environment: not a command-line option
    assert doc["stock_diffusers"] is None and doc["ratio_plantain_over_stock"] is None
    assert doc["requests"] == {"width": 512, "height": 512, "steps": 4}
    (repeat,) = doc["plantain"]["repeats"]
    assert repeat["images"] == 2 and min(repeat["latency_s"]) > 0
    assert min(repeat["queue_wait_s"]) >= 0 and min(repeat["run_s"]) > 0


def test_a_live_server_refuses_a_wrong_key(data_dir: Path, live_server: str) -> None:
    result = bench(data_dir, *QUICK, "--warmup", "0", "-r", "1", "--server", live_server, "--api-key", "nope")
    assert result.exit_code == 1 and "API key" in result.stderr, result.stderr


def test_engine_only_edits(data_dir: Path) -> None:
    args = [*QUICK, "--requests", "1", "-n", "2", "--edit", "--warmup", "0", "-r", "1", "--no-baseline"]
    result = bench(data_dir, *args, "--engine-only", "--json", "-")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (repeat,) = doc["plantain"]["repeats"]
    assert repeat["images"] == 2 and repeat["queue_wait_s"] == [None]
    assert repeat["engine_s"][0] > 0 and doc["workload"]["edit"] is True
