"""The request limits every front door applies the same way (docs/limits.md lists them).

Each check lives here once and names the setting that sets its limit, so an error tells the
caller what was too big and by how much. The checks are cheap (no decoding): the dialects call
the ones they can make early (an image's byte size before its base64 is decoded or its URL is
fetched) and :func:`plantain.generation.prepare` makes the rest for every request, the CLI's
included. Decoding checks (format, pixels, frames) are in :mod:`plantain.imaging.codecs`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from plantain.errors import ImageTooLargeError, InvalidRequestError, TooManyImagesError

InputFormat = Literal["png", "jpeg", "webp", "gif", "avif", "heic"]
INPUT_FORMATS: tuple[InputFormat, ...] = get_args(InputFormat)


class LimitSettings(Protocol):
    """The settings :meth:`Limits.from_settings` reads; :class:`~plantain.settings.Settings` has
    them. A protocol, not that class: settings.py imports the input formats from here."""

    @property
    def max_image_bytes(self) -> int: ...
    @property
    def max_input_images(self) -> int: ...
    @property
    def max_input_pixels(self) -> int: ...
    @property
    def max_prompt_chars(self) -> int: ...
    @property
    def max_output_pixels(self) -> int | None: ...
    @property
    def input_formats(self) -> Iterable[InputFormat]: ...


# C0 controls other than tab, line feed and carriage return, DEL and C1 controls (category Cc).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Limits:
    """The limit settings of :class:`~plantain.settings.Settings`; the defaults are the settings'
    defaults (a test keeps them equal)."""

    max_image_bytes: int = 7 * 1024 * 1024
    max_input_images: int = 14
    max_input_pixels: int = 50_000_000
    max_prompt_chars: int = 32_000
    max_output_pixels: int | None = None
    input_formats: frozenset[InputFormat] = frozenset(INPUT_FORMATS)

    @classmethod
    def from_settings(cls, settings: LimitSettings) -> Limits:
        return cls(
            max_image_bytes=settings.max_image_bytes,
            max_input_images=settings.max_input_images,
            max_input_pixels=settings.max_input_pixels,
            max_prompt_chars=settings.max_prompt_chars,
            max_output_pixels=settings.max_output_pixels,
            input_formats=frozenset(settings.input_formats),
        )

    def check_prompt(self, prompt: str, field: str = "prompt") -> None:
        if len(prompt) > self.max_prompt_chars:
            raise InvalidRequestError(
                f"{field}: {len(prompt)} characters is over the limit of {self.max_prompt_chars} "
                "(max_prompt_chars); shorten the prompt",
                field=field,
            )
        control = _CONTROL.search(prompt)
        if control is not None:
            raise InvalidRequestError(
                f"{field}: contains the control character U+{ord(control.group()):04X} at position "
                f"{control.start()}; only line feed, carriage return and tab are allowed",
                field=field,
            )

    def check_input_count(self, count: int, field: str = "images") -> None:
        if count > self.max_input_images:
            raise TooManyImagesError(
                f"{field}: {count} input images is over the limit of {self.max_input_images} "
                "per request (max_input_images)",
                field=field,
            )

    def check_image_bytes(self, size: int, label: str, field: str | None = None) -> None:
        """``size`` bytes of the input ``label`` (decoded, uploaded or fetched) within the limit."""
        if size > self.max_image_bytes:
            raise image_too_large(label, self.max_image_bytes, field=field, size=size)


DEFAULT_LIMITS = Limits()


def image_too_large(
    label: str, limit: int, *, field: str | None = None, size: int | None = None
) -> ImageTooLargeError:
    """The one error for an input over ``max_image_bytes``; ``size`` None where it is not known
    (a fetch stops as soon as the limit is passed)."""
    what = f"is {size} bytes, over" if size is not None else "is over"
    return ImageTooLargeError(
        f"{label} {what} the limit of {limit} bytes per input image (max_image_bytes)",
        field=field or label,
    )


def base64_size(text: str) -> int:
    """Bytes that base64 ``text`` (whitespace removed, padded) decodes to: 3 per 4 characters."""
    return len(text) // 4 * 3 - text[-2:].count("=")
