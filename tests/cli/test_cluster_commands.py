"""The cluster's commands as an operator meets them (docs/deploy.md): ``migrate-db`` moves an
embedded data directory into PostgreSQL; ``worker`` and ``serve --no-worker`` refuse to start
without the shared database they need."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from plantain.cli.main import cli
from plantain.storage.tasks import NewTask, TaskStore
from plantain.types import ImageRequest


def embedded_with_tasks(data_dir: Path, count: int) -> list[str]:
    store = TaskStore(data_dir, retention_seconds=3600)
    request = ImageRequest.create(prompt="a cube", engine="tiny")
    new = NewTask(request=request, model="tiny", engine="tiny", source="tasks")
    made = [store.create(new)[0].id for _ in range(count)]
    store.close()
    return made


def test_migrate_db_moves_the_queue_and_a_server_on_postgresql_takes_it_up(
    tmp_path: Path, postgres_url: str
) -> None:
    made = embedded_with_tasks(tmp_path / "embedded", 3)
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "embedded"), "migrate-db", "--to", postgres_url]
    )
    assert result.exit_code == 0, result.output
    assert "tasks: 3" in result.stdout and "task_events: 3" in result.stdout
    shared = TaskStore(tmp_path / "elsewhere", retention_seconds=3600, database_url=postgres_url)
    try:
        assert [shared.get(task_id).status for task_id in made] == ["queued"] * 3
        claimed = shared.runs.claim_next(("tiny",))
        assert claimed is not None and claimed[0].id == made[0]  # the same order
    finally:
        shared.close()


def test_migrate_db_refuses_a_database_that_already_holds_tasks(tmp_path: Path, postgres_url: str) -> None:
    embedded_with_tasks(tmp_path / "first", 1)
    embedded_with_tasks(tmp_path / "second", 2)
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["--data-dir", str(tmp_path / "first"), "migrate-db", "--to", postgres_url]
        ).exit_code
        == 0
    )
    again = runner.invoke(cli, ["--data-dir", str(tmp_path / "second"), "migrate-db", "--to", postgres_url])
    assert again.exit_code == 1
    assert "tasks" in again.output and "plantain_" in again.output  # names what it found and where
    assert "not empty" in again.output and "1 in tasks" in again.output


def test_a_worker_without_database_url_says_what_it_needs(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "worker", "--engine", "tiny"])
    assert result.exit_code == 1
    assert "database_url" in result.output and "plantain serve" in result.output


def test_a_front_door_alone_without_database_url_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "serve", "--no-worker", "--engine", "tiny"]
    )
    assert result.exit_code == 1
    assert "database_url" in result.output and "--no-worker" in result.output
