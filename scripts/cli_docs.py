"""Write docs/cli.md from the commands' own --help (tests/test_docs.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from plantain.cli.main import cli

COMMANDS = [
    [],
    ["serve"],
    ["generate"],
    ["edit"],
    ["run"],
    ["tasks"],
    ["tasks", "list"],
    ["tasks", "show"],
    ["tasks", "wait"],
    ["tasks", "cancel"],
    ["app", "run"],
    ["engines"],
    ["pull"],
    ["demo"],
    ["webhook-secret"],
    ["bench"],
    ["worker"],
    ["migrate-db"],
]


def render() -> str:
    parts = [
        "# Command-line reference\n",
        "Generated from `plantain … --help` by `python scripts/cli_docs.py`; do not edit by hand.\n",
    ]
    for command in COMMANDS:
        help_text = CliRunner().invoke(cli, [*command, "--help"], prog_name="plantain").stdout
        parts.append(
            f"## plantain {' '.join(command)}".rstrip() + "\n\n```\n" + help_text.rstrip() + "\n```\n"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    Path(__file__).resolve().parent.parent.joinpath("docs", "cli.md").write_text(render())
