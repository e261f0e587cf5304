"""The planner stage's work around grounding and conversations: writing web-search queries (and the
fallback when the model writes none), using what the search found in the rewrite, showing the
input images to a model that sees them, and deciding which earlier image an edit means. Scripted
fake models check what each generation is asked and what becomes of its answer; the tiny
random-weight checkpoint runs each new generation end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from tests.planner.fakes import Scripted, in_turn

from plantain.planner import prompts
from plantain.planner.stage import MAX_QUERY_CHARS, Planner, Queries, fallback_query, parse_queries
from plantain.settings import Settings
from plantain.testing import make_input
from plantain.types import ConversationTurn, ImageRequest


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, planner_model="tiny", planner_max_tokens=16)


def planner(settings: Settings, *answers: str, sees: bool = False) -> tuple[Planner, Scripted]:
    model = Scripted(settings, in_turn(*answers), sees=sees)
    return Planner(settings, model), model


# --- search queries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Eiffel Tower at night\nParis skyline", ("Eiffel Tower at night", "Paris skyline")),
        (
            "1. Eiffel Tower\n2) Paris skyline\n3. Seine river",
            ("Eiffel Tower", "Paris skyline", "Seine river"),
        ),
        ("- Eiffel Tower\n* Paris skyline\n• Seine", ("Eiffel Tower", "Paris skyline", "Seine")),
        ('"Eiffel Tower"\n\u201cParis skyline\u201d\n`Seine`', ("Eiffel Tower", "Paris skyline", "Seine")),
        ("Query 1: Eiffel Tower\nquery: Paris", ("Eiffel Tower", "Paris")),
        ("Eiffel Tower\n\n  eiffel   tower \nEiffel Tower", ("Eiffel Tower",)),
        ("a\nb\nc\nd\ne", ("a", "b", "c")),  # the limit
        ("<think>\n\n</think>\n\nEiffel Tower<|im_end|>", ("Eiffel Tower",)),
        ("3.5 inch floppy disk", ("3.5 inch floppy disk",)),  # a number, not a list mark
        ("东京塔 夜景\nx" + "y" * MAX_QUERY_CHARS, ("东京塔 夜景",)),  # any script; over-long dropped
    ],
)
def test_queries_are_parsed_one_per_line(written: str, expected: tuple[str, ...]) -> None:
    assert parse_queries(written, limit=3) == expected


@pytest.mark.parametrize("noise", ["", "  \n\n", "DDDDDDDD", "D" * 300, "#$%&!?@@@ ;;;", '1.\n-\n""'])
def test_noise_falls_back_to_the_prompt(settings: Settings, noise: str) -> None:
    stage, model = planner(settings, noise)
    result = stage.queries(ImageRequest(prompt="  the Golden Gate Bridge\n in fog "))
    assert result.queries == ("the Golden Gate Bridge in fog",) and result.fallback
    assert (result.input_tokens, result.output_tokens) == (10, 3) and result.seconds >= 0
    assert len(model.calls) == 1


def test_the_queries_generation_asks_for_at_most_the_limit(settings: Settings) -> None:
    stage, model = planner(settings, "1. Golden Gate Bridge\n2. San Francisco fog\n3. Alcatraz")
    result = stage.queries(ImageRequest(prompt="the Golden Gate Bridge in fog"), limit=2)
    assert result == Queries(
        queries=("Golden Gate Bridge", "San Francisco fog"),
        seconds=result.seconds,
        input_tokens=10,
        output_tokens=3,
        fallback=False,
    )
    (call,) = model.calls
    assert call.system == prompts.queries_system(2) and "up to 2" in call.system
    assert call.user == "Request: the Golden Gate Bridge in fog" and call.images == ()
    with pytest.raises(ValueError, match="limit"):
        stage.queries(ImageRequest(prompt="a fox"), limit=0)


def test_the_fallback_query_is_cut_at_a_word_boundary() -> None:
    assert fallback_query("  a  red\tfox \n") == "a red fox"
    words = " ".join(["word"] * 60)  # 299 characters
    cut = fallback_query(words)
    assert len(cut) <= MAX_QUERY_CHARS and cut == " ".join(["word"] * 40)  # 199 characters
    exact = "a" * 195 + " bbbb" + " cc"  # a word ending exactly at 200 stays whole
    assert fallback_query(exact) == "a" * 195 + " bbbb"
    assert fallback_query("x" * 500) == "x" * MAX_QUERY_CHARS  # one long word: cut inside it


# --- facts in the rewrite --------------------------------------------------------------------------


def test_facts_go_into_the_rewrite_and_briefly_into_the_answer(settings: Settings) -> None:
    stage, model = planner(settings, "The Golden Gate Bridge, International Orange.", "Here it is.")
    facts = [f"Fact {number}: " + "orange " * 60 for number in range(1, 11)]
    stage.plan(ImageRequest(prompt="the Golden Gate Bridge"), "flux2-klein", facts=facts)
    rewrite, answer = model.calls
    assert prompts.USE_THE_FACTS in rewrite.system and prompts.GENERATE_FRAME in rewrite.system
    head, found = rewrite.user.split("\n\nWhat a web search found:\n")
    assert head == "the Golden Gate Bridge"
    lines = found.splitlines()
    assert len(lines) == prompts.MAX_FACTS and lines[0].startswith("1. Fact 1: orange")
    assert all(len(line) <= len("8. ") + prompts.MAX_FACT_CHARS for line in lines)
    assert answer.system == prompts.answer_system(facts=True) != prompts.ANSWER_SYSTEM
    assert "Looked up:\n1. Fact 1" in answer.user and "4. Fact" not in answer.user


def test_without_facts_the_rewrite_is_as_before(settings: Settings) -> None:
    stage, model = planner(settings, "A fox.", "Here it is.")
    stage.plan(ImageRequest(prompt="a fox"), "flux1", facts=["", "  "])  # blank facts are none
    stage.plan(ImageRequest(prompt="a fox"), "flux1")
    assert model.calls[0] == model.calls[2]
    assert model.calls[0].system == prompts.rewrite_system("flux1", edit=False)
    assert model.calls[0].user == "a fox" and "web search" not in model.calls[0].user
    assert model.calls[1].system == prompts.ANSWER_SYSTEM and "Looked up" not in model.calls[1].user


def test_the_plan_accounts_for_the_queries_generation(settings: Settings) -> None:
    stage, _ = planner(settings, "Golden Gate Bridge", "A bridge in fog.", "Here it is.")
    request = ImageRequest(prompt="the Golden Gate Bridge in fog")
    asked = stage.queries(request)
    asked = Queries(asked.queries, seconds=5.0, input_tokens=100, output_tokens=7, fallback=False)
    result = stage.plan(request, "flux1", facts=["Golden Gate Bridge: a red bridge"], queries=asked)
    assert (result.input_tokens, result.output_tokens) == (100 + 20, 7 + 6)
    assert 5.0 < result.seconds < 6.0
    alone = stage.plan(request, "flux1")
    assert (alone.input_tokens, alone.output_tokens) == (20, 6) and alone.seconds < 1.0


# --- the images, for a model that sees them --------------------------------------------------------


def test_a_seeing_model_gets_the_images_and_the_vision_frame(settings: Settings) -> None:
    stage, model = planner(settings, "Make the sign blue; keep 'OPEN'.", "Done.", sees=True)
    images = [Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")]
    request = ImageRequest(prompt="make the sign blue", images=(make_input(), make_input()))
    stage.plan(request, "qwen-image-edit", images=images)
    rewrite, answer = model.calls
    assert rewrite.images == tuple(images) and answer.images == ()
    assert rewrite.system == prompts.rewrite_system("qwen-image-edit", edit=True, sees=True)
    assert prompts.VISION_EDIT_FRAME in rewrite.system and prompts.EDIT_FRAME not in rewrite.system
    assert rewrite.user == "Edit request (2 input images): make the sign blue"


def test_a_seeing_model_reads_images_beside_a_new_image_request(settings: Settings) -> None:
    stage, model = planner(settings, sees=True)
    stage.plan(ImageRequest(prompt="a red bridge"), "flux1", images=[Image.new("RGB", (8, 8))])
    rewrite = model.calls[0]
    assert prompts.GENERATE_FRAME in rewrite.system and prompts.SEES_IMAGES in rewrite.system
    assert len(rewrite.images) == 1


@pytest.mark.parametrize("sees", [False, True])
def test_images_go_only_to_a_model_that_sees_and_only_when_given(settings: Settings, sees: bool) -> None:
    request = ImageRequest(prompt="make it blue", images=(make_input(),))
    stage, model = planner(settings, sees=sees)
    stage.plan(request, "flux2-klein", images=[Image.new("RGB", (8, 8))])
    stage.plan(request, "flux2-klein")  # a seeing model, but no images given
    with_images, _, without, _ = model.calls
    assert len(with_images.images) == (1 if sees else 0) and without.images == ()
    expected = prompts.VISION_EDIT_FRAME if sees else prompts.EDIT_FRAME
    assert with_images.system.startswith(expected) and without.system.startswith(prompts.EDIT_FRAME)


# --- which earlier image an edit means ---------------------------------------------------------


CHAT = (
    ConversationTurn(role="user", text="a red car"),
    ConversationTurn(role="model", text="", images=1),
    ConversationTurn(role="user", text="and a blue boat", images=0),
    ConversationTurn(role="model", text="Here are two boats.", images=2),
)


@pytest.mark.parametrize(
    ("answer", "index", "decided"),
    [
        ("2", 1, True),
        ("Image 3.", 2, True),
        ("1\n", 0, True),
        ("0", None, True),  # a new image
        ("4", None, False),  # out of range: there are three images
        ("DDDDDDDD", None, False),
        ("x7Q", None, False),  # digits inside noise are not an answer
        ("", None, False),
    ],
)
def test_resolve_edit_reads_the_models_number(
    settings: Settings, answer: str, index: int | None, decided: bool
) -> None:
    stage, model = planner(settings, answer)
    resolved = stage.resolve_edit("make the car green", CHAT)
    assert (resolved.index, resolved.decided) == (index, decided)
    assert (resolved.input_tokens, resolved.output_tokens) == (10, 3)
    (call,) = model.calls
    assert call.system == prompts.RESOLVE_SYSTEM and call.max_new_tokens <= 8
    assert call.user == (
        "Chat:\n"
        '1. user: "a red car" [no image]\n'
        "2. model: [image 1]\n"
        '3. user: "and a blue boat" [no image]\n'
        '4. model: "Here are two boats." [image 2] [image 3]\n'
        "\n"
        'New message: "make the car green"'
    )


def test_resolve_edit_without_earlier_images_asks_nothing(settings: Settings) -> None:
    stage, model = planner(settings, "1")
    resolved = stage.resolve_edit("make it blue", [ConversationTurn(role="user", text="hello")])
    assert (resolved.index, resolved.decided, resolved.input_tokens) == (None, True, 0)
    assert model.calls == []


def test_resolve_edit_lists_only_the_last_turns_each_cut(settings: Settings) -> None:
    turns = [
        ConversationTurn(
            role="user" if number % 2 else "model", text=f"turn {number} " + "x " * 200, images=1
        )
        for number in range(1, 31)
    ]
    stage, model = planner(settings, "30")
    resolved = stage.resolve_edit("change the last one", turns)
    assert (resolved.index, resolved.decided) == (29, True)  # numbered over the whole chat
    lines = model.calls[0].user.splitlines()
    listed = lines[1 : 2 + prompts.MAX_TURNS]
    assert listed[0] == "(18 earlier messages left out)"
    assert listed[1].startswith('19. user: "turn 19 x') and listed[1].endswith("[image 19]")
    assert listed[-1].startswith("30. model:") and listed[-1].endswith("[image 30]")
    assert all(len(line) < prompts.MAX_TURN_CHARS + 40 for line in listed)


# --- the real path, on the tiny random-weight checkpoint ----------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Planner:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("planner"), planner_model="tiny", planner_max_tokens=8
    )
    return Planner(settings)


def test_tiny_writes_queries_end_to_end(tiny: Planner) -> None:
    result = tiny.queries(ImageRequest(prompt="the Eiffel Tower at night, seen from the Seine"))
    assert 1 <= len(result.queries) <= 3 and all(result.queries)
    assert all(len(query) <= MAX_QUERY_CHARS and "\n" not in query for query in result.queries)
    assert result.input_tokens > len(prompts.queries_system(3).encode()) and 1 <= result.output_tokens <= 8
    assert result.seconds > 0
    if result.fallback:  # random weights write noise, so the prompt itself is searched
        assert result.queries == ("the Eiffel Tower at night, seen from the Seine",)


def test_tiny_resolves_an_edit_end_to_end(tiny: Planner) -> None:
    resolved = tiny.resolve_edit("make it blue", CHAT)
    assert resolved.index is None or 0 <= resolved.index < 3  # one of the chat's three images
    assert resolved.decided or resolved.index is None  # undecided: the caller keeps its own rule
    assert resolved.input_tokens > len(prompts.RESOLVE_SYSTEM.encode()) and 1 <= resolved.output_tokens <= 8
    assert resolved.seconds > 0
