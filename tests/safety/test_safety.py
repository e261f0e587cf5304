"""The safety stage on its own: levels, categories, term matching and the image classifier (a tiny
random-weight ViT saved and loaded as a real checkpoint)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from plantain.engines.checkpoints import install_in_hub_cache
from plantain.errors import ConfigurationError, ContentBlockedError, MissingWeightsError
from plantain.safety.classifier import TransformersImageClassifier
from plantain.safety.policy import DEFAULT_THRESHOLDS, SafetyPolicy
from plantain.safety.terms import BUILTIN_TERMS, CATEGORY_LEVELS, Term, build_categories
from plantain.safety.tiny import build_classifier
from plantain.settings import Settings
from plantain.types import SAFETY_LEVELS, ImageRequest, SafetyLevel

# One prompt per built-in category, and the levels that block it.
EXAMPLES: dict[str, tuple[str, set[str]]] = {
    "sexual/minors": ("a nude child", {"strict", "standard", "relaxed"}),
    "sexual": ("a naked man on a beach", {"strict", "standard"}),
    "violence/graphic": ("a decapitated knight, very gory", {"strict", "standard"}),
    "self-harm": ("a girl cutting herself", {"strict", "standard"}),
    "hate": ("a crowd shouting sieg heil", {"strict", "standard"}),
    "violence": ("a soldier with a gun", {"strict"}),
    "illicit": ("a table covered in cocaine", {"strict"}),
}


def policy(**fields: Any) -> SafetyPolicy:
    return SafetyPolicy.from_settings(Settings(**fields))


def blocked_category(screen: SafetyPolicy, prompt: str, level: SafetyLevel) -> str | None:
    try:
        screen.screen_prompt(prompt, level)
    except ContentBlockedError as exc:
        assert exc.stage == "prompt" and exc.field == "prompt"
        return exc.category
    return None


def test_every_builtin_category_has_an_example_and_a_level() -> None:
    assert set(EXAMPLES) == set(BUILTIN_TERMS) == set(CATEGORY_LEVELS)


@pytest.mark.parametrize("category", list(EXAMPLES))
@pytest.mark.parametrize("level", SAFETY_LEVELS)
def test_each_level_screens_the_categories_of_the_documented_table(category: str, level: SafetyLevel) -> None:
    prompt, blocking = EXAMPLES[category]
    expected = category if level in blocking else None
    assert blocked_category(policy(), prompt, level) == expected


@pytest.mark.parametrize("level", SAFETY_LEVELS)
def test_an_ordinary_prompt_passes_at_every_level(level: SafetyLevel) -> None:
    prompt = "A skilled therapist in Sussex analyses a cocktail; grapes, a gunwale and a killer whale"
    assert blocked_category(policy(), prompt, level) is None


@pytest.mark.parametrize(
    "disguised",
    [
        "a NAKED man",
        "a ｎａｋｅｄ man",  # fullwidth letters
        "a na\u200bked man",  # zero-width space inside the word
        "a na\u00adked man",  # soft hyphen
        "a nákéd man",  # accents
        "a nak\u0301ed man",  # a combining mark
        "a n4k3d man",  # look-alike digits
        "a n a k e d man",  # spaced-out letters
        "a n.a.k.e.d man",
        "a \u039d\u0391\u039a\u0395D man",  # Greek capitals drawn like Latin ones
        "a n\u0430k\u0435d man",  # Cyrillic a and e
    ],
)
def test_trivial_disguises_do_not_hide_a_term(disguised: str) -> None:
    assert blocked_category(policy(), disguised, "standard") == "sexual"


def test_prefix_terms_match_any_ending_and_combinations_need_every_part() -> None:
    screen = policy()
    assert blocked_category(screen, "the dismembered statue", "standard") == "violence/graphic"
    assert blocked_category(screen, "a child drawing a cat", "relaxed") is None
    assert blocked_category(screen, "a photo of a naked mole rat", "relaxed") is None
    assert blocked_category(screen, "Kids, topless, on a beach", "relaxed") == "sexual/minors"


def test_the_default_level_applies_to_a_request_without_one_and_looser_asks_are_raised_to_the_minimum() -> (
    None
):
    screen = policy(safety_level="strict", safety_min_level="standard")
    assert screen.level_for(None) == "strict"
    assert screen.level_for("standard") == "standard"
    assert screen.level_for("relaxed") == screen.level_for("off") == "standard"
    assert policy().level_for("off") == "relaxed"
    assert policy(safety_level="off", safety_min_level="off").level_for(None) == "off"


def test_admit_fixes_the_level_on_the_request_and_refuses_a_blocked_prompt() -> None:
    screen = policy()
    admitted = screen.admit(ImageRequest(prompt="a naked man", safety="off"))
    assert admitted.safety == "relaxed"  # off is below the minimum: raised to it, so this passes
    with pytest.raises(ContentBlockedError) as caught:
        screen.admit(ImageRequest(prompt="a naked man"))
    assert "prompt:" in caught.value.message and "sexual" in caught.value.message
    assert "standard" in caught.value.message  # the level that applied


def test_a_default_looser_than_the_minimum_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"safety_level.*'off'.*safety_min_level 'relaxed'"):
        policy(safety_level="off")


def test_settings_replace_add_and_turn_off_term_lists() -> None:
    screen = policy(
        safety_terms={"sexual": [], "brand": ["acme corp*"], "violence": ["laser sword"]},
        safety_category_levels={"violence": "standard"},
    )
    assert blocked_category(screen, "a naked man", "strict") is None  # [] turns the list off
    assert blocked_category(screen, "Acme Corporation logo", "standard") == "brand"  # new: standard
    assert blocked_category(screen, "Acme Corporation logo", "relaxed") is None
    assert blocked_category(screen, "a laser sword duel", "standard") == "violence"
    assert blocked_category(screen, "a soldier with a gun", "strict") is None  # the list was replaced


def test_a_term_with_an_empty_part_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"safety_terms.*'gore & '"):
        build_categories({"violence": ["gore & "]}, {})


def test_the_settings_thresholds_default_to_the_policy_defaults() -> None:
    assert Settings().safety_image_thresholds == DEFAULT_THRESHOLDS
    with pytest.raises(ConfigurationError, match=r"safety_image_thresholds.*'lax'"):
        policy(safety_image_thresholds={"lax": 0.5})


@given(st.text(max_size=300))
def test_any_text_is_screened_without_error_and_normalising_is_stable(text: str) -> None:
    screen = policy()
    for level in SAFETY_LEVELS:
        with contextlib.suppress(ContentBlockedError):
            screen.screen_prompt(text, level)


@given(st.sampled_from(["\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad"]), st.integers(1, 4))
def test_invisible_characters_anywhere_in_a_term_do_not_hide_it(invisible: str, at: int) -> None:
    word = "decapitated"
    assert (
        blocked_category(policy(), f"a {word[:at]}{invisible}{word[at:]} king", "standard")
        == "violence/graphic"
    )


def test_terms_are_parsed_into_parts_of_alternatives() -> None:
    term = Term.parse("Child | KIDS & nud*")
    assert term.parts == ((" child ", " kids "), (" nud",))


# --- the image classifier ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("classifier") / "random"
    build_classifier(directory, seed=3)
    return directory


@pytest.fixture(scope="module")
def pinned_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every image scores sigmoid(1) = 0.731 nsfw."""
    directory = tmp_path_factory.mktemp("classifier") / "pinned"
    build_classifier(directory, nsfw_logit=1.0)
    return directory


