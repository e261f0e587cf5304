"""One GPU check: stock diffusers against Plantain on full-size models, in under 9 minutes.

Stages, in this order, each in its own process (one engine's weights at a time on the card) and
each on full-size architectures with random weights (``bench/fullsize_models.py``: nothing is
downloaded), 1024x1024, batch 1, end to end to a PIL image:

  klein   FLUX.2-klein-4B, 4 steps (preset): stock diffusers ``__call__``, Plantain eager bf16,
          Plantain eager with a repeated prompt (text-encoder cache hit, labelled apart),
          + regional compile, + fp8 (torchao; with its deviation from eager bf16, same seeds)
  zimage  Z-Image-Turbo, 8 steps (preset): stock, eager, repeated prompt, + regional compile
  qwen    Qwen-Image-Edit-2511, true CFG, --qwen-steps (default 8 of the preset's 40): stock,
          eager, + regional compile; time per step, and the time at 40 steps estimated from it
  tests   ``pytest -m gpu``, with what is left of the budget

Each timed run has its own prompt, seed and (for edits) input image, so the text-encoder cache
saves nothing there; every row starts with an empty cache and one untimed run at 2 steps
(compilation, allocator growth, lazy initialisation; its seconds are in the report). Rows report
median/min/max seconds, the ratio to stock (stock median / row median: above 1 is faster),
seconds per denoising step (the median gap between step ends; each step end waits for the GPU),
the peak GPU memory torch allocated (weights included), the text-encoder cache's hits and misses
and, for the compiled and fp8 rows, the mean absolute pixel difference and PSNR against eager bf16
on the same prompts and seeds (eager against stock as well).

The budget (``--budget``, default 510 s) is shared by the selected stages in proportion to their
shares (klein 150, zimage 120, qwen 210, tests 30 s); what a stage leaves over goes to the later
ones. A stage stops itself 5 s before its allotment, skipping rows that would not fit and cutting a
row's repeats short; at its allotment it is stopped. Every finished row is saved as it finishes:
the report (``OUT/gpu-check.json`` and ``OUT/gpu-check.md``) is rewritten after each stage and
keeps the stages of earlier runs into the same ``--out`` that this run did not repeat, so the
check can also run as two shorter commands into one report.

Expected wall time on one H100 SXM 80 GB (estimated, not yet measured), stage by stage:

  stage   start  build  rows: untimed 2-step run + timed runs, each row           total  share
  klein   15 s   10 s   stock, eager, cached: 3 x (0.3 + 5 x 0.44 s)             ~130 s  150 s
                        compile: 45 s compiling + 0.3 + 5 x 0.37 s; fp8: about the same
  zimage  15 s   12 s   stock, eager, cached: 3 x (0.4 + 5 x 1.2 s)              ~97 s   120 s
                        compile: 45 s compiling + 0.4 + 5 x 1.0 s
  qwen    15 s   20 s   stock, eager: 2 x (2 + 3 x 7.4 s); compile: 60 s + 2 +   ~165 s  210 s
                        3 x 6.0 s (~195 s at 1.3 s a step)
  tests   collection ~10 s, the tiny checkpoint, three tiny-engine tests (two     ~75 s   the rest
          compile)
  all                                                                            ~465 s  510 s

The basis. Per denoising step, linear layers cost 2 x (parameters a token passes through) x
tokens and attention 4 x sequence^2 x width x layers, at an assumed 400 TFLOP/s of bf16 in eager
mode (40 % of the H100 SXM's 989 dense peak) and 1.25x that compiled:
  FLUX.2-klein-4B: 3.68 B block parameters; 4,096 image tokens through all 25 blocks, the 512 text
    tokens through the 20 single blocks and the 5 double blocks' text half: 28 + 6.5 (attention,
    4,608 tokens) = 35 TFLOP, 0.09 s; 4 steps 0.35 s.
  Z-Image-Turbo: 5.3 B in 30 layers over 4,224 tokens (4,096 image + 128 text), plus 2 + 2 refiner
    layers: 48 + 8 = 56 TFLOP, 0.14 s; 8 steps 1.1 s.
  Qwen-Image-Edit-2511: 13.6 B of its 20.4 B act on tokens (the rest modulate one vector), 6.8 B
    per stream; 8,192 image tokens (output and input image, 4,096 each) + ~500 text tokens: 118 +
    56 (attention, ~8,700 tokens) = 174 TFLOP a pass, two passes a step (true CFG): 0.87 s a step.
    Slower kernels could make it 1.25-1.75 s a step (50-70 s at 40 steps); the budget holds 1.3.
Each run adds the text encoder (Qwen3-4B on 512 tokens: 4 TFLOP, ~15 ms; Qwen2.5-VL-7B on the
prompt and the negative prompt, ~600 tokens and a 384x384 image each: ~19 TFLOP, ~60 ms), the
VAE (decode ~60 ms; Qwen's 3D VAE encodes the input and decodes, ~0.3 s) and the PIL image
(~15 ms). Start is the Python imports (about 7 s measured on 2 CPU cores) and the CUDA
context. Build is random initialisation in bf16 on the GPU of 8.4 B, 10.3 B and 28.9 B
parameters (17, 21 and 58 GB): the kernels run at memory speed (well under 1 s), the rest is
Python constructing the modules. Regional compilation (diffusers' ``compile_repeated_blocks``)
compiles one or two block classes with cold caches, assumed 30-60 s (Qwen also recompiles once
for the negative prompt's length, hence 60 s). The byte-level tokenizer makes Qwen's text ~500
tokens where the real tokenizer makes ~220 (its system prompt is not dropped whole): about 4 %
more work a step than the real model; Z-Image's 128 text tokens against ~32 real ones, about 3 %.

    bench/gpu_check.sh                          # all stages, 510 s budget, report in gpu-check-out/
    bench/gpu_check.sh --only klein,zimage      # or as two commands, into one report:
    bench/gpu_check.sh --only qwen,tests
    bench/gpu_check.sh --dry-run --out DIR      # the whole path on a CPU at tiny size (a minute)

Needs a CUDA build of torch and Plantain installed with its ``fp8`` extra (torchao) for the fp8
row; without torchao, or on a GPU below compute capability 8.9, that row is skipped with the
reason. ``PLANTAIN_*`` settings apply to the Plantain rows (e.g. ``PLANTAIN_ATTENTION_BACKEND``).
The exit status is 1 when a stage failed (an error, a failing GPU test), else 0, also when the
budget cut stages short: the report says which.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from plantain.engines.base import Engine, EngineJob

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a lighthouse on a cliff at dusk, waves below, warm light in the window"
SEED = 42
DRY_SIZE = 128  # --dry-run: tiny widths at 128x128 on the CPU
RESERVE_S = 5.0  # kept back from the budget: stopping a stage, writing the report
GRACE_S = 5.0  # a stage stops itself this long before its allotment; the hard stop comes at it
KILL_AFTER_S = 5.0  # after a stopped stage's SIGTERM, SIGKILL
MIN_STAGE_S = 10.0  # less than this cannot even import torch and diffusers: the stage is skipped
GIB = 1024**3


@dataclass(frozen=True)
class Stage:
    engine: str | None  # None: the gpu-marked tests
    share_s: float  # its part of the default budget
    repeats: int  # timed runs a row (--repeats overrides)
    variants: tuple[str, ...] = ()
    compile_s: float = 0.0  # expected compilation on an H100: a compiled row that cannot fit is skipped
    steps: int | None = None  # None: the preset's


STAGES = {
    "klein": Stage("flux2-klein-4b", 150, 5, ("stock", "eager", "cached", "compile", "fp8"), 45),
    "zimage": Stage("z-image-turbo", 120, 5, ("stock", "eager", "cached", "compile"), 45),
    "qwen": Stage("qwen-image-edit", 210, 3, ("stock", "eager", "compile"), 60, steps=8),
    "tests": Stage(None, 30, 0),
}
LABELS = {
    "stock": "stock diffusers",
    "eager": "plantain eager",
    "cached": "plantain eager, repeated prompt (cache hit)",
    "compile": "plantain + regional compile",
    "fp8": "plantain + regional compile + fp8",
}
# The settings each Plantain row changes (PLANTAIN_* settings from the environment apply to the rest).
ROW_SETTINGS: dict[str, dict[str, Any]] = {
    "eager": {"torch_compile": "off"},
    "cached": {"torch_compile": "off"},
    "compile": {"torch_compile": "regional"},
    "fp8": {"torch_compile": "regional", "quantization": "fp8"},
}
# Whose images each row's are compared with (same prompts and seeds).
REFERENCE = {"eager": "stock", "compile": "eager", "fp8": "eager"}


# --- the check: one process per stage, a shared budget ----------------------------------------


def check(args: argparse.Namespace) -> int:
    out = args.out.resolve()
    (out / "stages").mkdir(parents=True, exist_ok=True)
    selected = [name for name in STAGES if name in args.only]
    for name in selected:
        stage_file(out, name).unlink(missing_ok=True)
    started = time.monotonic()
    end = started + args.budget - RESERVE_S
    progress = Progress("gpu-check", started)
    progress.say(f"stages {', '.join(selected)}; budget {args.budget:.0f} s; report in {out}")
    for index, name in enumerate(selected):
        left = end - time.monotonic()
        allotment = left * STAGES[name].share_s / sum(STAGES[later].share_s for later in selected[index:])
        record: dict[str, Any] = {"stage": name, "engine": STAGES[name].engine, "dry_run": args.dry_run}
        if allotment < MIN_STAGE_S:
            record |= {"status": "skipped", "reason": f"{max(left, 0):.0f} s of the budget left"}
        else:
            progress.say(f"{name}: start, {allotment:.0f} s of the budget")
            run = run_tests if name == "tests" else run_stage_process
            record = run(args, out, name, allotment)
        record |= {"command": command_line(), "allotment_s": round(max(allotment, 0), 1)}
        write_json(stage_file(out, name), record)
        progress.say(f"{name}: {record['status']}{reason(record)}")
        write_report(out)
    progress.say(f"wrote {out / 'gpu-check.md'} and {out / 'gpu-check.json'}")
    print(render_markdown(load_stages(out)), flush=True)
    return 1 if any(load_json(stage_file(out, name)).get("status") == "failed" for name in selected) else 0


def run_stage_process(args: argparse.Namespace, out: Path, name: str, allotment: float) -> dict[str, Any]:
    """Run one engine stage in a child process that stops itself before ``allotment``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--out", str(out)]
    command += ["--budget", f"{max(allotment - GRACE_S, 1):.1f}", "--qwen-steps", str(args.qwen_steps)]
    command += ["--repeats", str(args.repeats)] if args.repeats else []
    command += ["--dry-run"] if args.dry_run else []
    code, seconds = run_with_deadline(command, allotment)
    record = load_json(stage_file(out, name)) or {"stage": name, "engine": STAGES[name].engine, "rows": []}
    record["wall_s"] = round(seconds, 1)
    if code is None:
        record |= {"status": "timed out", "reason": f"stopped at its allotment, {allotment:.0f} s"}
    elif code != 0:
        record |= {"status": "failed", "reason": record.get("error") or f"exit status {code}"}
    return record


