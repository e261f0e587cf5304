"""Hostile inputs against a live server, through all three dialects, as an attacker would send them.

Start a server first (``plantain serve --engine tiny``), then

    .venv/bin/python -m fuzz.hostile --server http://127.0.0.1:8000 [--pid PID]

Each case — decompression bombs, truncated and polyglot files, too many or too large images,
oversized bodies, URLs aimed at internal addresses, bad prompts — is sent through the Gemini
REST API, the OpenAI Images API and the task API where that dialect can carry it. The table
printed shows each answer's status and error code; after every case an ordinary request must
still succeed, and with ``--pid`` the server's peak resident memory is printed at the end.
Exit status 1 if any case got a 5xx or broke the server.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

Sender = Callable[[httpx.Client], httpx.Response]

GEMINI = "/v1beta/models/gemini-2.5-flash-image:generateContent"
TASKS = "/v1/tasks"
WAIT = {"Prefer": "wait=60"}  # the task API answers once the task has finished
OPENAI_EDITS = "/v1/images/edits"
OPENAI_GENERATIONS = "/v1/images/generations"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def bomb() -> bytes:
    """A 20000x20000 1-bit PNG: about 60 KB that would decode to 1.1 GiB of RGB."""
    return _png(Image.new("1", (20_000, 20_000)))


def small_png() -> bytes:
    return _png(Image.new("RGB", (64, 48), (30, 120, 200)))


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()[:300]


def polyglot() -> bytes:
    """A valid PNG with an HTML page appended (the stored-XSS shape): accepted, re-encoded, and
    the HTML must not come back."""
    return small_png() + b"<html><script>alert(document.cookie)</script></html>"


def many_frames_gif() -> bytes:
    frames = [Image.new("P", (8, 8), index % 256) for index in range(2000)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


INTERNAL_URLS = [
    "http://127.0.0.1:{port}/v1/models",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://2130706433:{port}/",  # 127.0.0.1 as one decimal number
    "http://100.100.100.200/latest/meta-data/",  # Alibaba Cloud metadata (CGNAT range)
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://localhost:{port}/",
    "file:///etc/passwd",
]


# --- one request per dialect ----------------------------------------------------------------------


def gemini(prompt: str, images: Sequence[bytes] = (), urls: Sequence[str] = ()) -> Sender:
    parts: list[dict[str, Any]] = [{"text": prompt}]
    parts += [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(i).decode()}} for i in images]
    parts += [{"fileData": {"mimeType": "image/png", "fileUri": url}} for url in urls]
    body = {"contents": [{"role": "user", "parts": parts}]}
    return lambda client: client.post(GEMINI, json=body)


def task(prompt: str, images: Sequence[bytes] = (), urls: Sequence[str] = ()) -> Sender:
    sources = [base64.b64encode(i).decode() for i in images] + [*urls]
    body = {"model": "tiny", "input": {"prompt": prompt, "images": sources}}
    return lambda client: client.post(TASKS, json=body, headers=WAIT)


def openai(prompt: str, images: Sequence[bytes] = (), urls: Sequence[str] = ()) -> Sender | None:
    if urls:
        return None  # the Images API takes uploads, not URLs
    if not images:
        return lambda client: client.post(OPENAI_GENERATIONS, json={"model": "tiny", "prompt": prompt})
    files = [("image[]", (f"in{index}.png", data, "image/png")) for index, data in enumerate(images)]
    return lambda client: client.post(OPENAI_EDITS, data={"model": "tiny", "prompt": prompt}, files=files)


def raw_body(path: str, size: int) -> Sender:
    """A JSON body of ``size`` bytes (one huge prompt), sent with its Content-Length."""
    body = b'{"prompt": "' + b"a" * (size - 16) + b'"}'
    return lambda client: client.post(path, content=body, headers={"content-type": "application/json"})


def chunked_body(path: str, size: int) -> Sender:
    """The same, streamed without a Content-Length (chunked), so only a running count can stop it."""

    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(size // 65536):
            yield b"a" * 65536
        yield b'"}'

    return lambda client: client.post(path, content=chunks(), headers={"content-type": "application/json"})


# --- the run ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: str
    dialect: str
    status: int
    code: str
    message: str
    seconds: float
    healthy: bool


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:80]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # Gemini names Plantain's code in an ErrorInfo reason
        reasons = [detail.get("reason") for detail in error.get("details") or [] if isinstance(detail, dict)]
        code = next((reason for reason in reasons if reason), error.get("code"))
        return str(code).lower(), str(error.get("message", ""))
    feedback = body.get("promptFeedback") if isinstance(body, dict) else None
    if feedback:
        return str(feedback.get("blockReason", "")), ""
    if isinstance(body, dict) and body.get("status") == "failed":
        failure = body.get("error") or {}
        return str(failure.get("code", "")), str(failure.get("message", ""))
    return "", ""


def cases(port: int) -> Iterator[tuple[str, str, Sender | None]]:
    images = {
        "decompression bomb (20000x20000 PNG)": [bomb()],
        "truncated JPEG": [truncated_jpeg()],
        "polyglot PNG+HTML": [polyglot()],
        "GIF with 2000 frames": [many_frames_gif()],
        "not an image": [b"<svg xmlns='http://www.w3.org/2000/svg'/>"],
        "8 MB image (over 7 MiB)": [small_png() + b"\0" * 8_000_000],
        "15 input images": [small_png()] * 15,
    }
    for name, data in images.items():
        for dialect, make in (("gemini", gemini), ("openai", openai), ("tasks", task)):
            yield name, dialect, make("make it blue", data)
    for url in INTERNAL_URLS:
        target = url.format(port=port)
        for dialect, make in (("gemini", gemini), ("tasks", task)):
            yield f"URL {target}", dialect, make("make it blue", urls=[target])
    prompts = {"prompt of 40000 characters": "a" * 40_000, "prompt with a NUL byte": "a cat\0"}
    for name, prompt in prompts.items():
        for dialect, make in (("gemini", gemini), ("openai", openai), ("tasks", task)):
            yield name, dialect, make(prompt)
    for dialect, path in (("gemini", GEMINI), ("openai", OPENAI_GENERATIONS), ("tasks", TASKS)):
        yield "100 MB body (Content-Length)", dialect, raw_body(path, 100_000_000)
        yield "100 MB body (chunked)", dialect, chunked_body(path, 100_000_000)


def still_serving(client: httpx.Client) -> bool:
    body = {"model": "tiny", "input": {"prompt": "a quiet lake", "seed": 1}}
    response = client.post(TASKS, json=body, headers=WAIT)
    return response.status_code < 300 and response.json().get("status") == "succeeded"


def run(server: str, port: int) -> list[Outcome]:
    outcomes = []
    with httpx.Client(base_url=server, timeout=120) as client:
        for name, dialect, send in cases(port):
            if send is None:
                continue
            started = time.perf_counter()
            try:
                response = send(client)
                status, (code, message) = response.status_code, _error_of(response)
            except httpx.HTTPError as exc:  # e.g. the server closed a body it refused
                status, code, message = 0, type(exc).__name__, str(exc)
            seconds = time.perf_counter() - started
            outcomes.append(Outcome(name, dialect, status, code, message, seconds, still_serving(client)))
    return outcomes


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, help="the server's process id, to report its peak memory")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args(argv)
    port = httpx.URL(args.server).port or 80
    outcomes = run(args.server, port)
    print(f"{'case':44} {'dialect':7} {'status':>6} {'code':24} {'s':>6} serving  message")
    for o in outcomes:
        serving = "yes" if o.healthy else "NO"
        row = f"{o.case[:44]:44} {o.dialect:7} {o.status:>6} {o.code[:24]:24} {o.seconds:6.2f} {serving:8}"
        print(f"{row} {o.message[:90]}")
    if args.pid:
        print(f"server peak RSS: {peak_rss_mib(args.pid):.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    broken = [o for o in outcomes if o.status >= 500 or not o.healthy]
    print(f"{len(outcomes)} cases, {len(broken)} with a 5xx or a server that stopped answering")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
