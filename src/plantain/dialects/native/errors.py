"""Plantain errors in the task API's envelope: ``{"error": {"code", "message", "field", "status"}}``."""

from __future__ import annotations

from typing import Any

from plantain.dialects.native.convert import FIELD_NAMES
from plantain.errors import PlantainError


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and envelope of ``error``; a check the scheduler made names a core field
    (``prompt``), which is given the task API's name (``input.prompt``)."""
    return envelope(error.renamed(FIELD_NAMES))


def envelope(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and envelope of ``error`` as it names its field (Plantain's own routes whose
    bodies are not a task's ``input``: the arena's)."""
    return error.status, {
        "error": {"code": error.code, "message": error.message, "field": error.field, "status": error.status}
    }
