"""The HTTP server: ``create_app(settings)`` assembles health checks, auth and the dialects.

Engines load in the background at start: ``/healthz`` answers at once, ``/readyz`` only once
the served engines are loaded. Errors raised anywhere below the routes are Plantain errors.

Each dialect owns its routes and its error envelope: its router's route class
(:mod:`plantain.dialects.routing`) renders whatever its routes raise. Adding a dialect is its
package plus one line in :data:`DIALECTS`. This module's :func:`render_error` answers only what
no route answers: an unrouted path or method, and the refusals of middleware that runs before
routing (the API-key check, the body limit). Only there is the dialect guessed from the path and
headers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plantain import __version__, logs
from plantain.dialects import files, openapi, webhooks
from plantain.dialects.chat import routes as chat_routes
from plantain.dialects.deps import FrontDoorDep, sent_key
from plantain.dialects.gemini import errors as gemini_errors
from plantain.dialects.gemini import render as gemini_render
from plantain.dialects.gemini import routes as gemini_routes
from plantain.dialects.inference_sh import errors as inference_sh_errors
from plantain.dialects.inference_sh import routes as inference_sh_routes
from plantain.dialects.nanobanana import convert as nanobanana_convert
from plantain.dialects.nanobanana import routes as nanobanana_routes
from plantain.dialects.native import arena_routes, engines_routes, provenance_routes, usage_routes
from plantain.dialects.native import errors as tasks_errors
from plantain.dialects.native import routes as tasks_routes
from plantain.dialects.openai import errors as openai_errors
from plantain.dialects.openai import models as openai_models
from plantain.dialects.openai import routes as openai_routes
from plantain.dialects.routing import DialectRoute, ErrorBody
from plantain.engines.registry import EngineRegistry
from plantain.errors import (
    AuthenticationError,
    EngineRunError,
    InvalidRequestError,
    MethodNotAllowedError,
    PermissionDeniedError,
    PlantainError,
    RouteNotFoundError,
    response_headers,
)
from plantain.scheduler import Scheduler
from plantain.server import aliases, cors, docs_page, metrics
from plantain.server.bodylimit import BodyLimit
from plantain.settings import Settings
from plantain.storage.batches import BatchStore
from plantain.web import pages

logger = logging.getLogger(__name__)

GEMINI_PATH_MARKERS = (
    ":generateContent",
    ":streamGenerateContent",
    ":batchGenerateContent",
    "/publishers/",
    "/projects/",
)
GEMINI_PREFIXES = ("/v1beta/", "/v1alpha/", "/v1beta1/", "/v1/batches")
SERVED_ROUTES = (
    "Plantain serves Gemini's models/{model}:generateContent, :streamGenerateContent, :countTokens, "
    "Imagen's :predict and models (under /v1, /v1beta, /v1alpha and the Vertex paths; unversioned "
    "models/… too), Gemini batch mode (models/{model}:batchGenerateContent and batches), the "
    "Gemini Files API (files, upload/…/files), "
    "OpenAI's /v1/images/generations, /v1/images/edits and /v1/images/variations (also under "
    "/openai/v1), chat completions with images (/v1/chat/completions, /api/v1/chat/completions), "
    "inference.sh's app API (/apps/run, /v1/apps/{owner}/{app}/run, /tasks/{id}, /files), "
    "nanobananaapi.dev's /v1/images/generate, "
    "the task API under /v1/tasks, /v1/usage, /v1/provenance/verify, /metrics, /v1/files/{id}, "
    "/v1/models, /v1/engines, the arena under /v1/arena, the web playground (/, /playground) and "
    "arena (/arena), /docs, /openapi.json, /healthz and /readyz"
)
# The web pages hold nothing of the server (web/pages.py); their API calls send the key.
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/readyz", *pages.OPEN_PATHS})
# Result files are fetched by plain URL (browsers, <img> tags): the unguessable, expiring id is the key.
UNAUTHENTICATED_PREFIXES = ("/v1/files/", *pages.OPEN_PREFIXES)


def speaks_gemini(request: Request) -> bool:
    """Gemini and OpenAI share ``/v1/models``: the google SDKs are told apart by their headers."""
    path = request.url.path
    if any(marker in path for marker in GEMINI_PATH_MARKERS) or path.startswith(GEMINI_PREFIXES):
        return True
    headers = request.headers
    return "x-goog-api-key" in headers or "x-goog-api-client" in headers or "key" in request.query_params


# Plantain's own API: errors in the task envelope.
PLANTAIN_PATHS = ("/v1/tasks", "/v1/usage", "/v1/provenance", "/v1/engines", "/v1/arena", "/metrics")
# The vendors' own APIs, which answer errors in their own envelopes (problem+json; nanobananaapi's).
INFERENCE_SH_PATHS = ("/apps/", "/v1/apps/", "/tasks/", "/files")
NANOBANANA_PATHS = ("/v1/images/generate",)


def guessed_envelope(request: Request) -> ErrorBody:
    """The envelope of the dialect a request seems to speak, from its path and headers: for the
    errors no dialect's route answers (unrouted 404/405, a missing API key, a body too large)."""
    path = request.url.path
    if path.startswith(PLANTAIN_PATHS):
        return tasks_errors.error_body
    if path.startswith(INFERENCE_SH_PATHS):
        return inference_sh_errors.error_body
    if path.rstrip("/") in NANOBANANA_PATHS:
        return nanobanana_convert.error_body
    if speaks_gemini(request):
        return gemini_errors.error_body
    return openai_errors.error_body


