"""Errors as inference.sh answers them: RFC 9457 problem+json (``type``, ``title``, ``status``,
``detail``), which their SDK raises as ``APIError`` with ``detail`` as its message and the code
read from ``type`` (``…/errors/<code>``). ``field`` names the input at fault."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from plantain.dialects.inference_sh.convert import FIELD_NAMES
from plantain.dialects.routing import DialectRoute, ErrorBody
from plantain.errors import PlantainError, response_headers

PROBLEM_JSON = "application/problem+json"


def error_body(error: PlantainError) -> tuple[int, dict[str, Any]]:
    """The status and problem document of ``error``; a core field (``num_images``) is given this
    dialect's name (``input.num_images``)."""
    error = error.renamed(FIELD_NAMES)
    return error.status, {
        "type": f"/errors/{error.code}",  # relative, as RFC 9457 allows; the SDK reads the code from it
        "title": error.code.replace("_", " "),
        "status": error.status,
        "detail": error.message,
        "code": error.code,
        "field": error.field,
        # The same as a legacy ``error`` object, which their SDK also reads the code from.
        "error": {"code": error.code, "message": error.message, "field": error.field},
    }


class ProblemRoute(DialectRoute):
    """This dialect's routes: every error as problem+json, with its headers (``Retry-After``…)."""

    def envelope(self, request: Request) -> ErrorBody:
        return error_body

    def error_response(self, request: Request, error: PlantainError) -> Response:
        status, body = error_body(error)
        return JSONResponse(
            body, status_code=status, headers=response_headers(error), media_type=PROBLEM_JSON
        )
