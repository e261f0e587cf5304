"""Plantain errors in the task API's envelope: ``{"error": {"code", "message", "field", "status"}}``."""

from __future__ import annotations

from typing import Any

from plantain.dialects.native.convert import FIELD_NAMES
from plantain.errors import PlantainError


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and envelope of ``error``; a check the scheduler made names a core field
    (``prompt``), which is given the task API's name (``input.prompt``)."""
    error = error.renamed(FIELD_NAMES)
    return error.status, {
        "error": {"code": error.code, "message": error.message, "field": error.field, "status": error.status}
    }