def render_error(request: Request, error: PlantainError) -> JSONResponse:
    """An error no dialect's route answered, in the envelope :func:`guessed_envelope` picks."""
    status, body = guessed_envelope(request)(error)
    return JSONResponse(body, status_code=status, headers=response_headers(error))


def serve_app(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/SIGINT, then drain (see :class:`DrainingServer`)."""
    log_to_stderr(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        log_config=logs.uvicorn_log_config(settings.log_format),
        timeout_graceful_shutdown=max(1, round(settings.drain_seconds)),  # open connections, after the drain
    )
    DrainingServer(config, app.state.scheduler).run()


def log_to_stderr(settings: Settings) -> None:
    """Plantain's own INFO lines (engines loaded, each URL fetched and the task it became,
    recoveries), with their task and request ids, beside uvicorn's access log, in
    ``log_format``: without a handler Python shows only warnings."""
    plantain_logger = logging.getLogger("plantain")
    if plantain_logger.handlers:  # the embedding application configured it
        return
    plantain_logger.addHandler(logs.handler(settings.log_format))
    plantain_logger.setLevel(logging.INFO)


class DrainingServer(uvicorn.Server):
    """uvicorn with a drain before its shutdown. The first SIGTERM/SIGINT turns readiness to 503
    ``draining`` and new submissions to 503 ``shutting_down`` at once, while the port stays open:
    the running batch may finish for up to ``drain_seconds`` (then it stops at its next step and
    is queued again for the next start) and callers can still read tasks, follow events and
    download files. Then uvicorn shuts down as usual and the process exits with status 0. A
    second signal stops the running batch at its next step and exits without waiting."""

    def __init__(self, config: uvicorn.Config, scheduler: Scheduler) -> None:
        super().__init__(config)
        self.scheduler = scheduler
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()  # where a signal starts the drain
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # The signal is not recorded for uvicorn to raise again at the end: a drained server
        # has saved its work, so it exits 0 rather than as killed by the signal.
        if self._loop is None or self.scheduler.draining.is_set():
            self.scheduler.stop_now()
            self.should_exit = self.force_exit = True
            return
        self.scheduler.draining.set()  # readiness and submissions say so from this moment
        self._loop.call_soon_threadsafe(self._start_drain)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if self.force_exit:  # uvicorn skips the app's shutdown then; ours stores the queue's state
            for task in self.server_state.tasks:
                task.cancel()  # a caller waiting on its task is gone: its task is cancelled
            await self.lifespan.shutdown()

    def _start_drain(self) -> None:
        self._drain = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        await asyncio.to_thread(self.scheduler.drain, self.scheduler.settings.drain_seconds)
        self.should_exit = True  # uvicorn closes the port now and shuts down


def create_app(settings: Settings, registry: EngineRegistry | None = None) -> FastAPI:
    webhook_body = webhooks.webhook_renderer(settings.base_url)
    scheduler = Scheduler(settings, registry or EngineRegistry(settings), webhook_body=webhook_body)
    batches = BatchStore(scheduler.store.database)  # Gemini batch mode, beside the tasks

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start(asyncio.get_running_loop())
        loading = asyncio.create_task(_load_engines(scheduler, settings))
        try:
            yield
        finally:
            loading.cancel()
            await asyncio.to_thread(scheduler.drain, settings.drain_seconds)
            scheduler.close()

    app = FastAPI(title="Plantain", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.scheduler = scheduler  # the server's own (serve_app drains it)
    app.state.front_door = scheduler.front  # what routes take (dialects.deps.FrontDoorDep)
    app.state.batches = batches
    _add_health_routes(app, scheduler)
    _add_error_handlers(app)
    # Innermost, so that a body stopped mid-read raises straight into the route reading it (a
    # BaseHTTPMiddleware between them would wrap the error in an exception group: a 500).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, render=render_error)
    app.middleware("http")(docs_page.open_docs(_api_key_check(settings)))
    include_dialects(app)
    metrics.install(app, scheduler.store, settings.price_currency)
    openapi.install(app)
    docs_page.install(app)  # /docs: Swagger UI, offline
    pages.install(app)  # /: the playground and the arena
    cors.install(app, settings)  # outermost: preflights before the API-key check
    aliases.install(app)  # outside even CORS: every middleware sees the canonical path
    return app


async def _load_engines(scheduler: Scheduler, settings: Settings) -> None:
    names = settings.serve_engines or [settings.default_engine]
    try:
        await asyncio.to_thread(scheduler.load, names)
        logger.info("engines ready: %s", ", ".join(names))
    except Exception as exc:  # readiness reports it; the server keeps answering
        scheduler.load_error = (
            exc.message if isinstance(exc, PlantainError) else f"{type(exc).__name__}: {exc}"
        )
        logger.error("engines failed to load: %s", scheduler.load_error)


def _add_health_routes(app: FastAPI, scheduler: Scheduler) -> None:
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz() -> JSONResponse:
        if scheduler.draining.is_set():
            return JSONResponse({"status": "draining"}, status_code=503)
        if scheduler.ready.is_set():
            return JSONResponse({"status": "ready"})
        if scheduler.load_error:
            return JSONResponse({"status": "failed", "error": scheduler.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503)


def _add_error_handlers(app: FastAPI) -> None:
    """Unrouted requests' errors. A dialect's routes answer their own (``dialects.routing``); the
    Plantain-error and unexpected-error handlers are a last resort for the routes of no dialect
    (health checks, ``/metrics``) and for middleware."""

    @app.exception_handler(PlantainError)
    async def plantain_error(request: Request, exc: PlantainError) -> JSONResponse:
        return render_error(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return render_error(request, _routing_error(request, exc))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return render_error(request, EngineRunError(f"internal error: {type(exc).__name__}: {exc}"))


def _routing_error(request: Request, exc: StarletteHTTPException) -> PlantainError:
    """Starlette's own refusals (no such route, wrong method) in the caller's dialect."""
    where = f"{request.method} {request.url.path}"
    custom_method = ":" in request.url.path.rsplit("/", 1)[-1]  # models/m:embedContent matches models/{m}
    if exc.status_code == 404 or custom_method:
        return RouteNotFoundError(f"{where} is not served here; {SERVED_ROUTES}")
    if exc.status_code == 405:
        return MethodNotAllowedError(f"{where}: the method is not allowed on this route")
    return InvalidRequestError(f"{where}: {exc.detail}")


def _api_key_check(settings: Settings) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Any]:
    keys = [key.encode() for key in settings.api_keys]

    async def check(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        if keys and path not in UNAUTHENTICATED_PATHS and not path.startswith(UNAUTHENTICATED_PREFIXES):
            sent = sent_key(request)
            if sent is None:
                error: PlantainError = AuthenticationError(
                    "no API key: send it as x-goog-api-key, ?key= or Authorization: Bearer"
                )
                return render_error(request, error)
            if not any(hmac.compare_digest(sent.encode(), key) for key in keys):
                return render_error(
                    request, PermissionDeniedError("the API key is not valid for this server")
                )
            # Let through: routes take whose key it is from deps.caller_key, from the same headers.
        return await call_next(request)

    return check


class SharedModelRoute(DialectRoute):
    """``/v1/models`` speaks Gemini or OpenAI by the caller's headers, its errors included."""

    def envelope(self, request: Request) -> ErrorBody:
        return gemini_errors.error_body if speaks_gemini(request) else openai_errors.error_body