def run_tests(args: argparse.Namespace, out: Path, name: str, allotment: float) -> dict[str, Any]:
    """``pytest -m gpu`` with the time left; a dry run only collects them (no GPU to run them on)."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    command += ["--collect-only"] if args.dry_run else []
    log = out / "pytest-gpu.log"
    with log.open("w") as sink:
        code, seconds = run_with_deadline(command, allotment, sink)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    summary = lines[-1] if lines else ""
    record: dict[str, Any] = {"stage": name, "engine": None, "dry_run": args.dry_run, "rows": []}
    record |= {"command_run": " ".join(command[1:]), "summary": summary, "log": log.name}
    record |= {"wall_s": round(seconds, 1), "counts": tally(summary)}
    if code is None:
        record |= {"status": "timed out", "reason": f"stopped at its allotment, {allotment:.0f} s"}
    else:
        # 5: no test carries the marker, which is no failure of the check.
        record["status"] = "done" if code in (0, 5) else "failed"
    return record


def tally(summary: str) -> dict[str, int]:
    """pytest's last line as numbers: ``3 passed, 1 failed in 40.1s`` -> {passed: 3, failed: 1}."""
    kinds = "passed|failed|errors?|skipped|deselected|xfailed|xpassed|tests? collected"
    found = re.findall(rf"(\d+)(?:/\d+)? ({kinds})", summary)
    return {kind.split()[-1] if "collected" in kind else kind: int(count) for count, kind in found}


