"""Prompt term lists: the levels' order, the built-in categories and their lists, and matching.

Terms match whole words or phrases after normalisation (compatibility forms folded, case folded,
accents and invisible characters dropped, look-alike Cyrillic/Greek letters and digits read as
the Latin letters they imitate, spaced-out letters joined), using plain substring search over the
words: the one regular expression that sees user text is a single character class (linear), so no
input can make matching slow.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from plantain.errors import ConfigurationError
from plantain.types import SAFETY_LEVELS, SafetyLevel

RANK: dict[str, int] = {level: rank for rank, level in enumerate(SAFETY_LEVELS)}  # 0 = strictest

# The loosest level that still screens each built-in category (strict screens all of them).
CATEGORY_LEVELS: dict[str, SafetyLevel] = {
    "sexual/minors": "relaxed",
    "sexual": "standard",
    "violence/graphic": "standard",
    "self-harm": "standard",
    "hate": "standard",
    "violence": "strict",
    "illicit": "strict",
}
CUSTOM_CATEGORY_LEVEL: SafetyLevel = "standard"  # a category only the settings name


def strictest(levels: Iterable[SafetyLevel]) -> SafetyLevel:
    """The strictest of ``levels`` (at least one)."""
    return min(levels, key=lambda level: RANK[level])


# Term syntax: "a phrase" matches those whole words in a row; a final "*" matches any ending of
# the last word ("decapitat*"); "x|y" is either; "A & B" needs both somewhere in the prompt.
_MINORS = (
    "child|children|kid|kids|underage|preteen*|pre teen*|toddler*|infant*|schoolgirl*|schoolboy*|"
    "little girl*|little boy*|young girl*|young boy*|teen|teens|teenage*|loli|shota"
)
_SEXUAL = (
    "nude|nudes|naked|nudity|topless|porn*|sex|sexual|sexy|erotic*|explicit|nsfw|lingerie|undress*|"
    "genital*|hentai|seductive"
)
BUILTIN_TERMS: dict[str, tuple[str, ...]] = {
    "sexual/minors": (
        f"{_MINORS} & {_SEXUAL}",
        "lolicon",
        "shotacon",
        "jailbait",
        "child porn*",
        "child sexual abuse",
        "csam",
        "pedophil*",
        "paedophil*",
    ),
    "sexual": (
        "porn*",
        "hentai",
        "xxx",
        "nsfw",
        "nude|nudes|naked|nudity",
        "sex scene|explicit sex|having sex|sexual intercourse",
        "genital*|penis|vagina|vulva",
        "blowjob|handjob|masturbat*|orgasm*|orgy|orgies",
    ),
    "violence/graphic": (
        "gore|gory|gruesome",
        "decapitat*|dismember*|disembowel*|eviscerat*|mutilat*",
        "beheading|beheaded",
        "severed head*|severed limb*|entrails|spilled guts",
        "flayed|skinned alive",
    ),
    "self-harm": (
        "self harm*|selfharm*",
        "cutting myself|cutting herself|cutting himself|cut my wrists|slit wrists|slit her wrists",
        "kill myself|killing myself|commit suicide|committing suicide|suicide note",
        "hang myself|hanging herself|hanging himself",
        "pro ana|thinspiration",
    ),
    "hate": (
        "heil hitler|sieg heil",
        "white power|white supremac*",
        "ku klux klan|kkk",
        "ethnic cleansing",
        "nazi propaganda",
        "racial slur*",
    ),
    "violence": (
        "blood|bloody|bleeding",
        "gun|guns|gunshot*|rifle*|shooting",
        "stabbing|stabbed",
        "murder*|massacre*",
        "corpse*|dead body|dead bodies",
        "kill|killing|killed",
        "bomb|bombing|explosive*",
    ),
    "illicit": (
        "cocaine|heroin|methamphetamine|crystal meth",
        "smoking crack|snorting",
        "drug deal*",
    ),
}

# Digits and signs read as letters (p0rn, s3x, @ss): matched in a second reading of the prompt.
_LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# Cyrillic and Greek letters drawn like Latin ones (applied before case folding).
_CONFUSABLES = str.maketrans(
    dict(zip("АВЕКМНОРСТХУаеорсухіјѕІЈЅ", "ABEKMHOPCTXYaeopcyxijsIJS", strict=True))
    | dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοαικρ", "ABEZHIKMNOPTYXoaikp", strict=True))
)
_WORD = re.compile(r"[^\W_]+")  # one character class, no nesting: linear on any input


def _fold(text: str) -> str:
    """Compatibility forms folded, accents and invisible characters dropped (fullwidth letters,
    ligatures, combining marks and zero-width spaces cannot hide a word)."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        char for char in decomposed if not unicodedata.combining(char) and unicodedata.category(char) != "Cf"
    )
    return unicodedata.normalize("NFKC", kept)