def images() -> list[Image.Image]:
    return [Image.new("RGB", (96, 64), (200, 30, 30)), Image.new("RGBA", (40, 80), (0, 0, 0, 0))]


def test_the_transformers_classifier_loads_a_saved_checkpoint_and_scores_each_image(
    random_classifier: Path,
) -> None:
    classifier = TransformersImageClassifier(str(random_classifier))
    assert classifier.labels == ("normal", "nsfw")
    scores = classifier.scores(images())
    assert len(scores) == 2
    for row in scores:
        assert set(row) == {"normal", "nsfw"} and sum(row.values()) == pytest.approx(1.0)


def test_a_pinned_head_gives_every_image_the_same_score(pinned_classifier: Path) -> None:
    scores = TransformersImageClassifier(str(pinned_classifier)).scores(images())
    assert [row["nsfw"] for row in scores] == pytest.approx([0.7311, 0.7311], abs=1e-4)


def test_the_classifier_loads_by_hub_id_from_the_hub_cache(random_classifier: Path, tmp_path: Path) -> None:
    install_in_hub_cache(random_classifier, "someone/nsfw-detector", tmp_path)
    classifier = TransformersImageClassifier("someone/nsfw-detector", cache_dir=tmp_path)
    assert classifier.labels == ("normal", "nsfw")


