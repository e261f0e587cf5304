"""Path aliases: the base URLs clients are configured with, rewritten to Plantain's own paths.

A tiny ASGI wrapper, outermost (:func:`install`), so that every middleware (the API-key check,
CORS, the body limit, metrics) and every log line sees only the canonical path:

- ``/openai/v1/...`` -> ``/v1/...``: the OpenAI-compatible base URL of gateways such as Lumenfall;
- ``/models/{model}:{method}`` -> ``/v1beta/models/{model}:{method}``: Gemini clients given the
  server's root as their base URL, which append no API version (LiteLLM's ``gemini/`` provider,
  ``@ai-sdk/google`` with ``baseURL`` at the root);
- ``/{version}/{version}/...`` -> ``/{version}/...`` (Gemini's ``v1``, ``v1beta``, ``v1alpha``): a base
  URL that already ends in an API version, to which the SDK appends its own (google-genai with
  ``base_url=".../v1beta"``); the SDK's own, the inner one, is kept.

Anything else passes untouched, so an unknown path is still a 404. The path the caller sent is
kept in the scope as ``plantain.alias_of``.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

GEMINI_VERSIONS = ("v1", "v1beta", "v1alpha")
UNVERSIONED_METHOD = re.compile(r"/models/[^/]+:[A-Za-z]+")  # /models/{model}:{method}
DOUBLED_VERSION = re.compile(rf"/({'|'.join(GEMINI_VERSIONS)})(?=/(?:{'|'.join(GEMINI_VERSIONS)})/)")
ORIGINAL_PATH = "plantain.alias_of"
PATH_SAFE = "/:@!$&'()*+,;=~"  # characters a path keeps unescaped (RFC 3986 pchar)


def rewrite(path: str) -> tuple[str, str] | None:
    """The prefix of ``path`` to replace and its replacement, or None for a path left alone."""
    if path == "/openai/v1" or path.startswith("/openai/v1/"):
        return "/openai", ""
    if UNVERSIONED_METHOD.fullmatch(path):
        return "", "/v1beta"
    doubled = DOUBLED_VERSION.match(path)
    if doubled:
        return doubled.group(0), ""
    return None


def canonical_path(path: str) -> str:
    """The path Plantain serves for ``path`` (``path`` itself when it is no alias)."""
    change = rewrite(path)
    return path if change is None else change[1] + path[len(change[0]) :]


class AliasPaths:
    """Rewrites an alias's ``path`` and ``raw_path`` before anything else sees the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            change = rewrite(path)
            if change is not None:
                old, new = change
                canonical = new + path[len(old) :]
                raw: bytes | None = scope.get("raw_path")
                if raw is not None and raw.startswith(old.encode()):
                    raw = new.encode() + raw[len(old) :]
                else:
                    raw = quote(canonical, safe=PATH_SAFE).encode()
                scope = {**scope, "path": canonical, "raw_path": raw, ORIGINAL_PATH: path}
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Put :class:`AliasPaths` outside the whole middleware stack of ``app``, whatever middleware
    is added before or after this call."""
    build = app.build_middleware_stack

    def build_with_aliases() -> ASGIApp:
        return AliasPaths(build())

    app.build_middleware_stack = build_with_aliases  # type: ignore[method-assign]
