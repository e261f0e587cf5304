"""What every dialect does the same way with a request body."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import pydantic_core
from pydantic import BaseModel, BeforeValidator, ValidationError
from starlette.responses import JSONResponse

from plantain.errors import InvalidImageError, InvalidRequestError
from plantain.limits import Limits, base64_size
from plantain.types import InputImage, LoraChoice

try:  # SIMD base64 (a dependency): ~0.1 ms for a 1.7 MB PNG where the stdlib takes ~5 ms
    import pybase64
except ImportError:  # a platform without its wheel: the stdlib, same bytes, slower
    pybase64 = None  # type: ignore[assignment]

_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/]*={0,2}")

Body = TypeVar("Body", bound=BaseModel)


class ImageAnswer(JSONResponse):
    """A JSON answer carrying base64 images: the same bytes as ``JSONResponse`` (compact, UTF-8),
    rendered by pydantic-core, which takes ~1 ms for a 1K PNG's body where ``json.dumps`` takes
    ~5–7 ms scanning the base64 for characters to escape, on the event loop."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


def load_json(raw: bytes) -> Any:
    """The body's JSON value (an empty body is ``{}``), or a 400 saying where it is malformed."""
    try:
        return json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the request body is not valid JSON: {exc}", field="body") from None


def load_object(raw: bytes) -> dict[str, Any]:
    """The body's JSON object (an empty body is ``{}``), or a 400: malformed, or another JSON value."""
    data = load_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def validate(model: type[Body], payload: Any) -> Body:
    """``payload`` as a ``model``, or the 400 :func:`validation_error` makes of pydantic's complaint."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> InvalidRequestError:
    """pydantic's first complaint as one sentence naming the field (``a.b[0]``) and the value."""
    error = exc.errors()[0]
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    field = field.lstrip(".") or "body"
    if error["type"] == "missing":
        return InvalidRequestError(f"{field} is required", field=field)
    return InvalidRequestError(f"{field}: {error.get('input')!r} is not allowed; {error['msg']}", field=field)


def decode_base64(
    data: str, name: str, field: str | None = None, *, limits: Limits | None = None, label: str | None = None
) -> bytes:
    """Standard or URL-safe base64, padding optional (google-genai sends URL-safe), or a
    ``data:<type>;base64,`` URI holding it; ``name`` is how the error calls the value. With
    ``limits``, an image over ``max_image_bytes`` (input ``label``) is refused from the base64 length (4
    characters make 3 bytes) before anything is decoded."""
    data = _without_data_uri(data, name, field)
    padded = data + "=" * (-len(data) % 4)
    if data and (limits is None or limits.max_image_bytes >= base64_size(padded)):
        try:  # one alphabet, no whitespace (what clients send): one validating pass
            return _b64decode(padded)
        except (binascii.Error, ValueError):
            pass  # whitespace, mixed alphabets or a stray character: normalised or named below
    text = "".join(data.split()).translate(str.maketrans("-_", "+/"))
    text += "=" * (-len(text) % 4)
    if not text or not _BASE64_CHARS.fullmatch(text):
        raise InvalidImageError(f"{name} is not base64-encoded image bytes", field=field or name)
    if limits is not None:
        limits.check_image_bytes(base64_size(text), label or name, field or name)
    try:
        return _b64decode(text)
    except binascii.Error as exc:
        raise InvalidImageError(f"{name} is not valid base64 ({exc})", field=field or name) from None


def image_url(url: str, label: str, field: str, *, limits: Limits) -> InputImage:
    """An image sent by URL (chat's ``image_url``, nanobananaapi's ``ref_images``): a
    ``data:image/…;base64`` URL decoded now, an http(s) URL left for the front door's safe
    fetcher; anything else is a 400 naming ``field`` and the value."""
    if url[:5].lower() == "data:":
        if not url[5:].lower().startswith("image/"):
            raise InvalidImageError(
                f"{field}: a data URL must hold an image, as data:image/png;base64,<data>", field=field
            )
        data = decode_base64(url, field, field=field, limits=limits, label=label)
        return InputImage(data=data, label=label)
    parsed = urlsplit(url)
    if parsed.scheme.lower() not in {"http", "https"} or not parsed.hostname:
        shown = url if len(url) <= 80 else f"{url[:80]}…"
        raise InvalidRequestError(
            f"{field}: {shown!r} is not an http(s) URL or a data URL; send a public image URL "
            "or data:image/png;base64,<data>",
            field=field,
        )
    return InputImage(url=url, label=label)


def _without_data_uri(data: str, name: str, field: str | None) -> str:
    """The base64 of ``data:image/png;base64,<base64>`` (its declared type is advisory: the bytes
    are sniffed); anything else as it is."""
    if data[:5].lower() != "data:":
        return data
    header, comma, payload = data.partition(",")
    if not comma or not header.lower().endswith(";base64"):
        raise InvalidImageError(
            f"{name}: a data URI must hold base64, as data:image/png;base64,<data>", field=field or name
        )
    return payload


def encode_base64(data: bytes) -> str:
    """Standard base64 with padding, as both vendors answer images."""
    if pybase64 is not None:
        return pybase64.b64encode_as_string(data)
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Padded base64 in the standard or the URL-safe alphabet (not a mix), every character
    checked (binascii.Error otherwise)."""
    altchars = "-_" if "-" in text or "_" in text else None
    if altchars and ("+" in text or "/" in text):
        raise binascii.Error("both base64 alphabets")  # Python deprecates decoding a mix
    if pybase64 is not None:
        return pybase64.b64decode(text, altchars=altchars, validate=True)
    return base64.b64decode(text, altchars=altchars, validate=True)


def _json_text(value: Any) -> Any:
    """A list sent as JSON text (a multipart form field) parsed; anything else as it came."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value  # refused by the list type, naming the field and the value
    return value


# The LoRA extension field every dialect takes (docs/loras.md): [{"name": ..., "scale": ...}], or
# the same as JSON text in a multipart form.
LoraList = Annotated[list[LoraChoice] | None, BeforeValidator(_json_text)]
