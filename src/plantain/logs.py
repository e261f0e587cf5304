"""Structured logs: every line logged while work for a task (or a request) runs carries its id.

The ids live in context variables, set with :func:`task_context` where that work happens (the
submission, the worker's run of each task, post-processing, webhook delivery), so a logging
call never formats them itself. :class:`ContextFilter` copies them onto each record as
``record.task_id`` and ``record.request_id`` (``-`` when unset); it belongs on a *handler*,
because a logger's own filters do not see the records its child loggers pass up.

A thread starts with an empty context: code that hands a task's work to another thread sets the
context again there (the post-processing stage and the webhook deliverer do), while
``asyncio.to_thread`` copies the caller's context by itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Literal

import uvicorn.config

LogFormat = Literal["text", "json"]
UNSET = "-"

_task_id: ContextVar[str | None] = ContextVar("plantain_task_id", default=None)
_request_id: ContextVar[str | None] = ContextVar("plantain_request_id", default=None)

TEXT_FORMAT = "%(levelname)s:     %(name)s: [%(task_id)s %(request_id)s] %(message)s"


@contextmanager
def task_context(*, task_id: str | None = None, request_id: str | None = None) -> Iterator[None]:
    """Lines logged inside carry ``task_id`` and ``request_id``; one not given keeps the id the
    surrounding context has (a task's lines keep the request that made it, where known)."""
    tokens = []
    if task_id is not None:
        tokens.append((_task_id, _task_id.set(task_id)))
    if request_id is not None:
        tokens.append((_request_id, _request_id.set(request_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_task_id() -> str | None:
    return _task_id.get()


def current_request_id() -> str | None:
    return _request_id.get()


class ContextFilter(logging.Filter):
    """Adds ``task_id`` and ``request_id`` to every record (``-`` when unset); an id a call
    passed itself (``extra={"task_id": ...}``) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "task_id", None) is None:
            record.task_id = _task_id.get() or UNSET
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get() or UNSET
        return True


class TextFormatter(logging.Formatter):
    """``INFO:     plantain.scheduler: [task_… req_…] message``, beside uvicorn's own lines."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ContextFilter().filter(record)  # a handler without the filter still shows the ids
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, task_id, request_id (``null``
    when unset) and exc_info (the formatted traceback) when the line has one."""

    def format(self, record: logging.LogRecord) -> str:
        ContextFilter().filter(record)
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "task_id": _id_or_none(getattr(record, "task_id", None)),
            "request_id": _id_or_none(getattr(record, "request_id", None)),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def _id_or_none(value: object) -> str | None:
    return None if value in (None, UNSET) else str(value)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def handler(log_format: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """A handler (on stderr unless ``stream``) that writes lines in ``log_format`` with the ids."""
    result = logging.StreamHandler(stream)
    result.addFilter(ContextFilter())
    result.setFormatter(formatter(log_format))
    return result


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``log_format``: text keeps uvicorn's own lines; for JSON, its
    server and access lines are JSON objects too, so stderr is one JSON stream."""
    if log_format != "json":
        return uvicorn.config.LOGGING_CONFIG
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "json": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["json"], "level": "INFO", "propagate": False},
        },
    }