def run_with_deadline(command: list[str], seconds: float, sink: Any = None) -> tuple[int | None, float]:
    """Run ``command`` from the repository root in a process group of its own (compile workers
    included); past ``seconds`` stop the group. Returns (exit status, None when stopped; seconds)."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # progress lines as they happen
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink, start_new_session=True)
    try:
        code: int | None = process.wait(timeout=max(seconds, 0))
    except subprocess.TimeoutExpired:
        stop_group(process)
        code = None
    return code, time.monotonic() - started


def stop_group(process: subprocess.Popen[Any]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_AFTER_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# --- one engine stage, in its own process --------------------------------------------------------


def run_stage(args: argparse.Namespace) -> int:
    """The child's side: build one engine's pipeline and time its rows, saving after each."""
    stage = STAGES[args.stage]
    record = StageRecord(stage_file(args.out, args.stage), args.stage, stage, args.dry_run)
    deadline = time.monotonic() + args.budget
    progress = Progress(args.stage, time.monotonic())
    try:
        with tempfile.TemporaryDirectory(prefix="plantain-gpu-check-") as data_dir:
            StageBench(args, stage, record, progress, deadline, Path(data_dir)).run()
    except Exception as exc:
        record.data |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        record.save()
        raise
    return 0


class StageRecord:
    """The stage's JSON file, rewritten (atomically) after every change: a stage stopped at its
    allotment keeps every row it finished."""

    def __init__(self, path: Path, name: str, stage: Stage, dry_run: bool) -> None:
        self.path = path
        self.data: dict[str, Any] = {"stage": name, "engine": stage.engine, "dry_run": dry_run}
        self.data |= {"status": "running", "started": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": []}
        self.save()

    def add(self, row: dict[str, Any]) -> None:
        self.data["rows"].append(row)
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data)


class StageBench:
    def __init__(
        self,
        args: argparse.Namespace,
        stage: Stage,
        record: StageRecord,
        progress: Progress,
        deadline: float,
        data_dir: Path,
    ) -> None:
        import torch
        from fullsize_models import CASES

        from plantain.benchmark.machine import machine_info
        from plantain.settings import Settings

        self.dry = args.dry_run
        self.device = torch.device("cpu" if self.dry else "cuda")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("the GPU check needs a CUDA GPU (or --dry-run)")
        assert stage.engine is not None
        self.case = CASES[stage.engine]
        self.stage, self.record, self.progress, self.deadline = stage, record, progress, deadline
        self.repeats = args.repeats or (2 if self.dry else stage.repeats)
        self.steps = args.qwen_steps if stage.steps else None
        self.settings = Settings(
            data_dir=data_dir,
            device=str(self.device),
            torch_compile="off",
            cuda_graphs=False,  # the rows are eager and regional compilation, whatever the environment
            warmup_sizes=[],
            quantization="none",
        )
        self.typical_s = 0.0  # the last row's median: what the next run will roughly take
        self.images: dict[str, list[Image.Image]] = {}
        self.record.data["machine"] = machine_info()

    def run(self) -> None:
        self.build()
        for variant in self.stage.variants:
            self.row(variant)
        failed = [row["label"] for row in self.rows if "failed" in row]
        cut = any(row.get("stopped") or row.get("skipped", "").startswith("budget") for row in self.rows)
        if failed:
            self.record.data |= {"status": "failed", "reason": f"rows failed: {', '.join(failed)}"}
        elif cut:
            self.record.data |= {"status": "stopped", "reason": "the budget cut rows short"}
        else:
            self.record.data["status"] = "done"
        self.record.save()

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.record.data["rows"]
        return rows

    # --- the pipeline and the jobs -----------------------------------------------------------

    def build(self) -> None:
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.set_verbosity_error()  # casts and ignored arguments of random pipelines
        transformers_logging.set_verbosity_error()
        started = time.monotonic()
        dtype = torch.float32 if self.dry else torch.bfloat16
        with torch.device(self.device):  # weights made where they run, in their dtype: no copy
            torch.set_default_dtype(dtype)
            try:
                self.pipeline = self.case.build(self.dry).to(self.device, dtype)
            finally:
                torch.set_default_dtype(torch.float32)
        self.pipeline.set_progress_bar_config(disable=True)
        sync(self.device)
        seconds = time.monotonic() - started
        params = {
            name: sum(p.numel() for p in getattr(self.pipeline, name).parameters())
            for name in ("transformer", "text_encoder", "vae")
        }
        self.planner = self.make_engine()  # plans the jobs and holds the preset; never runs
        if self.dry and self.case.edit:
            import diffusers.pipelines.qwenimage.pipeline_qwenimage_edit_plus as edit_plus

            edit_plus.VAE_IMAGE_SIZE = DRY_SIZE * DRY_SIZE  # the input's latents at the output's size
        self.jobs = [self.job(index) for index in range(self.repeats + 1)]  # jobs[0]: untimed
        first = self.jobs[0]
        self.record.data |= {
            "build_s": round(seconds, 1),
            "parameters": params,
            "dtype": str(dtype).removeprefix("torch."),
            "size": f"{first.width}x{first.height}",
            "steps": first.steps,
            "preset_steps": self.planner.preset.steps,
        }
        self.record.save()
        weights = ", ".join(f"{name} {count(number)}" for name, number in params.items())
        self.progress.say(f"built {self.case.engine} with random weights in {seconds:.1f} s ({weights})")

    def make_engine(self, **settings: Any) -> Engine:
        """A fresh engine (empty text-encoder cache); given ``settings``, their fast path is applied
        to the shared pipeline, which the engine then runs."""
        import torch

        from plantain.engines.fastpath import apply_fast_path

        engine = self.case.create(self.case.engine, self.settings.model_copy(update=settings))
        if self.dry and self.case.dry_kwargs:  # the tiny text encoder has 3 layers, not 36
            call_kwargs = {**engine.preset.call_kwargs, **self.case.dry_kwargs}
            engine.preset = replace(engine.preset, call_kwargs=call_kwargs)
        if settings:
            if self.dry and settings.get("torch_compile") != "off":
                eager_compiler()
            torch._dynamo.reset()  # the last row's compiled blocks must not serve this plan
            engine.fast_path = apply_fast_path(self.pipeline, engine.plan_fast_path(), engine=engine.name)
            engine._pipeline = self.pipeline  # loaded: run() will not load a checkpoint
        return engine

    def job(self, index: int) -> EngineJob:
        """Run ``index``'s job: its own prompt (of the same length), seed and, for an edit, input."""
        from PIL import Image

        from plantain.testing import make_input
        from plantain.types import ImageRequest

        side = DRY_SIZE if self.dry else 1024
        # A distinct input is a distinct cache key for the edit's negative prompt, as in service.
        gray = (64 + index % 128, 64 + index // 128 % 128, 64)
        request = ImageRequest.create(
            prompt=f"{PROMPT}, take {index:03d}",
            aspect_ratio="1:1",
            size="1K",
            seed=SEED + index,
            images=[make_input(side, side, gray)] if self.case.edit else [],
        )
        inputs = [Image.new("RGB", (side, side), gray)] if self.case.edit else []
        job = self.planner.plan(request, inputs, SEED + index)
        job = replace(job, steps=self.steps or job.steps)
        return replace(job, width=side, height=side) if self.dry else job

    # --- rows ----------------------------------------------------------------------------------

    def row(self, variant: str) -> None:
        """Time one row and save it; one that cannot run is saved as skipped or failed, saying why."""
        import torch

        from plantain.errors import ConfigurationError

        compiled = variant in ("compile", "fp8")
        need = (0 if self.dry or not compiled else self.stage.compile_s) + 3 * self.typical_s
        if self.time_left() < need:
            self.skip(variant, f"budget: {self.time_left():.1f} s left, the row needs about {need:.1f} s")
            return
        try:
            row = self.timed_row(variant)
        except ConfigurationError as exc:  # fp8 without torchao or a capable GPU
            self.skip(variant, exc.message)
            return
        except Exception as exc:  # out of memory, a graph break: the finding; the next rows still run
            traceback.print_exc()
            row = {"variant": variant, "label": LABELS[variant], "failed": f"{type(exc).__name__}: {exc}"}
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.record.add(row)
        self.progress.say(f"{LABELS[variant]}: {summary_line(row)}")

    def timed_row(self, variant: str) -> dict[str, Any]:
        if variant == "stock":
            return self.measure(variant, self.stock, self.jobs)
        engine = self.make_engine(**ROW_SETTINGS[variant])
        row = self.measure(variant, plantain_run(engine), self.row_jobs(variant))
        described = engine.describe()
        return row | {
            "text_encoder_cache": described["text_embedding_cache"],
            "fast_path": described["fast_path"],
        }

    def row_jobs(self, variant: str) -> list[EngineJob]:
        if variant != "cached":
            return self.jobs
        first = self.jobs[0]  # the same prompt and input every time, other seeds
        return [
            replace(job, prompt=first.prompt, images=first.images, inputs_digest=first.inputs_digest)
            for job in self.jobs
        ]

    def skip(self, variant: str, why: str) -> None:
        self.record.add({"variant": variant, "label": LABELS[variant], "skipped": why})
        self.progress.say(f"{LABELS[variant]}: skipped: {why}")

    def measure(
        self, variant: str, run: Callable[[EngineJob, Clock], Image.Image], jobs: Sequence[EngineJob]
    ) -> dict[str, Any]:
        """One untimed run, then timed runs until the repeats are done or the budget says stop."""
        import torch

        label = LABELS[variant]
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        warm = Clock(self.device)
        run(replace(jobs[0], steps=min(2, jobs[0].steps)), warm)  # shapes do not depend on steps
        warm.mark()
        self.progress.say(f"{label}: untimed run (2 steps) {warm.total():.1f} s")
        seconds: list[float] = []
        gaps: list[float] = []
        images: list[Image.Image] = []
        stopped = None
        for index, job in enumerate(jobs[1:], 1):
            expected = max(seconds) if seconds else self.typical_s or warm.total()
            if self.time_left() < 1.5 * expected:
                stopped = f"budget: {len(seconds)} of {len(jobs) - 1} runs"
                break
            clock = Clock(self.device)
            images.append(run(job, clock))
            clock.mark()
            seconds.append(clock.total())
            gaps += clock.step_gaps()
            self.progress.say(f"{label}: run {index}/{len(jobs) - 1}: {seconds[-1]:.3f} s")
        self.images[variant] = images
        return self.figures(variant, seconds, gaps, warm.total(), stopped)

    def figures(
        self, variant: str, seconds: list[float], gaps: list[float], warmup_s: float, stopped: str | None
    ) -> dict[str, Any]:
        import torch

        row: dict[str, Any] = {"variant": variant, "label": LABELS[variant], "runs": len(seconds)}
        row |= {
            "asked": self.repeats,
            "warmup_s": round(warmup_s, 6),
            "seconds": [round(s, 6) for s in seconds],
        }
        if self.device.type == "cuda":
            row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated(self.device) / GIB, 2)
        if stopped:
            row["stopped"] = stopped
        if not seconds:
            return row
        p50 = statistics.median(seconds)
        self.typical_s = p50
        row |= {"p50": round(p50, 6), "min": round(min(seconds), 6), "max": round(max(seconds), 6)}
        stock = next((r for r in self.rows if r["variant"] == "stock" and "p50" in r), None)
        if stock is not None:
            row["speedup_vs_stock"] = round(stock["p50"] / p50, 3)
        if gaps:
            step = statistics.median(gaps)
            row["step_s"] = round(step, 6)
            preset, steps = self.record.data["preset_steps"], self.record.data["steps"]
            if preset != steps:  # the reduced run's other costs, plus the preset's steps
                row["at_preset_steps_s"] = round(p50 + (preset - steps) * step, 3)
        reference = REFERENCE.get(variant)
        if reference and self.images.get(reference):
            row["deviation"] = {"against": LABELS[reference]}
            row["deviation"] |= deviation(self.images[reference], self.images[variant])
        return row

    def stock(self, job: EngineJob, clock: Clock) -> Image.Image:
        """``pipeline(prompt=…)`` as the diffusers docs show it (the same seeds' generators as
        Plantain's, so that both make the same image)."""
        from plantain.engines.base import seed_generators
        from plantain.engines.qwen_image import NEGATIVE_PROMPT

        kwargs: dict[str, Any] = {"guidance_scale": job.guidance}
        if self.case.edit:  # true CFG with the model card's negative prompt, as Plantain runs it
            kwargs = {"true_cfg_scale": job.guidance, "negative_prompt": NEGATIVE_PROMPT}
            kwargs["image"] = list(job.images)
        output = self.pipeline(
            prompt=job.prompt,
            height=job.height,
            width=job.width,
            num_inference_steps=job.steps,
            generator=seed_generators([job]),
            output_type="pil",
            callback_on_step_end=clock.callback,
            **self.planner.preset.call_kwargs,
            **kwargs,
        )
        image: Image.Image = output.images[0]
        return image

    def time_left(self) -> float:
        return self.deadline - time.monotonic()


