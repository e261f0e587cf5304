"""Plantain errors in the OpenAI envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

from plantain.errors import PlantainError

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    kind = ERROR_TYPES.get(error.status, "server_error")
    return error.status, {
        "error": {"message": error.message, "type": kind, "param": error.field, "code": error.code}
    }
