"""Arena prompt sets: every upload format (by Content-Type or sniffed), categories, and errors that
name the entry at fault, its value and the limit."""

from __future__ import annotations

import json

import pytest

from plantain.arena.prompt_sets import (
    DEFAULT_CATEGORY,
    SUGGESTED_CATEGORIES,
    PromptEntry,
    normalize_category,
    parse_prompt_set,
)
from plantain.errors import InvalidRequestError
from plantain.limits import Limits

CAT = PromptEntry("a cat on a sofa", "general")
LIGHTHOUSE = PromptEntry("a lighthouse at dusk, oil paint", "landscape")
SIGN = PromptEntry('a shop sign reading "OPEN"', "text-rendering")

JSON_LIST = json.dumps(
    [
        "a cat on a sofa",
        {"prompt": "a lighthouse at dusk, oil paint", "category": "landscape"},
        {"prompt": 'a shop sign reading "OPEN"', "category": "Text Rendering", "id": 7},
    ]
).encode()
JSONL = (
    b'"a cat on a sofa"\n\n{"prompt": "a lighthouse at dusk, oil paint", "category": "landscape"}\r\n'
    b'{"prompt": "a shop sign reading \\"OPEN\\"", "category": "text_rendering"}\n'
)
CSV = (
    b'id,Prompt,category\r\n1,a cat on a sofa,\r\n2,"a lighthouse at dusk, oil paint",landscape\r\n'
    b'3,"a shop sign reading ""OPEN""",text-rendering\r\n,,\r\n'
)
TEXT = b'# my prompts\n  a cat on a sofa  \n\n   # indented comment\na shop sign reading "OPEN"\n'


def error(data: bytes, content_type: str | None = None, **limits: int) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse_prompt_set(data, content_type, **limits)
    assert info.value.status == 400
    assert info.value.message.startswith(f"{info.value.field}:")
    return info.value


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (JSON_LIST, "application/json"),
        (JSON_LIST, "application/json; charset=utf-8"),
        (json.dumps({"prompts": json.loads(JSON_LIST)}).encode(), "application/json"),
        (JSONL, "application/x-ndjson"),
        (JSONL, "application/jsonl"),
        (CSV, "text/csv"),
        (CSV, "Text/CSV; charset=UTF-8"),
    ],
)
def test_structured_formats(data: bytes, content_type: str) -> None:
    assert parse_prompt_set(data, content_type) == [CAT, LIGHTHOUSE, SIGN]


def test_plain_text_one_prompt_a_line() -> None:
    assert parse_prompt_set(TEXT, "text/plain") == [CAT, PromptEntry('a shop sign reading "OPEN"', "general")]


def test_text_plain_is_taken_at_its_word() -> None:
    assert parse_prompt_set(b'["a cat"]\n{"prompt": "a dog"}\n', "text/plain") == [
        PromptEntry('["a cat"]', "general"),
        PromptEntry('{"prompt": "a dog"}', "general"),
    ]


def test_csv_cells_with_line_breaks() -> None:
    data = b'prompt\n"a poster,\nwith two lines"\nsecond\n'
    assert [e.prompt for e in parse_prompt_set(data, "text/csv")] == ["a poster,\nwith two lines", "second"]


def test_a_single_json_object_is_a_set_of_one() -> None:
    assert parse_prompt_set(b'{"prompt": "a cat on a sofa"}', "application/json") == [CAT]


@pytest.mark.parametrize(
    "content_type", [None, "", "application/octet-stream", "application/x-www-form-urlencoded"]
)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (JSON_LIST, [CAT, LIGHTHOUSE, SIGN]),
        (b"  \n" + JSON_LIST, [CAT, LIGHTHOUSE, SIGN]),
        (JSONL, [CAT, LIGHTHOUSE, SIGN]),
        (
            b'{"prompt": "a cat on a sofa"}\n{"prompt": "a dog", "category": "portrait"}\n',
            [CAT, PromptEntry("a dog", "portrait")],
        ),
        (CSV, [CAT, LIGHTHOUSE, SIGN]),
        (TEXT, [CAT, PromptEntry('a shop sign reading "OPEN"', "general")]),
        (
            b"[draft] a cat\n[final] a dog\n",
            [PromptEntry("[draft] a cat", "general"), PromptEntry("[final] a dog", "general")],
        ),
        (
            b"a cat, at night\na dog\n",
            [PromptEntry("a cat, at night", "general"), PromptEntry("a dog", "general")],
        ),
    ],
)
def test_sniffed_formats(data: bytes, expected: list[PromptEntry], content_type: str | None) -> None:
    assert parse_prompt_set(data, content_type) == expected


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (JSON_LIST, "application/json"),
        (JSONL, None),
        (CSV, "text/csv"),
        (b"prompt\na cat on a sofa\n", "text/csv"),
        (b"prompt\na cat on a sofa\n", None),
        (TEXT, None),
    ],
)
def test_a_byte_order_mark_is_fine(data: bytes, content_type: str | None) -> None:
    assert parse_prompt_set(b"\xef\xbb\xbf" + data, content_type) == parse_prompt_set(data, content_type)


def test_the_default_prompt_limit_is_the_servers() -> None:
    longest = "a" * Limits().max_prompt_chars
    assert parse_prompt_set(longest.encode(), "text/plain") == [PromptEntry(longest, "general")]
    err = error(longest.encode() + b"a", "text/plain")
    assert (
        f"{len(longest) + 1} characters, over the limit of {len(longest)} (max_prompt_chars)" in err.message
    )