def plantain_run(engine: Engine) -> Callable[[EngineJob, Clock], Image.Image]:
    def run(job: EngineJob, clock: Clock) -> Image.Image:
        return engine.run([job], on_step=clock.on_step)[0][0]

    return run


def eager_compiler() -> None:
    """--dry-run: torch.compile traces with dynamo (fullgraph, so a graph break still fails) but
    runs the traced graphs as they are; Inductor's code generation takes minutes on a CPU."""
    import functools

    import torch

    if not isinstance(torch.compile, functools.partial):
        torch.compile = functools.partial(torch.compile, backend="eager")


class Clock:
    """Marks a run's start, each step's end and its end; each mark first waits for the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: list[float] = []
        self.mark()

    def mark(self) -> None:
        sync(self.device)
        self.marks.append(time.perf_counter())

    def on_step(self, done: int, total: int) -> None:
        self.mark()

    def callback(self, pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        self.mark()
        return {}

    def total(self) -> float:
        return self.marks[-1] - self.marks[0]

    def step_gaps(self) -> list[float]:
        """Seconds between consecutive step ends: a step alone (the first holds the text encoder)."""
        steps = self.marks[1:-1]
        return [later - earlier for earlier, later in itertools.pairwise(steps)]


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def deviation(first: Sequence[Image.Image], second: Sequence[Image.Image]) -> dict[str, float]:
    """Mean absolute difference (0-255) and PSNR over the image pairs both rows made."""
    import numpy as np

    pairs = list(zip(first, second, strict=False))
    a = np.stack([np.asarray(image, dtype=np.float64) for image, _ in pairs])
    b = np.stack([np.asarray(image, dtype=np.float64) for _, image in pairs])
    mse = float(np.mean((a - b) ** 2))
    psnr = float("inf") if mse == 0 else 10 * float(np.log10(255**2 / mse))
    return {
        "mean_abs": round(float(np.mean(np.abs(a - b))), 3),
        "psnr_db": round(psnr, 2),
        "pairs": len(pairs),
    }


# --- the report ----------------------------------------------------------------------------------


def write_report(out: Path) -> None:
    stages = load_stages(out)
    machine = next((stage["machine"] for stage in stages if stage.get("machine")), None)
    report = {"written": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine, "stages": stages}
    write_json(out / "gpu-check.json", report)
    (out / "gpu-check.md").write_text(render_markdown(stages))


def load_stages(out: Path) -> list[dict[str, Any]]:
    return [record for name in STAGES if (record := load_json(stage_file(out, name)))]


COLUMNS = (
    "stage", "variant", "size", "steps", "runs", "p50 s", "min–max s", "× stock", "s/step",
    "at preset steps (est.) s", "untimed 2-step run s", "peak GPU GiB", "deviation (mean abs, PSNR)",
    "text encoder", "notes",
)  # fmt: skip


def render_markdown(stages: Sequence[dict[str, Any]]) -> str:
    machine = next((stage["machine"] for stage in stages if stage.get("machine")), None)
    lines = ["# Plantain GPU check", ""]
    if machine:
        from plantain.benchmark.machine import describe

        lines += [f"Machine: {describe(machine)}. Written {time.strftime('%Y-%m-%d %H:%M')}.", ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for stage in stages:
        for row in stage.get("rows", []):
            lines.append("| " + " | ".join(markdown_cells(stage, row)) + " |")
    lines.append("")
    lines += [f"- {stage_line(stage)}" for stage in stages]
    return "\n".join(lines) + "\n"


def markdown_cells(stage: dict[str, Any], row: dict[str, Any]) -> list[str]:
    def number(key: str, digits: int = 3) -> str:
        value = row.get(key)
        return "" if value is None else f"{value:.{digits}f}"

    deviation = row.get("deviation")
    against = ""
    if deviation:
        against = f"{deviation['mean_abs']:.2f}, {deviation['psnr_db']:.1f} dB vs {deviation['against']}"
    cache = row.get("text_encoder_cache")
    encoder = "runs every time" if row["variant"] == "stock" else ""
    if cache:
        encoder = f"cache hits {cache['hits']}, misses {cache['misses']}"
    spread = f"{row['min']:.3f}–{row['max']:.3f}" if "min" in row else ""
    notes = next((f"{key}: {row[key]}" for key in ("skipped", "failed") if key in row), "")
    notes = notes or row.get("stopped", "")
    peak = number("peak_gpu_gib", 1) or ("n/a (CPU)" if "runs" in row else "")
    return [
        stage["stage"], row["label"], stage.get("size", ""), str(stage.get("steps", "")),
        str(row.get("runs", 0)), number("p50"), spread, number("speedup_vs_stock", 2), number("step_s"),
        number("at_preset_steps_s", 1), number("warmup_s", 1), peak, against, encoder, notes,
    ]  # fmt: skip


def stage_line(stage: dict[str, Any]) -> str:
    what = stage.get("engine") or "pytest -m gpu"
    parts = [f"{stage['stage']} ({what}): {stage.get('status', '?')}{reason(stage)}"]
    if "wall_s" in stage:
        parts.append(f"{stage['wall_s']:.0f} s of {stage.get('allotment_s', 0):.0f} s allotted")
    if "build_s" in stage:
        params = ", ".join(f"{key} {count(value)}" for key, value in stage["parameters"].items())
        parts.append(
            f"random {stage['dtype']} weights built in {stage['build_s']:.1f} s ({params} parameters)"
        )
    fast_path = next((row["fast_path"] for row in stage.get("rows", []) if row.get("fast_path")), None)
    if fast_path:  # which kernel the Plantain rows ran: it explains much of the ratio
        parts.append(f"attention {fast_path.get('attention_kernel') or fast_path['attention_backend']}")
    if stage.get("summary"):
        parts.append(stage["summary"] + (" (dry run: collected, not run)" if stage.get("dry_run") else ""))
    if stage.get("started"):
        parts.append(f"started {stage['started']}")
    return "; ".join(parts)


def count(value: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def reason(record: dict[str, Any]) -> str:
    return f" ({record['reason']})" if record.get("reason") else ""


def summary_line(row: dict[str, Any]) -> str:
    if "p50" not in row:
        return str(row.get("failed") or row.get("stopped") or "no timed run")
    text = f"p50 {row['p50']:.3f} s (min {row['min']:.3f}, max {row['max']:.3f}) over {row['runs']} runs"
    if "speedup_vs_stock" in row:
        text += f", {row['speedup_vs_stock']:.2f}x stock"
    if "peak_gpu_gib" in row:
        text += f", peak {row['peak_gpu_gib']:.1f} GiB"
    return text


# --- small helpers -------------------------------------------------------------------------------


class Progress:
    def __init__(self, name: str, started: float) -> None:
        self.name = name
        self.started = started

    def say(self, message: str) -> None:
        print(f"[{self.name} {time.monotonic() - self.started:6.1f} s] {message}", flush=True)


def stage_file(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def load_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file and a rename: a stage stopped mid-write leaves the last one."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=2, default=str))
    temporary.replace(path)


def command_line() -> str:
    return " ".join(["bench/gpu_check.sh", *sys.argv[1:]])


def stage_names(values: Iterable[str]) -> list[str]:
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(STAGES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/gpu_check.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stages = ", ".join(STAGES)
    parser.add_argument("--only", action="append", metavar="STAGES", help=f"comma-separated: {stages}")
    parser.add_argument("--budget", type=float, default=510.0, help="total seconds (default 510)")
    parser.add_argument(
        "--out", type=Path, default=Path("gpu-check-out"), help="report folder (default gpu-check-out)"
    )
    parser.add_argument("--repeats", type=int, help="timed runs a row (klein, zimage 5; qwen 3; dry run 2)")
    parser.add_argument("--qwen-steps", type=int, help="Qwen-Image-Edit's steps (8; dry run 3; preset 40)")
    parser.add_argument("--dry-run", action="store_true", help="tiny widths at 128x128 on the CPU")
    parser.add_argument("--stage", choices=[n for n, s in STAGES.items() if s.engine], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.only = stage_names(args.only or STAGES)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.qwen_steps is None:
        args.qwen_steps = 3 if args.dry_run else STAGES["qwen"].steps
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return run_stage(args) if args.stage else check(args)


if __name__ == "__main__":
    sys.exit(main())
