"""``/`` (a redirect to the playground), ``/playground``, ``/arena`` and their files under ``/web/``.

The pages are static files committed under ``static/``: plain HTML, CSS and ES modules, no build
step and no CDN, so they load where the server has no way out. They name no host: every URL is
relative, so they work behind a proxy that serves Plantain under a path prefix. They hold nothing
of the server, so they need no API key (a browser cannot send one when it opens a page); the API
calls they make send the key the user typed, kept in the browser's ``localStorage`` only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/playground": "playground.html", "/arena": "arena.html"}
STATIC_PATH = "/web"
# Paths a browser opens without an API key (server/app.py lets them through).
OPEN_PATHS = frozenset({"/", *PAGES})
OPEN_PREFIXES = (f"{STATIC_PATH}/",)
# Pages are small and change with the server: revalidate each time, never a stale playground.
NO_STALE = {"cache-control": "no-cache"}


def install(app: FastAPI) -> None:
    """The pages and their files on ``app``, left out of the OpenAPI document (they are not API)."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("playground", status_code=307)  # relative: kept under a prefix

    for path, name in PAGES.items():
        app.add_api_route(path, _page(name), methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="web")


def _page(name: str) -> Callable[[], Awaitable[FileResponse]]:
    async def page() -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html; charset=utf-8", headers=NO_STALE)

    page.__name__ = f"page_{name.split('.')[0]}"
    return page
