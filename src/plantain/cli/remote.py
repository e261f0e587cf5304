"""Commands that talk to a running server through :mod:`plantain.client`: ``plantain run``,
``plantain tasks list|show|wait|cancel``, and ``generate``/``edit --server`` (:func:`make_remote`).

cli.py registers them on its group, which turns every PlantainError into one line on stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import Any

import click

from plantain.cli.outputs import MEDIA_TYPE_FORMATS, output_paths, pick_format
from plantain.cli.progress import StepBar
from plantain.client import Client, Event, Task, finished_task
from plantain.imaging.sizes import ASPECT_RATIOS, TIERS
from plantain.types import TASK_STATUSES

SERVER_HELP = "The Plantain server (default: http://127.0.0.1:8000)."
API_KEY_HELP = "API key for the server, sent as a bearer token."


def server_options(server_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--server URL`` and ``--api-key KEY``, each also read from its PLANTAIN_ variable."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        command = click.option(
            "--api-key", envvar="PLANTAIN_API_KEY", show_envvar=True, metavar="KEY", help=API_KEY_HELP
        )(command)
        return click.option(
            "--server", envvar="PLANTAIN_SERVER", show_envvar=True, metavar="URL", help=server_help
        )(command)

    return decorate


class TaskProgress:
    """A task's events on stderr: its id and queue position as lines, its steps as a bar."""

    def __init__(self, label: str) -> None:
        self.task_id: str | None = None
        self._bar = StepBar(label)

    def show(self, event: Event) -> None:
        self.task_id = event.task_id
        data = event.data
        if event.type == "queued":
            where = f" at position {data['position']}" if data.get("position") else ""
            again = f" again ({data['requeued']})" if data.get("requeued") else ""
            click.echo(f"{event.task_id}: queued{again}{where}", err=True)
        elif event.type == "started" and data.get("attempt", 1) > 1:
            click.echo(f"{event.task_id}: started, attempt {data['attempt']}", err=True)
        elif event.type == "progress":
            self._bar.update(int(data["step"]), int(data["total"]))

    def __enter__(self) -> TaskProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.close()
        if kind is KeyboardInterrupt and self.task_id:  # the server keeps the task: say how to reach it
            click.echo(
                f"\n{self.task_id} is still on the server: 'plantain tasks wait {self.task_id}' "
                f"follows it, 'plantain tasks cancel {self.task_id}' stops it",
                err=True,
            )


def task_input(prompt: str, images: Sequence[bytes | Path], **fields: Any) -> dict[str, Any]:
    """The task API's ``input``: the fields that were given (the server fills in the rest)."""
    given = {name: value for name, value in fields.items() if value is not None}
    return {"prompt": prompt, **({"images": list(images)} if images else {}), **given}


def run_with_progress(client: Client, model: str | None, input: dict[str, Any]) -> Task:
    """Run a task, showing its progress; the succeeded task, or its error raised."""
    with TaskProgress(model or "plantain") as progress:
        task = client.run(model, input, on_event=progress.show)
    click.echo(summary(task), err=True)
    return task


def summary(task: Task) -> str:
    """One line like the local ``generate`` prints: engine, images, size, seed, steps, time."""
    first, output = task.outputs[0], task.output
    steps = f", {output.steps} steps" if output and output.steps is not None else ""
    seconds = f" in {output.seconds:.2f} s" if output and output.seconds is not None else ""
    return (
        f"{task.engine}: {len(task.outputs)} image(s) {first.width}x{first.height}, "
        f"seed {first.seed}{steps}{seconds} (task {task.id})"
    )


def save_outputs(client: Client, task: Task, output: Path | None, output_format: str | None = None) -> None:
    """Download the outputs to ``output`` named as ``generate`` names them; print each path."""
    fmt = output_format or MEDIA_TYPE_FORMATS.get(task.outputs[0].media_type, "png")
    paths = output_paths(output, [image.seed for image in task.outputs], fmt)
    for path, image in zip(paths, task.outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(client.download(image))
        click.echo(str(path))


def make_remote(
    server: str, api_key: str | None, prompt: str, images: Sequence[bytes], options: dict[str, Any]
) -> None:
    """``generate``/``edit --server``: the same request as a task, written out as locally."""
    if options.pop("weights") is not None:
        raise click.ClickException(
            "--weights names a local checkpoint; a server runs its own (drop --weights or --server)"
        )
    output: Path | None = options.pop("output")
    output_format = pick_format(options.pop("output_format"), output)
    model, resolution = options.pop("engine"), options.pop("size")
    fields = {**options, "resolution": resolution, "output_format": output_format}
    with Client(server, api_key=api_key) as client:
        task = run_with_progress(client, model, task_input(prompt, images, **fields))
        save_outputs(client, task, output, output_format)


# --- plantain run ------------------------------------------------------------------------------


@click.command(short_help="Run PROMPT on a Plantain server; save the images.")
@click.argument("prompt")
@click.option("--model", "-m", help="Model or engine to run (default: the server's default engine).")
@click.option(
    "--image",
    "-i",
    "images",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Input image to edit (repeat for several: fusion).",
)
@click.option(
    "--aspect-ratio", "-a", help=f"One of {', '.join(ASPECT_RATIOS)} (default: the input's, or 1:1)."
)
@click.option("--resolution", "-s", help=f"Size tier: {', '.join(TIERS)} (default: 1K).")
@click.option("-n", "num_images", type=int, help="Images to make (1-10; default 1).")
@click.option("--seed", type=int, help="Seed for image 1 (image k uses seed+k-1); random if unset.")
@click.option("--format", "-f", "output_format", help="png, jpeg, webp or avif (default: from -o, else png).")
@click.option("--quality", "output_quality", type=int, help="JPEG/WebP/AVIF quality, 0-100 (PNG: lossless).")
@click.option(
    "--background",
    type=click.Choice(["auto", "opaque", "transparent"], case_sensitive=False),
    metavar="TEXT",
    help="auto, opaque, or transparent: a plain background keyed out (png, webp, avif).",
)
@click.option("--steps", type=int, help="Denoising steps (default: the checkpoint's preset).")
@click.option("--guidance", type=float, help="Guidance scale (default: the checkpoint's preset).")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Output file or directory (default: plantain-SEED.png here).",
)
@click.option("--no-wait", is_flag=True, help="Print the task id once it is queued, and exit.")
@server_options(SERVER_HELP)
def run(
    prompt: str,
    model: str | None,
    images: tuple[Path, ...],
    output: Path | None,
    no_wait: bool,
    server: str | None,
    api_key: str | None,
    **fields: Any,
) -> None:
    """Run PROMPT as a task on a Plantain server and save its images.

    Shows the task's queue position and a progress bar over its steps, then downloads the
    images and prints their paths (named as 'generate' names them). With --no-wait it prints
    the task id and leaves the task to 'plantain tasks wait'.
    """
    output_format = pick_format(fields.pop("output_format"), output)
    input = task_input(prompt, images, output_format=output_format, **fields)
    with Client(server, api_key=api_key) as client:
        if no_wait:
            task = client.submit(model, input)
            click.echo(task.id)
            click.echo(f"{task.id}: {task.status}; follow it with 'plantain tasks wait {task.id}'", err=True)
            return
        save_outputs(client, run_with_progress(client, model, input), output, output_format)


