"""Plantain errors in the OpenAI envelope: ``{"error": {"message", "type", "param", "code"}}``.

A refusal by the safety stage is what OpenAI's moderation answers: 400 with code
``moderation_blocked`` and type ``image_generation_user_error``, ``param`` null.
"""

from __future__ import annotations

from typing import Any

from plantain.dialects.openai.convert import PARAM_NAMES
from plantain.errors import ContentBlockedError, PlantainError

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and envelope of ``error``, a core field given the OpenAI parameter's name
    (``images`` -> ``image``): checks made when the request is queued name core fields."""
    if isinstance(error, ContentBlockedError):
        return error.status, _moderation_body(error)
    error = error.renamed(PARAM_NAMES)
    kind = ERROR_TYPES.get(error.status, "server_error")
    return error.status, {
        "error": {"message": error.message, "type": kind, "param": error.field, "code": error.code}
    }


def _moderation_body(error: ContentBlockedError) -> dict[str, Any]:
    return {
        "error": {
            "message": f"Your request was rejected by the safety system. {error.message}",
            "type": "image_generation_user_error",
            "param": None,
            "code": "moderation_blocked",
        }
    }
