"""Prompt sets for the arena: files of prompts, each with a category, parsed and checked.

Teams bring their own prompts in whatever they have at hand: a JSON list, JSON Lines, a CSV with
a ``prompt`` column (a spreadsheet export) or a text file with one prompt per line. The format is
the Content-Type's, or sniffed from the bytes when the upload says nothing useful (curl's default
``application/x-www-form-urlencoded``, ``application/octet-stream``). Categories follow
Lumenfall's split of image prompts so leaderboards per category compare like with like; a team may
add its own. Every error names the entry at fault (``prompts[3].prompt``, ``line 4``), the value
and the limit, so a file with one bad line among a thousand can be fixed at once.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from plantain.errors import InvalidRequestError
from plantain.limits import DEFAULT_LIMITS, Limits

SUGGESTED_CATEGORIES = (
    "general",
    "portrait",
    "photorealism",
    "text-rendering",
    "product",
    "illustration",
    "landscape",
    "architecture",
    "food",
    "editing",
    "character",
)
DEFAULT_CATEGORY = "general"
MAX_PROMPTS = 1000

_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_SEPARATORS = re.compile(r"[\s_]+")
_NEWLINE = re.compile(r"\r\n|\r|\n")  # not str.splitlines(): its form feeds and U+2028 shift line numbers

_JSON_TYPES = {"application/json", "text/json"}
_JSONL_TYPES = {
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonl",
    "application/jsonlines",
    "application/x-jsonlines",
}
_CSV_TYPES = {"text/csv", "application/csv"}
_TEXT_TYPES = {"text/plain"}


@dataclass(frozen=True)
class PromptEntry:
    prompt: str
    category: str


def _cut(value: str, limit: int = 60) -> str:
    """``value`` quoted for a message, cut to ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def normalize_category(value: str | None, field: str) -> str:
    """A category as stored: lowercase, spaces and underscores as hyphens (``"Text Rendering"`` ->
    ``text-rendering``), ``general`` when absent. Any name of that shape is allowed, not only
    :data:`SUGGESTED_CATEGORIES`: teams add their own."""
    if value is None or not value.strip():
        return DEFAULT_CATEGORY
    category = _SEPARATORS.sub("-", value.strip().lower())
    if not _CATEGORY.match(category):
        raise InvalidRequestError(
            f"{field}: {_cut(value)} is not a category name: use 1 to 40 lowercase letters, digits "
            f"and hyphens, starting with a letter or digit (e.g. {', '.join(SUGGESTED_CATEGORIES[:4])})",
            field=field,
        )
    return category


# A raw entry before checking: the field that names it, its prompt and its category (either may
# be missing or of the wrong type; _check says so).
_Raw = tuple[str, Any, Any, str]  # (field for the prompt, prompt, category, field for the category)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start + len(data) - len(exc.object)  # exc.object starts after a BOM
        raise InvalidRequestError(
            f"prompts: the file is not UTF-8 (byte {at} is {data[at]:#04x}); "
            "save it as UTF-8 and upload it again",
            field="prompts",
        ) from None


def _json_error(exc: json.JSONDecodeError, where: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{where}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
        field=where,
    )


def _from_item(item: Any, field: str) -> _Raw:
    """A JSON entry: a string, or an object with ``prompt`` and an optional ``category``."""
    if isinstance(item, str):
        return (field, item, None, field)
    if isinstance(item, dict):
        if "prompt" not in item:
            keys = ", ".join(_cut(str(key), 30) for key in item) or "none"
            raise InvalidRequestError(
                f"{field}.prompt: missing; the object has the keys {keys}", field=f"{field}.prompt"
            )
        return (f"{field}.prompt", item["prompt"], item.get("category"), f"{field}.category")
    raise InvalidRequestError(
        f'{field}: {_cut(json.dumps(item))} is not a prompt: use a string or an object with a "prompt" key',
        field=field,
    )


