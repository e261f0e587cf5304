"""The plantain commands that talk to a server (run, tasks, generate/edit --server), as typed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from tests.cli.conftest import KEY, Plantain

from plantain.cli.main import cli
from plantain.client import Client
from plantain.testing import free_port, make_input


@pytest.fixture
def client(base: str) -> Iterator[Client]:
    with Client(base, api_key=KEY) as client:
        yield client


def image_info(path: Path) -> tuple[str | None, tuple[int, int]]:
    with Image.open(path) as image:
        return image.format, image.size


def test_run_writes_the_images_and_prints_their_paths(plantain: Plantain, tmp_path: Path) -> None:
    out = tmp_path / "cat.jpg"
    result = plantain("run", "a cat", "-m", "tiny", "-s", "512", "-n", "2", "--seed", "4", "-o", str(out))
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert written == [tmp_path / "cat-1.jpg", tmp_path / "cat-2.jpg"]
    assert [image_info(path) for path in written] == [("JPEG", (512, 512))] * 2
    assert ": queued" in result.stderr
    assert "tiny: 2 image(s) 512x512, seed 4" in result.stderr


def test_run_edits_input_images_from_files(plantain: Plantain, tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    wide.write_bytes(make_input(96, 64).data)
    result = plantain("run", "night", "-i", str(wide), "-s", "512", "--steps", "1", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    (path,) = (Path(line) for line in result.stdout.split())
    assert path.parent == tmp_path and path.name.startswith("plantain-") and path.suffix == ".png"
    assert image_info(path) == ("PNG", (624, 416))  # the input's 3:2 at the 512 tier


def test_run_no_wait_then_tasks_wait_show_and_list(plantain: Plantain, tmp_path: Path) -> None:
    submitted = plantain(
        "run", "a kite", "-s", "512", "--steps", "2", "--seed", "21", "-f", "webp", "--no-wait"
    )
    assert submitted.exit_code == 0, submitted.output
    task_id = submitted.stdout.strip()
    assert task_id.startswith("task_") and f"plantain tasks wait {task_id}" in submitted.stderr

    waited = plantain("tasks", "wait", task_id, "-o", str(tmp_path))
    assert waited.exit_code == 0, waited.output
    assert waited.stdout.split() == [str(tmp_path / "plantain-21.webp")]
    assert image_info(tmp_path / "plantain-21.webp") == ("WEBP", (512, 512))

    urls = plantain("tasks", "wait", task_id)  # an ended task: its image URLs at once
    assert urls.exit_code == 0 and urls.stdout.strip().startswith("http://127.0.0.1:")

    shown = plantain("tasks", "show", task_id)
    assert shown.exit_code == 0, shown.output
    assert f"{task_id} (succeeded)" in shown.stdout and "seed 21" in shown.stdout
    as_json = json.loads(plantain("tasks", "show", task_id, "--json").stdout)
    assert as_json["status"] == "succeeded" and as_json["output"]["images"][0]["seed"] == 21

    listed = plantain("tasks", "list", "--status", "succeeded", "--limit", "100")
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.stdout.splitlines() if line.startswith(task_id))
    assert "succeeded" in row and "1 image(s) 512x512" in row


def test_tasks_list_limit_and_json(plantain: Plantain, client: Client) -> None:
    for _ in range(3):
        client.submit("tiny", {"prompt": "a page", "resolution": "512", "steps": 1})
    result = plantain("tasks", "list", "--limit", "2", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == [task.id for task in client.list(limit=2).data]


def test_tasks_cancel_stops_a_task_and_wait_then_fails(plantain: Plantain, client: Client) -> None:
    task = client.submit("tiny", {"prompt": "slow", "steps": 40})
    cancelled = plantain("tasks", "cancel", task.id)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.startswith(f"{task.id}: cancel")
    waited = plantain("tasks", "wait", task.id)
    assert waited.exit_code == 1
    assert waited.stderr.strip().splitlines()[-1] == f"Error: task {task.id} was cancelled"
    again = plantain("tasks", "cancel", task.id)
    assert again.stdout.strip() == f"{task.id}: already cancelled, nothing to cancel"


def test_generate_and_edit_with_server_write_files_as_locally(plantain: Plantain, tmp_path: Path) -> None:
    result = plantain(
        "generate", "a cat", "-e", "tiny", "-s", "512", "--steps", "1", "--seed", "11", "-o", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "plantain-11.png")]
    assert image_info(tmp_path / "plantain-11.png") == ("PNG", (512, 512))

    source = tmp_path / "in.png"
    source.write_bytes(make_input(128, 96).data)
    out = tmp_path / "night.webp"
    edited = plantain("edit", "make it night", "-i", str(source), "-s", "512", "--steps", "1", "-o", str(out))
    assert edited.exit_code == 0, edited.output
    assert edited.stdout.strip() == str(out)
    assert image_info(out) == ("WEBP", (592, 432))  # 4:3 like the input


def test_generate_server_as_an_option_and_key_as_a_flag(base: str, tmp_path: Path) -> None:
    out = tmp_path / "a.png"
    args = ["generate", "x", "-s", "512", "--steps", "1", "--server", base, "--api-key", KEY, "-o", str(out)]
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args])
    assert result.exit_code == 0, result.output
    assert image_info(out) == ("PNG", (512, 512))


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["run", "x", "-s", "8K"], {}, "input.resolution: '8K' is not allowed"),
        (["generate", "x", "-n", "11"], {}, "input.num_images: 11 is not allowed; must be between 1 and 10"),
        (["run", "x", "-i", "missing.png"], {}, "cannot read input image missing.png"),
        (["run", "x", "-f", "jpeg", "-o", "x.png"], {}, "--format jpeg does not match the output file x.png"),
        (["tasks", "show", "task_nope"], {}, "task_nope"),
        (["tasks", "list"], {"PLANTAIN_API_KEY": ""}, "no API key"),
        (["tasks", "list"], {"PLANTAIN_API_KEY": "wrong"}, "the API key is not valid for this server"),
        (["run", "x", "-m", "flux2-klein-4b", "-s", "512"], {}, "plantain pull flux2-klein-4b"),
        (["generate", "x", "--weights", "w"], {}, "--weights names a local checkpoint"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    plantain: Plantain, args: list[str], env: dict[str, str], expected: str
) -> None:
    result = plantain(*args, env=env)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]  # after the task's "queued" line, if it ran
    assert last.startswith("Error: ") and expected in last, result.stderr


def test_an_unreachable_server_is_one_line(plantain: Plantain) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = plantain("run", "x", "--server", url)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot reach the Plantain server at {url} (")
    assert line.endswith(
        "is it running? Start one with 'plantain serve', or pass --server / set "
        "PLANTAIN_SERVER to where it runs"
    )


def test_the_remote_commands_and_help_load_no_engine_code(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code = f"""
import sys
from click.testing import CliRunner
from plantain.cli.main import cli
base = ["--data-dir", {str(tmp_path)!r}]
for args in ([], ["run"], ["tasks"], ["tasks", "list"]):
    assert CliRunner().invoke(cli, [*base, *args, "--help"]).exit_code == 0, args
assert CliRunner().invoke(cli, [*base, "tasks", "list", "--server", {url!r}]).exit_code == 1
print(sorted({{"torch", "diffusers", "transformers", "fastapi"}} & set(sys.modules)))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
