"""Plantain errors in the Gemini envelope: ``{"error": {"code", "message", "status"}}``."""

from __future__ import annotations

from typing import Any

from plantain.errors import PlantainError

# HTTP status -> google.rpc status name, as the Gemini API answers.
RPC_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
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
                }
            ],
        }
    }
    return status, body