def normalise(text: str) -> str:
    """``text`` folded (see :func:`_fold`) and case-folded."""
    return _fold(text).casefold()


def readings(text: str) -> tuple[str, ...]:
    """The prompt as words separated by single spaces and padded with one, read as written and
    as disguised: look-alike letters and digits (``n4k3d``) as Latin letters, and spaced-out
    letters (``p o r n``) joined, with or without a leading article (``a n a k e d``)."""
    folded = _fold(text)
    plain = _WORD.findall(folded.casefold())
    latin = _WORD.findall(folded.translate(_CONFUSABLES).casefold().translate(_LOOKALIKES))
    variants = (plain, _join_single_letters(latin, 0), _join_single_letters(latin, 1))
    return tuple(dict.fromkeys(f" {' '.join(words)} " for words in variants))


def _join_single_letters(words: list[str], keep: int) -> list[str]:
    """Runs of single letters joined into one word after their first ``keep`` letters."""
    joined: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        spelled = run[keep:]
        joined += [*run[:keep], "".join(spelled)] if len(spelled) >= 3 else run
        run = []
        if word:
            joined.append(word)
    return joined


@dataclass(frozen=True)
class Term:
    """One entry of a term list: every part must occur; a part is any of its phrases."""

    text: str  # as written in the list, for logs
    parts: tuple[tuple[str, ...], ...]  # each phrase as " words" or " words " (see _needle)

    @classmethod
    def parse(cls, text: str) -> Term:
        parts = tuple(
            tuple(needle for phrase in part.split("|") if (needle := _needle(phrase)))
            for part in text.split("&")
        )
        if not parts or not all(parts):
            raise ConfigurationError(
                f"setting safety_terms (PLANTAIN_SAFETY_TERMS): the term {text!r} has an empty "
                "part; write words, 'a|b' for either, 'a & b' for both, 'word*' for any ending"
            )
        return cls(text, parts)

    def found_in(self, reading: str) -> bool:
        return all(any(needle in reading for needle in part) for part in self.parts)


def _needle(phrase: str) -> str:
    """`` words `` for a whole phrase; ``" words"`` without the closing space for ``words*``."""
    prefix = phrase.strip().endswith("*")
    words = _WORD.findall(normalise(phrase))
    if not words:
        return ""
    return f" {' '.join(words)}" + ("" if prefix else " ")


@dataclass(frozen=True)
class Category:
    name: str
    loosest: SafetyLevel  # screened at this level and every stricter one
    terms: tuple[Term, ...]

    def screens(self, level: SafetyLevel) -> bool:
        return level != "off" and RANK[level] <= RANK[self.loosest]

    def match(self, prompt_readings: Sequence[str]) -> Term | None:
        for term in self.terms:
            if any(term.found_in(reading) for reading in prompt_readings):
                return term
        return None


def build_categories(
    terms: Mapping[str, Sequence[str]], levels: Mapping[str, SafetyLevel]
) -> tuple[Category, ...]:
    """The built-in categories with ``terms`` replacing or adding lists and ``levels`` overriding
    where each stops being screened."""
    lists: dict[str, Sequence[str]] = {**BUILTIN_TERMS, **terms}
    return tuple(
        Category(
            name=name,
            loosest=levels.get(name, CATEGORY_LEVELS.get(name, CUSTOM_CATEGORY_LEVEL)),
            terms=tuple(Term.parse(text) for text in texts),
        )
        for name, texts in lists.items()
    )


__all__ = [
    "BUILTIN_TERMS",
    "CATEGORY_LEVELS",
    "CUSTOM_CATEGORY_LEVEL",
    "RANK",
    "Category",
    "Term",
    "build_categories",
    "normalise",
    "readings",
    "strictest",
]
