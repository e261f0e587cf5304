"""CORS: which browser origins' pages may call the server (``cors_origins``, docs/browsers.md).

Starlette's ``CORSMiddleware``, outermost: it answers a preflight (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) for every path before the API-key check sees it (a preflight
carries no credentials), and puts the CORS headers on every answer below it, the API-key check's
and the body limit's refusals included, so that a page can read an error as well as a result.
"""

from __future__ import annotations

import ipaddress
import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from plantain.dialects.report import IGNORED_HEADER, PROVENANCE_HEADER, SEEDS_HEADER
from plantain.settings import Settings
from plantain.usage import COST_HEADER, CURRENCY_HEADER, DEVICE_SECONDS_HEADER

# Allowed when ``cors_origins`` is unset and the server listens on a loopback address: a page a
# developer serves on the same machine (a dev server on any port) may call it.
LOOPBACK_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*")

# What a page may read of an answer besides the CORS-safelisted headers: the OpenAI SDK's request
# id, when to retry, the task API's location and replay flag, Plantain's report headers, and the
# upload session headers.
EXPOSED_HEADERS = (
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "location",
    "idempotent-replayed",
    SEEDS_HEADER,
    PROVENANCE_HEADER,
    IGNORED_HEADER,
    DEVICE_SECONDS_HEADER,
    COST_HEADER,
    CURRENCY_HEADER,
    # Gemini's resumable uploads (google-genai's files.upload reads where to send the bytes).
    "x-goog-upload-url",
    "x-goog-upload-status",
    "x-goog-upload-size-received",
)
METHODS = ("GET", "HEAD", "POST", "DELETE")
MAX_AGE_SECONDS = 600  # how long a browser may reuse a preflight's answer


def allowed_origins(settings: Settings) -> list[str]:
    """``cors_origins``, or its default for the address the server listens on."""
    if settings.cors_origins is not None:
        return list(settings.cors_origins)
    return list(LOOPBACK_ORIGINS) if is_loopback(settings.host) else []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin_pattern(origins: list[str]) -> str:
    """One regular expression (matched whole) for origins written as ``scheme://host[:port]``,
    where the port may be ``*`` (any port, or none)."""
    alternatives = []
    for origin in origins:
        if origin.endswith(":*"):
            alternatives.append(re.escape(origin[:-2]) + r"(:\d+)?")
        else:
            alternatives.append(re.escape(origin))
    return "|".join(f"(?:{alternative})" for alternative in alternatives)


def install(app: FastAPI, settings: Settings) -> None:
    """The CORS middleware on ``app``, added after every other middleware (so outermost); none
    when no origin is allowed."""
    origins = allowed_origins(settings)
    if not origins:
        return
    any_origin = "*" in origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"] if any_origin else [],
        allow_origin_regex=None if any_origin else origin_pattern(origins),
        allow_methods=list(METHODS),
        # Whatever the page's SDK sends (authorization, x-goog-api-key, x-goog-api-client,
        # x-stainless-*, idempotency-key, last-event-id…): the origin is the check, the key the guard.
        allow_headers=["*"],
        expose_headers=list(EXPOSED_HEADERS),
        allow_credentials=False,  # the SDKs send keys in headers, never cookies
        # A listed public page may call a server on a private network (Chrome's Private Network
        # Access asks for this in the preflight): naming the origin is the consent.
        allow_private_network=True,
        max_age=MAX_AGE_SECONDS,
    )


__all__ = ["EXPOSED_HEADERS", "LOOPBACK_ORIGINS", "allowed_origins", "install", "is_loopback"]