def _json_entries(text: str) -> list[_Raw]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _json_error(exc, "prompts") from None
    if isinstance(document, dict):
        if "prompts" not in document:
            if "prompt" in document:  # a set of one, written as its entry
                return [_from_item(document, "prompts")]
            raise InvalidRequestError(
                'prompts: a JSON object must have a "prompts" list; or upload a JSON list of prompts',
                field="prompts",
            )
        document = document["prompts"]
    if not isinstance(document, list):
        raise InvalidRequestError(
            f"prompts: {_cut(json.dumps(document))} is not a list of prompts", field="prompts"
        )
    return [_from_item(item, f"prompts[{i}]") for i, item in enumerate(document)]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines with their 1-based numbers."""
    for number, line in enumerate(_NEWLINE.split(text), start=1):
        if line.strip():
            yield number, line


def _jsonl_entries(text: str) -> list[_Raw]:
    entries = []
    for number, line in _lines(text):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(
                f"line {number}: not valid JSON at column {exc.colno}: {exc.msg}", field=f"line {number}"
            ) from None
        entries.append(_from_item(item, f"line {number}"))
    return entries


def _csv_entries(text: str) -> list[_Raw]:
    try:
        return _read_csv(text)
    except csv.Error as exc:  # e.g. a cell over the csv module's field size limit
        raise InvalidRequestError(f"prompts: not a readable CSV file: {exc}", field="prompts") from None


def _read_csv(text: str) -> list[_Raw]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    columns = [cell.strip().lower() for cell in header or []]
    if "prompt" not in columns:
        found = ", ".join(_cut(c, 30) for c in (header or [])) or "none"
        raise InvalidRequestError(
            f'line 1: the CSV header has no "prompt" column (columns: {found}); '
            "add a header row with prompt and optionally category",
            field="line 1",
        )
    prompt_at = columns.index("prompt")
    category_at = columns.index("category") if "category" in columns else None
    entries = []
    start = reader.line_num + 1  # a quoted cell may span lines: a row's number is where it starts
    for row in reader:
        number, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        field = f"line {number}"
        prompt = row[prompt_at] if prompt_at < len(row) else None
        category = row[category_at] if category_at is not None and category_at < len(row) else None
        entries.append((field, prompt, category, field))
    return entries


def _text_entries(text: str) -> list[_Raw]:
    return [
        (f"line {number}", line, None, f"line {number}")
        for number, line in _lines(text)
        if not line.lstrip().startswith("#")
    ]


def _looks_like_jsonl(text: str) -> bool:
    """Every non-blank line is a JSON string or object (and there is one)."""
    seen = False
    for _, line in _lines(text):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            return False
        if not isinstance(item, str | dict):
            return False
        seen = True
    return seen


def _has_prompt_header(text: str) -> bool:
    first = next((line for _, line in _lines(text)), "")
    try:
        header = next(csv.reader([first]), [])
    except csv.Error:
        return False
    return "prompt" in (cell.strip().lower() for cell in header)


def _sniff(text: str) -> list[_Raw]:
    body = text.strip()
    if body[:1] in ("[", "{"):
        try:
            json.loads(body)
        except json.JSONDecodeError as exc:
            if not _looks_like_jsonl(text) and body[-1:] in ("]", "}"):
                # Shaped like a JSON document but broken: say where, rather than import its lines.
                raise _json_error(exc, "prompts") from None
        else:
            return _json_entries(text)
    if _looks_like_jsonl(text):
        return _jsonl_entries(text)
    if _has_prompt_header(text):
        return _csv_entries(text)
    return _text_entries(text)


def _check(raw: _Raw, limits: Limits, max_prompt_chars: int) -> PromptEntry:
    field, prompt, category, category_field = raw
    if prompt is None:
        raise InvalidRequestError(f"{field}: no prompt", field=field)
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"{field}: {_cut(json.dumps(prompt))} is not a string", field=field)
    prompt = prompt.strip()
    if not prompt:
        raise InvalidRequestError(f"{field}: the prompt is empty", field=field)
    if len(prompt) > max_prompt_chars:
        raise InvalidRequestError(
            f"{field}: {_cut(prompt)} is {len(prompt)} characters, over the limit of "
            f"{max_prompt_chars} (max_prompt_chars); shorten the prompt",
            field=field,
        )
    limits.check_prompt(prompt, field)  # control characters, as for every prompt
    if category is not None and not isinstance(category, str):
        raise InvalidRequestError(
            f"{category_field}: {_cut(json.dumps(category))} is not a string", field=category_field
        )
    return PromptEntry(prompt=prompt, category=normalize_category(category, category_field))


def parse_prompt_set(
    data: bytes,
    content_type: str | None,
    *,
    max_prompts: int = MAX_PROMPTS,
    max_prompt_chars: int = DEFAULT_LIMITS.max_prompt_chars,
) -> list[PromptEntry]:
    """The prompts of an uploaded file, in file order.

    ``content_type`` picks the format: JSON (a list of strings or of ``{"prompt", "category"}``
    objects, or ``{"prompts": [...]}``), JSON Lines (one string or object a line), CSV (a header
    row with ``prompt`` and optionally ``category``) or plain text (one prompt a line; blank lines
    and ``#`` comments skipped). Any other type, or none, is sniffed from the bytes in that order.
    The file must be UTF-8 (a BOM is fine); prompts are stripped of surrounding whitespace and
    held to ``max_prompt_chars`` (the server's limit); a category defaults to ``general``.
    Raises :class:`~plantain.errors.InvalidRequestError` naming the entry at fault.
    """
    text = _decode(data)
    kind = _media_type(content_type)
    if kind in _JSON_TYPES:
        raw = _json_entries(text)
    elif kind in _JSONL_TYPES:
        raw = _jsonl_entries(text)
    elif kind in _CSV_TYPES:
        raw = _csv_entries(text)
    elif kind in _TEXT_TYPES:
        raw = _text_entries(text)
    else:
        raw = _sniff(text)
    if not raw:
        raise InvalidRequestError(
            "prompts: the prompt set has no prompts; upload a file with at least one", field="prompts"
        )
    if len(raw) > max_prompts:
        raise InvalidRequestError(
            f"prompts: {len(raw)} prompts is over the limit of {max_prompts} per set (max_prompts); "
            "split the file into smaller sets",
            field="prompts",
        )
    limits = Limits(max_prompt_chars=max_prompt_chars)
    return [_check(entry, limits, max_prompt_chars) for entry in raw]