@pytest.mark.parametrize(
    ("data", "content_type", "field", "message"),
    [
        (b"", None, "prompts", "the prompt set has no prompts"),
        (b"# only\n\n# comments\n", "text/plain", "prompts", "the prompt set has no prompts"),
        (b"[]", "application/json", "prompts", "the prompt set has no prompts"),
        (b"prompt,category\n", "text/csv", "prompts", "the prompt set has no prompts"),
        (b"caf\xe9\n", None, "prompts", "not UTF-8 (byte 3 is 0xe9)"),
        (b"\xef\xbb\xbfa\nb\x81\n", "text/plain", "prompts", "not UTF-8 (byte 6 is 0x81)"),
        (
            b'[\n  "a cat",\n  "a dog"\n  "a cow"\n]',
            "application/json",
            "prompts",
            "not valid JSON at line 4 column 3",
        ),
        (b'[\n  "a cat",\n  "a dog"\n  "a cow"\n]', None, "prompts", "not valid JSON at line 4 column 3"),
        (b'{"prompts": "a cat"}', "application/json", "prompts", "'\"a cat\"' is not a list of prompts"),
        (b'{"items": []}', "application/json", "prompts", 'must have a "prompts" list'),
        (b'["a cat", 42]', "application/json", "prompts[1]", "'42' is not a prompt"),
        (b'["a cat", "  "]', "application/json", "prompts[1]", "the prompt is empty"),
        (b'["a", {"prompt": ""}]', "application/json", "prompts[1].prompt", "the prompt is empty"),
        (
            b'["a", {"text": "a dog"}]',
            "application/json",
            "prompts[1].prompt",
            "missing; the object has the keys 'text'",
        ),
        (b'[{"prompt": ["a"]}]', "application/json", "prompts[0].prompt", "'[\"a\"]' is not a string"),
        (
            b'[{"prompt": "a", "category": 3}]',
            "application/json",
            "prompts[0].category",
            "'3' is not a string",
        ),
        (
            b'[{"prompt": "a", "category": "cats/dogs"}]',
            "application/json",
            "prompts[0].category",
            "'cats/dogs' is not a category name",
        ),
        (b'"a cat"\n\n{"prompt": "a dog"\n', "application/x-ndjson", "line 3", "not valid JSON at column 19"),
        (b'"a cat"\n7\n', "application/jsonl", "line 2", "'7' is not a prompt"),
        (
            b"title,category\na cat,portrait\n",
            "text/csv",
            "line 1",
            "no \"prompt\" column (columns: 'title', 'category')",
        ),
        (b'prompt,category\n"a\nb",portrait\n  ,food\n', "text/csv", "line 4", "the prompt is empty"),
        (b"id,prompt\n1,a cat\n2\n", "text/csv", "line 3", "no prompt"),
        (
            b"prompt,category\na cat,Not A Category!\n",
            None,
            "line 2",
            "'Not A Category!' is not a category name",
        ),
        (b"a cat\na \x07 dog\n", "text/plain", "line 2", "contains the control character U+0007"),
    ],
)
def test_errors_name_the_entry(data: bytes, content_type: str | None, field: str, message: str) -> None:
    err = error(data, content_type)
    assert err.field == field
    assert message in err.message


def test_too_many_prompts_names_the_limit() -> None:
    data = b"\n".join(b"prompt %d" % i for i in range(4))
    assert len(parse_prompt_set(data, None, max_prompts=4)) == 4
    err = error(data, None, max_prompts=3)
    assert err.field == "prompts"
    assert "4 prompts is over the limit of 3 per set (max_prompts)" in err.message
    assert len(parse_prompt_set(b"x\n" * 1000, None)) == 1000
    assert "1001 prompts is over the limit of 1000" in error(b"x\n" * 1001).message


def test_too_long_prompt_names_entry_value_and_limit() -> None:
    long = "a very detailed prompt " * 10
    err = error(json.dumps(["ok", {"prompt": long}]).encode(), "application/json", max_prompt_chars=100)
    assert err.field == "prompts[1].prompt"
    assert repr(long.strip()[:60] + "…") in err.message
    assert f"is {len(long.strip())} characters, over the limit of 100 (max_prompt_chars)" in err.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "general"),
        ("", "general"),
        ("  ", "general"),
        ("Portrait", "portrait"),
        ("text_rendering", "text-rendering"),
        (" Text  Rendering ", "text-rendering"),
        ("team-42", "team-42"),
        ("3d", "3d"),
        ("a" * 40, "a" * 40),
    ],
)
def test_normalize_category(value: str | None, expected: str) -> None:
    assert normalize_category(value, "category") == expected


@pytest.mark.parametrize("value", ["-portrait", "a" * 41, "café", "cats/dogs", "a.b"])
def test_bad_category_names_field_value_and_rule(value: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        normalize_category(value, "input.category")
    assert info.value.field == "input.category"
    assert info.value.message.startswith(f"input.category: {value!r} is not a category name")
    assert "1 to 40 lowercase letters, digits and hyphens" in info.value.message


def test_suggested_categories_are_valid_names() -> None:
    assert DEFAULT_CATEGORY in SUGGESTED_CATEGORIES
    assert [normalize_category(c, "category") for c in SUGGESTED_CATEGORIES] == list(SUGGESTED_CATEGORIES)