# ``GET /v1/models`` is both Gemini's (google-genai >= 3 defaults to v1) and OpenAI's.
shared_models = APIRouter(route_class=SharedModelRoute)


@shared_models.get("/v1/models", include_in_schema=False)
async def list_models(request: Request, door: FrontDoorDep) -> dict[str, Any]:
    provenance = door.provenance.describe()
    if speaks_gemini(request):
        return gemini_render.list_models_body(door.registry, provenance)
    return openai_models.models_body(door.registry, provenance)


@shared_models.get("/v1/models/{model:path}", include_in_schema=False)
async def get_model(request: Request, door: FrontDoorDep, model: str) -> dict[str, Any]:
    provenance = door.provenance.describe()
    if speaks_gemini(request):
        return gemini_render.get_model_body(door.registry, model, provenance)
    return openai_models.model_body(door.registry, model, provenance)


# Every front door, in the order their routes are matched; each router's route class renders its
# routes' errors. Adding a dialect is its package under plantain/dialects plus one line here.
DIALECTS: list[APIRouter] = [
    gemini_routes.router,
    openai_routes.router,
    chat_routes.router,  # /v1/chat/completions and /api/v1/chat/completions: images in chat
    nanobanana_routes.router,  # nanobananaapi.dev's /v1/images/generate
    tasks_routes.router,
    inference_sh_routes.router,  # /apps/run, /v1/apps/{owner}/{app}/run, /tasks/{id}: inference.sh's app API
    usage_routes.router,
    provenance_routes.router,
    engines_routes.router,  # /v1/engines: what the web playground builds its form from
    arena_routes.router,  # /v1/arena: pairs, votes, the leaderboard, prompt sets
    files.router,  # /v1/files/{id}: every dialect's output URLs
    shared_models,  # /v1/models: Gemini's or OpenAI's, by the caller's headers
]


def include_dialects(app: FastAPI, dialects: Sequence[APIRouter] | None = None) -> None:
    """Every dialect's routes (``DIALECTS`` unless told) on ``app``, each router's errors in its
    own envelope."""
    for router in DIALECTS if dialects is None else dialects:
        app.include_router(router)