def test_a_classifier_that_is_not_there_is_missing_weights_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match=r"safety_classifier.*'someone/absent'"):
        TransformersImageClassifier("someone/absent", cache_dir=tmp_path).load()


def test_unsafe_labels_the_classifier_lacks_are_a_configuration_error(random_classifier: Path) -> None:
    screen = policy(safety_classifier=str(random_classifier), safety_unsafe_labels=["porn", "gore"])
    with pytest.raises(ConfigurationError, match=r"safety_unsafe_labels.*normal, nsfw"):
        screen.load()


@pytest.mark.parametrize(("threshold", "blocked"), [(0.0, True), (1.01, False)])
def test_thresholds_decide_whatever_random_weights_score(
    random_classifier: Path, threshold: float, blocked: bool
) -> None:
    screen = policy(safety_classifier=str(random_classifier), safety_image_thresholds={"standard": threshold})
    request = ImageRequest(prompt="a cat", safety="standard")
    if not blocked:
        screen.screen_images(images(), request)
        return
    with pytest.raises(ContentBlockedError) as caught:
        screen.screen_images(images(), request)
    assert caught.value.stage == "image" and caught.value.category == "nsfw"
    assert caught.value.message.startswith("output image 1 of 2:")


@pytest.mark.parametrize(("level", "blocked"), [("strict", True), ("standard", True), ("relaxed", False)])
def test_each_level_has_its_own_threshold(pinned_classifier: Path, level: SafetyLevel, blocked: bool) -> None:
    screen = policy(safety_classifier=str(pinned_classifier), safety_min_level="off")  # 0.731 nsfw
    assert screen.thresholds["relaxed"] > 0.731 > screen.thresholds["standard"]
    request = ImageRequest(prompt="a cat", safety=level)
    if blocked:
        with pytest.raises(ContentBlockedError, match=f"score 0.73, the limit at level {level}"):
            screen.screen_images(images(), request)
    else:
        screen.screen_images(images(), request)
    screen.screen_images(images(), ImageRequest(prompt="a cat", safety="off"))  # off screens nothing


def test_unsafe_previews_are_not_delivered(pinned_classifier: Path) -> None:
    screen = policy(safety_classifier=str(pinned_classifier))
    delivered: list[int] = []
    screen.safe_previews("standard", lambda index, image: delivered.append(index))(0, images()[0])
    screen.safe_previews("relaxed", lambda index, image: delivered.append(index))(1, images()[0])
    assert delivered == [1]


def test_a_stored_block_is_raised_again_as_an_output_block_with_its_category() -> None:
    from plantain.errors import ContentBlockedError, error_from_code

    error = error_from_code("content_blocked", "output image 1 of 1: blocked", None, "nsfw")
    assert isinstance(error, ContentBlockedError)
    assert (error.stage, error.category, error.status) == ("image", "nsfw", 400)
