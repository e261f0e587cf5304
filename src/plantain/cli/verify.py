"""``plantain verify FILE…``: who made an image, by its content credentials and its watermark.

Locally it reads the data directory's keys, watermark tag and task database (a running server's
too: the database is opened read-only); with ``--server`` the server verifies (docs/provenance.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from plantain.cli.remote import SERVER_HELP, server_options
from plantain.settings import Settings


@click.command(short_help="Report the content credentials and watermark of image FILEs.")
@click.argument(
    "files",
    metavar="FILE...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per line.")
@server_options(f"Verify on this server instead of with the local data directory. {SERVER_HELP}")
@click.pass_obj
def verify(
    settings: Settings, files: tuple[Path, ...], as_json: bool, server: str | None, api_key: str | None
) -> None:
    """Report who made each FILE: its C2PA manifest (trusted, valid, invalid or absent, with its
    claims) and its invisible watermark (present or not, confidence, and the task it names)."""
    reports = _remote_reports(files, server, api_key) if server else _local_reports(files, settings)
    for path, report in zip(files, reports, strict=True):
        click.echo(json.dumps({"file": str(path), **report}) if as_json else describe(path, report))


def _local_reports(files: tuple[Path, ...], settings: Settings) -> list[dict[str, Any]]:
    from plantain.limits import Limits
    from plantain.provenance.policy import ProvenancePolicy
    from plantain.provenance.verify import verify as verify_image
    from plantain.storage.marks import read_only_lookup

    policy = ProvenancePolicy(settings)
    lookup = read_only_lookup(settings.data_dir, settings.database_url)
    limits = Limits.from_settings(settings)
    return [
        verify_image(path.read_bytes(), policy, lookup, limits=limits, label=str(path)).to_json()
        for path in files
    ]


def _remote_reports(files: tuple[Path, ...], server: str, api_key: str | None) -> list[dict[str, Any]]:
    from plantain.client import Client

    with Client(server, api_key=api_key) as client:
        return [client.verify(path) for path in files]


def describe(path: Path, report: dict[str, Any]) -> str:
    """A report as three lines for people."""
    return "\n".join(
        [
            f"{path}: {report['verdict']}",
            f"  content credentials: {_credentials_line(report['content_credentials'])}",
            f"  watermark: {_watermark_line(report['watermark'])}",
        ]
    )


def _credentials_line(credentials: dict[str, Any]) -> str:
    state = credentials["state"]
    if state == "absent":
        return "absent"
    parts = [state]
    if credentials.get("signer"):
        mine = " (this server)" if credentials.get("signed_by_this_server") else ""
        parts.append(f"signed by {credentials['signer']}{mine}")
    if credentials.get("action"):
        source = (credentials.get("digital_source_type") or "").rsplit("/", 1)[-1]
        parts.append(f"{credentials['action']}" + (f" ({source})" if source else ""))
    if credentials.get("model"):
        parts.append(f"model {credentials['model']}")
    if credentials.get("ingredients"):
        parts.append(f"{len(credentials['ingredients'])} ingredient(s)")
    parts.extend(credentials.get("problems") or ())
    return "; ".join(parts)


def _watermark_line(mark: dict[str, Any]) -> str:
    if not mark["present"]:
        return f"not found (confidence {mark['confidence']:.2f})"
    parts = [f"present (confidence {mark['confidence']:.2f})"]
    if mark.get("server_tag") is not None:
        whose = "this server" if mark.get("this_server") else "another server"
        parts.append(f"tag {mark['server_tag']} ({whose}), serial {mark['serial']}")
    if mark.get("task_id"):
        parts.append(f"task {mark['task_id']} image {mark['image']}")
    if mark.get("read_at"):
        width, height = mark["read_at"]
        parts.append(f"read at {width}x{height}")
    return "; ".join(parts)
