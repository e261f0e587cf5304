"""The safety stage: a policy level per request, prompt term lists, and an output image classifier.

A request's level (strictest first: strict, standard, relaxed, off) is fixed when it is submitted:
the server's ``safety_level`` when it asks for none, and never looser than ``safety_min_level``
(a looser ask is raised to it, the way vendors keep their non-adjustable filters on). Each category
of terms is screened from a level down to its own loosest one (:data:`CATEGORY_LEVELS`), so strict
screens every category, off none. Output images are scored by an :class:`ImageClassifier`; a score
of an unsafe label at or above the level's threshold blocks the image. docs/safety.md has the table.

Terms match whole words or phrases after normalisation (compatibility forms folded, case folded,
accents and invisible characters dropped, look-alike Cyrillic/Greek letters and digits read as
the Latin letters they imitate, spaced-out letters joined), using plain substring search over the
words: the one regular expression that sees user text is a single character class (linear), so no
input can make matching slow.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from plantain.errors import ConfigurationError, ContentBlockedError, MissingWeightsError
from plantain.settings import Settings
from plantain.types import SAFETY_LEVELS, ImageRequest, SafetyLevel

logger = logging.getLogger(__name__)

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


# --- prompt terms ------------------------------------------------------------------------------


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


# --- output images -----------------------------------------------------------------------------


class ImageClassifier(Protocol):
    """What screens output images: a score in [0, 1] per label for each image."""

    def load(self) -> None:
        """Get ready (load weights); called at server start, so a bad checkpoint shows at once."""

    @property
    def labels(self) -> tuple[str, ...]: ...

    def scores(self, images: Sequence[Image.Image]) -> list[dict[str, float]]: ...


class TransformersImageClassifier:
    """Any transformers image-classification checkpoint (``AutoModelForImageClassification`` and
    its ``AutoImageProcessor``), from a directory or a hub id in the hub cache; it never downloads.
    Loaded once, on first use or :meth:`load`, whichever thread comes first."""

    def __init__(self, source: str, *, device: str = "cpu", cache_dir: Path | None = None) -> None:
        self.source = source
        self.device = device
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None  # (processor, model)

    def load(self) -> None:
        self._model()

    @property
    def labels(self) -> tuple[str, ...]:
        _, model = self._model()
        id2label = model.config.id2label
        return tuple(str(id2label[index]) for index in sorted(id2label))

    def scores(self, images: Sequence[Image.Image]) -> list[dict[str, float]]:
        import torch

        processor, model = self._model()
        inputs = processor(images=[image.convert("RGB") for image in images], return_tensors="pt")
        with torch.inference_mode():
            logits = model(**inputs.to(model.device)).logits.float()
        multi_label = model.config.problem_type == "multi_label_classification"
        probabilities = logits.sigmoid() if multi_label else logits.softmax(dim=-1)
        labels = self.labels
        return [dict(zip(labels, row.tolist(), strict=True)) for row in probabilities.cpu()]

    def _model(self) -> tuple[Any, Any]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        from plantain.engines.loading import pick_device, quiet_libraries

        quiet_libraries()
        where: dict[str, Any] = {"local_files_only": True, "cache_dir": self.cache_dir}
        try:
            processor = AutoImageProcessor.from_pretrained(self.source, **where)
            model = AutoModelForImageClassification.from_pretrained(self.source, **where)
        except OSError as exc:
            raise MissingWeightsError(
                f"setting safety_classifier: no image-classification checkpoint at {self.source!r} "
                f"({type(exc).__name__}); download it into the hub cache (hf download "
                f"{self.source}) or point the setting at a directory holding config.json, the "
                "weights and preprocessor_config.json"
            ) from exc
        model = model.to(pick_device(self.device)).eval()
        logger.info("safety classifier %s loaded (labels: %s)", self.source, model.config.id2label)
        return processor, model


# --- the policy --------------------------------------------------------------------------------


class SafetyPolicy:
    """What the server screens, at which level, built from :class:`Settings`."""

    def __init__(
        self,
        *,
        default_level: SafetyLevel = "standard",
        min_level: SafetyLevel = "relaxed",
        categories: Sequence[Category] = (),
        classifier: ImageClassifier | None = None,
        unsafe_labels: Sequence[str] = ("nsfw",),
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        if RANK[default_level] > RANK[min_level]:
            raise ConfigurationError(
                f"setting safety_level (PLANTAIN_SAFETY_LEVEL): {default_level!r} is looser than "
                f"safety_min_level {min_level!r}, the loosest a request may ask for; set "
                f"safety_min_level to {default_level!r} or looser"
            )
        self.default_level = default_level
        self.min_level = min_level
        self.categories = tuple(categories)
        self.classifier = classifier
        self.unsafe_labels = tuple(unsafe_labels)
        self.thresholds = _thresholds(thresholds or {})

    @classmethod
    def from_settings(cls, settings: Settings, classifier: ImageClassifier | None = None) -> SafetyPolicy:
        """The policy ``settings`` describe; ``classifier`` replaces the one ``safety_classifier``
        names (a test or an embedding application may bring its own)."""
        if classifier is None and settings.safety_classifier:
            classifier = TransformersImageClassifier(
                settings.safety_classifier, device=settings.device, cache_dir=settings.hub_cache
            )
        return cls(
            default_level=settings.safety_level,
            min_level=settings.safety_min_level,
            categories=build_categories(settings.safety_terms, settings.safety_category_levels),
            classifier=classifier,
            unsafe_labels=settings.safety_unsafe_labels,
            thresholds=settings.safety_image_thresholds,
        )

    def load(self) -> None:
        """Load the classifier, and check that it has the labels the policy calls unsafe."""
        if self.classifier is None:
            return
        self.classifier.load()
        if not set(self.unsafe_labels) & set(self.classifier.labels):
            raise ConfigurationError(
                f"setting safety_unsafe_labels: {list(self.unsafe_labels)} names none of the safety "
                f"classifier's labels ({', '.join(self.classifier.labels)}); name the unsafe ones"
            )

    def level_for(self, requested: SafetyLevel | None) -> SafetyLevel:
        """The level a request runs at: the default when it asks for none, and never looser than
        ``min_level``."""
        level = requested or self.default_level
        return self.min_level if RANK[level] > RANK[self.min_level] else level

    def admit(self, request: ImageRequest) -> ImageRequest:
        """``request`` with its level fixed; ContentBlockedError when its prompt is refused."""
        level = self.level_for(request.safety)
        self.screen_prompt(request.prompt, level)
        return request if request.safety == level else request.model_copy(update={"safety": level})

    def screen_prompt(self, prompt: str, level: SafetyLevel) -> None:
        screened = [category for category in self.categories if category.screens(level)]
        if not screened:
            return
        prompt_readings = readings(prompt)
        for category in screened:
            term = category.match(prompt_readings)
            if term is not None:
                logger.info(
                    "prompt blocked at level %s: category %s, term %r", level, category.name, term.text
                )
                raise ContentBlockedError(
                    f"prompt: refused by the safety policy (category {category.name}, screened at "
                    f"level {category.loosest} and stricter; this request's level is {level})",
                    field="prompt",
                    stage="prompt",
                    category=category.name,
                )

    def screens_images(self, level: SafetyLevel) -> bool:
        return self.classifier is not None and level != "off"

    def screen_images(self, images: Sequence[Image.Image], request: ImageRequest) -> None:
        """ContentBlockedError (stage image) when any output image scores unsafe: the request then
        returns none of its images."""
        level = self.level_for(request.safety)
        for index, found in enumerate(self._unsafe(images, level)):
            if found is not None:
                label, score = found
                logger.info("output image blocked at level %s: %s scored %.3f", level, label, score)
                raise ContentBlockedError(
                    f"output image {index + 1} of {len(images)}: refused by the safety policy "
                    f"(category {label}: classifier score {score:.2f}, the limit at level {level} is "
                    f"{self.thresholds[level]:.2f}); no image of this request is returned",
                    stage="image",
                    category=label,
                )

    def safe_previews(
        self, level: SafetyLevel, deliver: Callable[[int, Image.Image], None]
    ) -> Callable[[int, Image.Image], None]:
        """``deliver`` for previews (in-progress images), skipping any that scores unsafe."""
        if not self.screens_images(level):
            return deliver

        def screened(index: int, image: Image.Image) -> None:
            if self._unsafe([image], level)[0] is None:
                deliver(index, image)

        return screened

    def _unsafe(self, images: Sequence[Image.Image], level: SafetyLevel) -> list[tuple[str, float] | None]:
        """Per image, the unsafe label with the highest score at or over the threshold, or None."""
        if self.classifier is None or level == "off" or not images:
            return [None] * len(images)
        threshold = self.thresholds[level]
        found: list[tuple[str, float] | None] = []
        for scores in self.classifier.scores(images):
            over = [
                (label, scores[label]) for label in self.unsafe_labels if scores.get(label, 0.0) >= threshold
            ]
            found.append(max(over, key=lambda item: item[1]) if over else None)
        return found


DEFAULT_THRESHOLDS: dict[str, float] = {"strict": 0.3, "standard": 0.5, "relaxed": 0.85}


def _thresholds(given: Mapping[str, float]) -> dict[str, float]:
    for level, value in given.items():
        if level not in DEFAULT_THRESHOLDS or not value >= 0:
            raise ConfigurationError(
                f"setting safety_image_thresholds: {level!r}: {value!r} is not allowed; name strict, "
                "standard or relaxed, each with a score of 0 or more (above 1 blocks nothing)"
            )
    return {**DEFAULT_THRESHOLDS, **given}


__all__ = [
    "BUILTIN_TERMS",
    "CATEGORY_LEVELS",
    "Category",
    "ImageClassifier",
    "SafetyPolicy",
    "Term",
    "TransformersImageClassifier",
    "build_categories",
    "normalise",
    "readings",
    "strictest",
]
