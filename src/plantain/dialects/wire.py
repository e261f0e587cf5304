"""What every dialect does the same way with a request body."""

from __future__ import annotations

import json
from typing import Any

from plantain.errors import InvalidRequestError


def load_json(raw: bytes) -> Any:
    """The body's JSON value (an empty body is ``{}``), or a 400 saying where it is malformed."""
    try:
        return json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}", field="body") from None
