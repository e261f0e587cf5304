"""FastAPI's refusal of a declared parameter (a query, path or header value of the wrong type or
outside its range) as the error every other bad input gets: a 400 naming the parameter, the value
and what the parameter takes, which the server renders in the caller's dialect.

Without it FastAPI answers 422 in its own ``{"detail": […]}`` shape, which no client of any of
Plantain's dialects reads.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Le
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic.fields import FieldInfo

from plantain.errors import InvalidRequestError

KINDS: dict[Any, str] = {int: "a whole number", float: "a number", bool: "true or false"}


def invalid_parameter(request: Request, exc: RequestValidationError) -> InvalidRequestError:
    """The first of the refusals, as an :class:`InvalidRequestError` naming its parameter."""
    error = exc.errors()[0]
    location, *path = (str(part) for part in error["loc"])
    name = ".".join(path) or location
    takes = _takes(_declared(request, location, name))
    if error["type"] == "missing":
        return InvalidRequestError(f"{name} is required" + (f"; send {takes}" if takes else ""), field=name)
    rule = f"must be {takes}" if takes else _lower_first(str(error["msg"]))
    return InvalidRequestError(f"{name}: {error.get('input')!r} is not allowed; {rule}", field=name)


def _declared(request: Request, location: str, name: str) -> FieldInfo | None:
    """How the route declares the parameter (its type and bounds), when it can be found."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    fields = getattr(dependant, f"{location}_params", None) or []
    return next((field.field_info for field in fields if field.alias == name), None)


def _takes(info: FieldInfo | None) -> str | None:
    """What the parameter takes, in words: ``a whole number between 1 and 100``."""
    kind = KINDS.get(_bare(info.annotation)) if info is not None else None
    if info is None or kind is None:
        return None
    low = next((item.ge for item in info.metadata if isinstance(item, Ge)), None)
    high = next((item.le for item in info.metadata if isinstance(item, Le)), None)
    if low is not None and high is not None:
        return f"{kind} between {low} and {high}"
    if low is not None:
        return f"{kind} of {low} or more"
    return f"{kind} of {high} or less" if high is not None else kind


def _bare(annotation: Any) -> Any:
    """``int | None`` -> ``int``; anything else as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        kinds = [arg for arg in get_args(annotation) if arg is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
