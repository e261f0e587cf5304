"""Headless Chromium for the browser tests: a page on another origin, and what it rendered."""

from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

TESTS = Path(__file__).resolve().parent.parent  # served whole: /browser/…, /node/node_modules/…
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class ModuleFiles(SimpleHTTPRequestHandler):
    """Static files with the MIME type a browser wants for ES modules (``.mjs``)."""

    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
    }

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass


@contextmanager
def page_server() -> Iterator[str]:
    """``tests/`` served on 127.0.0.1 (a free port): a page origin other than any Plantain
    server's. Yields its ``http://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(ModuleFiles, directory=str(TESTS)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def dump_dom(url: str, budget_ms: int = 60_000, timeout: float = 180, offline: bool = False) -> str:
    """The page's DOM once its scripts are done (or ``budget_ms`` of virtual time have passed):
    Chromium headless, no sandbox (tests run as root), no GPU. Virtual time does not advance
    while a request is open, so a slow answer is waited for. ``offline``: no host name resolves
    but 127.0.0.1, as on a machine without a way out (a CDN's would fail to load)."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--dump-dom",
        f"--virtual-time-budget={budget_ms}",
        *(["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"] if offline else []),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def element_text(dom: str, element_id: str) -> str:
    """The text of the element with ``id=element_id`` in a dumped DOM (no nested elements)."""
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</', dom, re.S)
    assert found is not None, dom[-3000:]
    return html.unescape(found.group(1))
