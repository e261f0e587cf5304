"""A conversation's earlier turns as the core request carries them (dialects/conversation.py):
only a real choice is carried, the newest turns that fit, and nothing is read twice."""

from __future__ import annotations

from plantain.dialects.conversation import EarlierTurn, conversation_fields
from plantain.errors import InvalidImageError
from plantain.types import ConversationTurn, InputImage


def image(label: str) -> InputImage:
    return InputImage(data=label.encode(), label=label)


def read(label: str) -> tuple[str, object]:
    return (label, lambda: image(label))


def never(label: str) -> tuple[str, object]:
    def fail() -> InputImage:
        raise AssertionError(f"{label} was read again")

    return (label, fail)


def turns(*spec: tuple[str, str, list[tuple[str, object]]]) -> list[EarlierTurn]:
    return [EarlierTurn(role=role, text=text, images=images) for role, text, images in spec]  # type: ignore[arg-type]


def test_two_earlier_images_are_carried_with_the_turns_and_the_rules_count() -> None:
    earlier = turns(("user", "a red car", [read("a")]), ("model", "", [never("b")]))
    fields = conversation_fields(earlier, [image("b")], 1, max_images=14)
    assert fields["earlier"] == (image("a"), image("b"))  # the rule's image came from ``chosen``
    assert fields["history"] == (
        ConversationTurn(role="user", text="a red car", images=1),
        ConversationTurn(role="model", text="", images=1),
    )
    assert fields["from_history"] == 1


def test_no_choice_carries_nothing() -> None:
    assert conversation_fields(turns(("model", "", [read("a")])), [], 0, max_images=14) == {}
    assert conversation_fields(turns(("user", "hi", [])), [], 0, max_images=14) == {}


def test_an_image_by_url_or_an_unreadable_one_keeps_the_rule() -> None:
    by_url = ("u", lambda: InputImage(url="https://example.org/a.png", label="u"))
    assert conversation_fields(turns(("user", "", [read("a"), by_url])), [], 0, max_images=14) == {}

    def bad() -> InputImage:
        raise InvalidImageError("contents[0].parts[0].inlineData.data: not base64", field="contents")

    assert conversation_fields(turns(("user", "", [read("a"), ("x", bad)])), [], 0, max_images=14) == {}


def test_only_the_newest_turns_whose_images_fit_are_kept() -> None:
    earlier = turns(
        ("user", "old", [read("a"), read("b")]), ("model", "", [read("c")]), ("user", "", [read("d")])
    )
    fields = conversation_fields(earlier, [], 0, max_images=2)
    assert [turn.text for turn in fields["history"]] == ["", ""]  # the oldest turn would not fit
    assert fields["earlier"] == (image("c"), image("d"))
