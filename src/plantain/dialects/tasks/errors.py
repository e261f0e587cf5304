"""Plantain errors in the task API's envelope: ``{"error": {"code", "message", "field", "status"}}``."""

from __future__ import annotations

from typing import Any

from plantain.errors import PlantainError


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    return error.status, {
        "error": {"code": error.code, "message": error.message, "field": error.field, "status": error.status}
    }
