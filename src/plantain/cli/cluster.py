"""The commands of scale-out (docs/deploy.md): ``plantain worker`` runs tasks from the shared
store; ``plantain migrate-db`` moves an embedded data directory's tasks into PostgreSQL."""

from __future__ import annotations

import signal
import threading

import click

from plantain.settings import Settings


@click.command("worker")
@click.option(
    "--engine",
    "-e",
    "engines",
    multiple=True,
    required=True,
    help="Engine whose tasks this worker runs (repeat for several); workers of one engine share its queue.",
)
@click.option("--device", help="Torch device for the engines, e.g. cuda:1 (one worker per GPU).")
@click.pass_obj
def worker(settings: Settings, engines: tuple[str, ...], device: str | None) -> None:
    """Run tasks from the shared store (database_url) until SIGTERM, then drain."""
    from plantain.cluster.worker import WorkerService
    from plantain.engines.registry import EngineRegistry
    from plantain.server.app import log_to_stderr

    if device is not None:
        settings = settings.model_copy(update={"device": device})
    log_to_stderr(settings)
    service = WorkerService(settings, engines, EngineRegistry(settings))
    signals = 0

    def on_signal(number: int, frame: object) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            click.echo("draining: the running batch may finish, then the worker exits", err=True)
            threading.Thread(target=service.drain, name="plantain-drain", daemon=True).start()
        else:
            service.kill_switch()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    click.echo(f"worker running {', '.join(engines)} from the shared store", err=True)
    service.stopped.wait()


@click.command("migrate-db")
@click.option(
    "--to",
    "database_url",
    required=True,
    metavar="postgresql://…",
    help="The PostgreSQL database to fill; it must have no tasks yet (it is migrated first).",
)
@click.pass_obj
def migrate_db(settings: Settings, database_url: str) -> None:
    """Copy this data directory's tasks, results, events, webhooks, usage and watermark serials
    into an empty PostgreSQL database, in one transaction. Stop the server first; then serve
    with database_url set to the same URL. Output files stay where they are."""
    from plantain.storage.db import open_postgres
    from plantain.storage.transfer import copy_embedded

    target = open_postgres(database_url)
    try:
        counts = copy_embedded(settings.data_dir, target)
    finally:
        target.close()
    for table, rows in counts.items():
        click.echo(f"{table}: {rows}")
    click.echo(f"copied {counts['tasks']} task(s) to {target.description}", err=True)
