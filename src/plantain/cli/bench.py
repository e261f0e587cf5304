"""``plantain bench``: latency, throughput and memory of a workload, beside stock diffusers.

The command only parses and checks; :mod:`plantain.benchmark` does the work, imported when the
command runs (so ``plantain --help`` loads no torch).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from plantain.benchmark.session import Mode, Plan
from plantain.benchmark.workload import FORMATS, Workload
from plantain.errors import InvalidRequestError
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS
from plantain.settings import Settings


@click.command()
@click.option("--engine", "-e", help="Engine (or, with --server, model) to run; default: the default engine.")
@click.option(
    "--tier", "--size", "-s", "tier", default="1K", show_default=True, help=f"Size tier: {', '.join(TIERS)}."
)
@click.option(
    "--aspect-ratio", "-a", default="1:1", show_default=True, help=f"One of {', '.join(ASPECT_RATIOS)}."
)
@click.option("--steps", type=int, help="Denoising steps (default: the checkpoint's preset).")
@click.option("--images", "-n", type=int, default=1, show_default=True, help="Images per request (1-10).")
@click.option(
    "--concurrency", "-c", type=int, default=1, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--requests",
    type=int,
    metavar="N",
    help="Stop after N measured requests (default: 4 per concurrent slot).",
)
@click.option("--duration", type=float, metavar="SECONDS", help="Or stop starting requests after SECONDS.")
@click.option(
    "--warmup",
    type=int,
    metavar="N",
    help="Requests run first, not measured (default: one per concurrent slot).",
)
@click.option("--repeats", "-r", type=int, default=3, show_default=True, help="Runs of the whole workload.")
@click.option("--prompt", help="Prompt (each request adds ', take N' unless --repeat-prompt).")
@click.option("--repeat-prompt", is_flag=True, help="Send the very same prompt every time.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of request 0 (request i: seed+i*n)."
)
@click.option(
    "--format",
    "-f",
    "output_format",
    default="png",
    show_default=True,
    help=f"Output format: {', '.join(FORMATS)}.",
)
@click.option("--input-image", type=click.Path(path_type=Path), help="Benchmark edits of this image.")
@click.option("--edit", is_flag=True, help="Benchmark edits of a made-up picture at the output size.")
@click.option("--weights", type=click.Path(path_type=Path), help="Local checkpoint directory for the engine.")
@click.option(
    "--server", metavar="URL", help="Benchmark the Plantain server at URL instead of one started here."
)
@click.option(
    "--api-key", envvar="PLANTAIN_API_KEY", show_envvar=True, metavar="KEY", help="API key for --server."
)
@click.option("--engine-only", is_flag=True, help="Call the engine in this process, without HTTP or queue.")
@click.option(
    "--baseline/--no-baseline",
    default=None,
    help="Also run stock diffusers on the same checkpoint (default: on, except with --server).",
)
@click.option("--json", "json_path", metavar="PATH", help="Write every figure as JSON to PATH ('-': stdout).")
@click.pass_context
def bench(ctx: click.Context, /, **options: Any) -> None:
    """Measure latency, images/s, queue wait and memory of a workload.

    By default a server is started in this process on 127.0.0.1 and the same workload then runs
    on stock diffusers (from_pretrained + __call__) with the same checkpoint; the ratio is
    printed. PLANTAIN_* settings apply to that server. See docs/performance.md.
    """
    from plantain.benchmark.report import document, render
    from plantain.benchmark.session import run_benchmark

    settings: Settings = ctx.obj
    plan = _plan(options)
    workload = _workload(settings, options)
    if options["weights"] is not None:
        settings = settings.model_copy(
            update={"weights": {**settings.weights, workload.engine: options["weights"]}}
        )
    json_path: str | None = options["json_path"]
    _check_json_path(json_path)
    outcome = run_benchmark(workload, settings, plan, say=lambda line: click.echo(line, err=True))
    click.echo(render(outcome), err=json_path == "-")
    if json_path is not None:
        text = json.dumps(document(outcome, settings, command_line(ctx)), indent=2)
        if json_path == "-":
            click.echo(text)
        else:
            Path(json_path).write_text(text + "\n")


def _check_json_path(json_path: str | None) -> None:
    """Refuse an unwritable record before the run, not after it."""
    if json_path is None or json_path == "-":
        return
    folder = Path(json_path).resolve().parent
    if not folder.is_dir():
        raise InvalidRequestError(f"--json: no such directory: {folder}", field="--json")


def _plan(options: dict[str, Any]) -> Plan:
    server, engine_only = options["server"], options["engine_only"]
    if server and engine_only:
        raise InvalidRequestError(
            "--server and --engine-only are two targets; give one of them", field="--engine-only"
        )
    mode: Mode = "server" if server else "engine-only" if engine_only else "in-process"
    baseline = options["baseline"] if options["baseline"] is not None else not server
    return Plan(mode=mode, server=server, api_key=options["api_key"], baseline=baseline)


def _workload(settings: Settings, options: dict[str, Any]) -> Workload:
    names = (
        "tier", "aspect_ratio", "steps", "images", "concurrency", "requests", "duration", "warmup",
        "repeats", "prompt", "repeat_prompt", "seed", "output_format", "input_image", "edit",
    )  # fmt: skip
    return Workload.create(
        engine=options["engine"] or settings.default_engine, **{name: options[name] for name in names}
    )


def command_line(ctx: click.Context) -> str:
    """The command that repeats this run, for the records: the options given on the command line,
    each by its long name (an API key shown as ``***``), whatever program parsed them."""
    root = ctx.find_root()
    words = ["plantain", *_given_options(root), ctx.info_name or "bench", *_given_options(ctx)]
    return shlex.join(words)


def _given_options(ctx: click.Context) -> list[str]:
    words: list[str] = []
    for param in ctx.command.params:
        name = param.name
        if not isinstance(param, click.Option) or name is None:
            continue
        if ctx.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        words += _option_words(param, ctx.params[name])
    return words


def _option_words(option: click.Option, value: Any) -> list[str]:
    longest = max(option.opts, key=len)
    if option.is_flag and option.secondary_opts:  # --baseline/--no-baseline
        return [longest if value else max(option.secondary_opts, key=len)]
    if option.is_flag:
        return [longest] if value else []
    return [longest, "***" if option.name == "api_key" else str(value)]
