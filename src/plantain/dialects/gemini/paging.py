"""``pageSize`` of Gemini's list methods (batches, files), read as Google reads it."""

from __future__ import annotations

from plantain.errors import InvalidRequestError

MAX_PAGE = 100  # a larger pageSize is lowered to it, as Google's list methods do


def page_size(value: str | None, *, default: int, items: str) -> int:
    """The page size a ``pageSize`` query value asks for: none or 0 gives ``default``, more than
    :data:`MAX_PAGE` gives that; anything but a whole number is a 400 naming it."""
    if value is None or not value.strip():
        return default
    try:
        size = int(value)
    except ValueError:
        size = -1
    if size < 0:
        raise InvalidRequestError(
            f"pageSize: {value!r} is not allowed; send a whole number of {items}, 1 to {MAX_PAGE} "
            f"(0 or none gives {default})",
            field="pageSize",
        )
    return min(size, MAX_PAGE) or default
