"""``GET /docs``: Swagger UI over ``/openapi.json``, offline.

Swagger UI's files come from the ``swagger-ui-bundle`` package, served under ``/docs/static/``;
the page names no other host, so it renders where the server has no way out. Its URLs are
relative (``docs/static/…``, ``openapi.json``), so it works behind a proxy that serves Plantain
under a path prefix.

The page and its files are the same on every server and hold nothing of it, so they need no API
key (a browser cannot send one when it opens a page). The document and the routes do: on a
server with keys, open ``/docs?key=KEY`` and the page sends the key with each request it makes
(the document, and "Try it out") as ``Authorization: Bearer``.

Swagger UI 4 (the bundle's) renders OpenAPI 3.0 documents; Plantain's is 3.1 (FastAPI's), whose
operations, parameters and bodies read the same, so the page shows it as 3.0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import swagger_ui_bundle  # type: ignore[import-untyped]  # no stubs; one path constant
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API</title>
<link rel="stylesheet" href="docs/static/swagger-ui.css">
<link rel="icon" type="image/png" href="docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/static/swagger-ui-bundle.js"></script>
<script>
const key = new URLSearchParams(window.location.search).get("key");
const withKey = (request) => {{
  if (key && !request.headers.Authorization) request.headers.Authorization = "Bearer " + key;
  return request;
}};
fetch("openapi.json", {{headers: key ? {{Authorization: "Bearer " + key}} : {{}}}})
  .then((answer) => {{
    if (answer.ok) return answer.json();
    const hint = answer.status === 401 || answer.status === 403 ? "; open /docs?key=YOUR_KEY" : "";
    throw new Error("the server answered " + answer.status + hint);
  }})
  .then((spec) => {{
    if (String(spec.openapi).startsWith("3.1")) spec.openapi = "3.0.3";  // Swagger UI 4 reads 3.0
    window.ui = SwaggerUIBundle({{
      spec: spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      requestInterceptor: withKey,
      validatorUrl: null,  // no badge from validator.swagger.io: nothing leaves the page
      presets: [SwaggerUIBundle.presets.apis],
    }});
  }})
  .catch((error) => {{
    document.getElementById("swagger-ui").textContent = "could not load openapi.json: " + error;
  }});
</script>
</body>
</html>
"""

Check = Callable[[Request, Callable[[Request], Awaitable[Response]]], Any]


def install(app: FastAPI) -> None:
    """``/docs`` and Swagger UI's files under ``/docs/static/`` on ``app``."""
    page = PAGE.format(title=app.title)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    app.mount(STATIC_PATH, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="swagger-ui")


def is_docs_page(path: str) -> bool:
    return path == DOCS_PATH or path.startswith(f"{STATIC_PATH}/")


def open_docs(check: Check) -> Check:
    """The API-key ``check`` for every path but the docs page and its files."""

    async def checked(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if is_docs_page(request.url.path):
            return await call_next(request)
        result: Response = await check(request, call_next)
        return result

    return checked


__all__ = ["DOCS_PATH", "STATIC_PATH", "install", "is_docs_page", "open_docs"]
