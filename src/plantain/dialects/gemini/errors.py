"""Plantain errors in the Gemini envelope: ``{"error": {"code", "message", "status"}}``, and the
google.rpc codes a batch reports for each request that failed."""

from __future__ import annotations

from typing import Any

from plantain.dialects.gemini.convert import FIELD_NAMES
from plantain.errors import PlantainError, QueueFullError, QuotaExceededError, ShuttingDownError

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"

# HTTP status -> google.rpc status name, as the Gemini API answers.
RPC_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",  # as Gemini calls a request over its payload size
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


# google.rpc.Code numbers: a per-request error inside a batch is a google.rpc.Status, whose
# ``code`` is this number rather than the HTTP status.
RPC_CODE: dict[str, int] = {
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "ABORTED": 10,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}


def rpc_code(http_status: int) -> int:
    """The google.rpc.Code of an HTTP status, as Gemini maps them (UNKNOWN for others)."""
    return RPC_CODE[RPC_STATUS.get(http_status, "UNKNOWN")]


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and envelope of ``error``; a check the scheduler made names a core field
    (``images``), which is given the Gemini name the caller wrote (``contents``)."""
    error = error.renamed(FIELD_NAMES)
    status = error.status
    body = {
        "error": {
            "code": status,
            "message": error.message,
            "status": RPC_STATUS.get(status, "UNKNOWN"),
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": error.code.upper(),
                    "domain": "plantain",
                    "metadata": {"field": error.field} if error.field else {},
                },
                *_retry_details(error),
            ],
        }
    }
    return status, body


def _retry_details(error: PlantainError) -> list[dict[str, Any]]:
    """What Gemini adds to a 429 or 503 that says when to retry: google.rpc.RetryInfo (read by
    clients that back off as told) and, for a quota, google.rpc.QuotaFailure naming it."""
    details: list[dict[str, Any]] = []
    if isinstance(error, QueueFullError | QuotaExceededError | ShuttingDownError):
        details.append({"@type": RETRY_INFO, "retryDelay": f"{error.retry_after}s"})
    if isinstance(error, QuotaExceededError) and error.quota is not None:
        violation = {
            "quotaMetric": f"plantain/{error.quota}",
            "quotaId": error.quota,
            "quotaValue": str(error.limit),
        }
        details.append({"@type": QUOTA_FAILURE, "violations": [violation]})
    return details
