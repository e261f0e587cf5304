"""``plantain app run OWNER/APP --input JSON``: an inference.sh app run against a Plantain server,
the way their ``belt app run`` works: local files in the input are sent inline (base64 data URIs),
progress is shown, the images are saved and their paths printed.

It speaks the server's inference.sh dialect (``POST /v1/apps/{owner}/{app}/run?stream=true``,
NDJSON), so what it sends and what it gets are exactly what their SDK users see.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from plantain.cli.outputs import MEDIA_TYPE_FORMATS, output_paths
from plantain.cli.progress import StepBar
from plantain.cli.remote import SERVER_HELP, server_options
from plantain.client import DEFAULT_SERVER
from plantain.client.wire import _ServerKey, _unreachable

COMPLETED, FAILED, CANCELLED = 10, 11, 12
STREAM_TIMEOUT = httpx.Timeout(30.0, read=120.0)  # the server sends an update at least every 10 s


@click.group()
def app() -> None:
    """Run inference.sh apps (google/gemini-…, plantain/ENGINE) on a Plantain server."""


@app.command(name="run", short_help="Run OWNER/APP with an inference.sh input; save the images.")
@click.argument("app_ref", metavar="OWNER/APP")
@click.option(
    "--input", "-i", "input_json", required=True, help="The app input as JSON, or @FILE holding it."
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Output file or directory (default: plantain-SEED.ext here).",
)
@server_options(SERVER_HELP)
def run(app_ref: str, input_json: str, output: Path | None, server: str | None, api_key: str | None) -> None:
    """Run OWNER/APP (e.g. google/gemini-3-1-flash-image-preview, plantain/tiny) with the input
    INPUT, as 'belt app run' takes it: '{"prompt": "…", "images": ["./photo.png"]}'. Local files
    named in the input are sent inline; progress is shown on stderr; the images are saved and
    their paths printed."""
    owner, _, name = app_ref.partition("/")
    if not owner or not name:
        raise click.BadParameter(f"{app_ref!r}: write the app as OWNER/APP", param_hint="OWNER/APP")
    payload = inline_files(_load_input(input_json))
    base = (server or DEFAULT_SERVER).rstrip("/")  # --server reads PLANTAIN_SERVER
    # The key goes to this server only, never to an output URL on another host (as plantain.client).
    auth = _ServerKey(api_key or None, base)
    headers = {"accept": "application/x-ndjson"}
    with httpx.Client(base_url=base, headers=headers, auth=auth, timeout=STREAM_TIMEOUT) as client:
        try:
            task = _follow(client, f"/v1/apps/{owner}/{name}/run", {"input": payload}, app_ref)
            _save(client, task, output)
        except httpx.TransportError as exc:
            raise click.ClickException(_unreachable(base, exc).message) from None


def inline_files(value: Any) -> Any:
    """``value`` with every string that names an existing local file replaced by its bytes as a
    data URI (their SDK uploads such paths; a Plantain server takes them inline)."""
    if isinstance(value, dict):
        return {key: inline_files(item) for key, item in value.items()}
    if isinstance(value, list):
        return [inline_files(item) for item in value]
    if (
        isinstance(value, str)
        and not value.startswith(("http://", "https://", "data:"))
        and len(value) < 4096
    ):
        path = Path(value).expanduser()
        if path.is_file():
            media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return f"data:{media};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    return value


def _load_input(text: str) -> dict[str, Any]:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--input") from None
    if not isinstance(value, dict):
        raise click.BadParameter("the input must be a JSON object", param_hint="--input")
    return value


def _follow(client: httpx.Client, path: str, body: dict[str, Any], label: str) -> dict[str, Any]:
    """Run and follow the stream to the task's end; its last update, or the reason it failed raised."""
    last: dict[str, Any] | None = None
    with client.stream("POST", path, params={"stream": "true"}, json=body) as response:
        if response.is_error:
            response.read()
            raise click.ClickException(_problem(response))
        with StepBar(label) as bar:
            for update in _lines(response):
                if last is None:
                    click.echo(f"{update['id']}: {update['status_text']}", err=True)
                bar.update(int(update.get("progress") or 0), 100)
                last = update
    if last is None or last["status"] not in (COMPLETED, FAILED, CANCELLED):
        raise click.ClickException("the stream ended before the task did")
    if last["status"] != COMPLETED:
        raise click.ClickException(f"{last['id']}: {last['status_text']}: {last.get('error') or 'no images'}")
    return last


def _lines(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.strip():
            update = json.loads(line)
            if update.get("type") != "heartbeat":
                yield update


def _save(client: httpx.Client, task: dict[str, Any], output: Path | None) -> None:
    """Each image written as ``generate`` names them (by seed); each path printed."""
    meta = task["output"]["output_meta"]
    items = meta["outputs"]
    fmt = MEDIA_TYPE_FORMATS.get(items[0]["extra"]["media_type"], "png")
    paths = output_paths(output, [item["extra"]["seed"] for item in items], fmt)
    for path, url in zip(paths, task["output"]["images"], strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        response = client.get(url)
        if response.is_error:
            raise click.ClickException(f"{url}: {_problem(response)}")
        path.write_bytes(response.content)
        click.echo(str(path))
    first = items[0]
    click.echo(
        f"{meta['served_by']}: {len(items)} image(s) {first['width']}x{first['height']}, "
        f"seed {first['extra']['seed']} (task {task['id']})",
        err=True,
    )


def _problem(response: httpx.Response) -> str:
    """A refusal in one line: problem+json's ``detail``, else whatever the body says."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    if isinstance(body, dict):
        error = body.get("error")
        detail = body.get("detail") or (error.get("message") if isinstance(error, dict) else None)
        if detail:
            return f"HTTP {response.status_code}: {detail}"
    return f"HTTP {response.status_code}: {json.dumps(body)[:300]}"