# --- plantain tasks ----------------------------------------------------------------------------


@click.group()
def tasks() -> None:
    """List, show, wait for and cancel tasks on a Plantain server."""


@tasks.command(name="list")
@click.option("--status", type=click.Choice(TASK_STATUSES), help="Only tasks in this state.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Tasks to show, newest first."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@server_options(SERVER_HELP)
def list_tasks(
    status: str | None, limit: int, as_json: bool, server: str | None, api_key: str | None
) -> None:
    """List tasks, newest first."""
    with Client(server, api_key=api_key) as client:
        for task in islice(client.iter_tasks(status, page_size=min(limit, 100)), limit):
            click.echo(task.model_dump_json() if as_json else _row(task))


@tasks.command()
@click.argument("task_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
@server_options(SERVER_HELP)
def show(task_id: str, as_json: bool, server: str | None, api_key: str | None) -> None:
    """Show task ID: its state, request, outputs or error."""
    with Client(server, api_key=api_key) as client:
        task = client.get(task_id)
    if as_json:
        click.echo(json.dumps(task.model_dump(mode="json"), indent=2))
        return
    for label, value in _details(task):
        click.echo(f"{label + ':':<10} {value}")


@tasks.command(short_help="Wait for task ID; print or save its images.")
@click.argument("task_id", metavar="ID")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Download the images to this file or directory (without it: print their URLs).",
)
@server_options(SERVER_HELP)
def wait(task_id: str, output: Path | None, server: str | None, api_key: str | None) -> None:
    """Follow task ID to its end with a progress bar, then print its image URLs, or save the
    images with -o. A failed or cancelled task exits with status 1."""
    with Client(server, api_key=api_key) as client:
        with TaskProgress(task_id) as progress:
            for event in client.stream(task_id):
                progress.show(event)
        task = finished_task(client.get(task_id))
        click.echo(summary(task), err=True)
        if output is None:
            for image in task.outputs:
                click.echo(image.url)
            return
        save_outputs(client, task, output)


@tasks.command(short_help="Cancel task ID.")
@click.argument("task_id", metavar="ID")
@server_options(SERVER_HELP)
def cancel(task_id: str, server: str | None, api_key: str | None) -> None:
    """Cancel task ID: a queued task ends at once, a running one at its next step, an ended
    one is left as it is."""
    with Client(server, api_key=api_key) as client:
        before = client.get(task_id)  # the cancel answer alone cannot tell "was already cancelled"
        task = before if before.finished else client.cancel(task_id)
    if before.finished or task.status not in {"running", "cancelled"}:
        click.echo(f"{task.id}: already {task.status}, nothing to cancel")
    elif task.status == "running":
        click.echo(f"{task.id}: cancelling (it stops at its next step)")
    else:
        click.echo(f"{task.id}: cancelled")


def _row(task: Task) -> str:
    created = task.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if task.created_at else "-"
    return f"{task.id}  {task.status:<9}  {created}  {task.model or '-'}  {_outcome(task)}"


def _outcome(task: Task) -> str:
    if task.error is not None:
        return f"{task.error.code}: {task.error.message}"
    if task.outputs:
        return f"{len(task.outputs)} image(s) {task.outputs[0].width}x{task.outputs[0].height}"
    return f"position {task.queue_position}" if task.queue_position else ""


def _details(task: Task) -> list[tuple[str, str]]:
    rows = [
        ("task", f"{task.id} ({task.status})"),
        ("model", f"{task.model} (engine {task.engine})"),
        ("prompt", str(task.input.get("prompt", ""))),
        ("created", str(task.created_at)),
        ("attempts", str(task.attempts)),
    ]
    if task.queue_position:
        rows.append(("position", str(task.queue_position)))
    if task.completed_at is not None:
        rows.append(("ended", str(task.completed_at)))
    rows += [
        ("output", f"{image.url} {image.width}x{image.height} seed {image.seed}") for image in task.outputs
    ]
    if task.error is not None:
        rows.append(("error", f"{task.error.code}: {task.error.message}"))
    return rows
