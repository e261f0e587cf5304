"""The safety stage: a policy level per request, prompt term lists, and an output image classifier.

A request's level (strictest first: strict, standard, relaxed, off) is fixed when it is submitted:
the server's ``safety_level`` when it asks for none, and never looser than ``safety_min_level``
(a looser ask is raised to it, the way vendors keep their non-adjustable filters on). Each category
of terms is screened from a level down to its own loosest one
(:data:`~plantain.safety.terms.CATEGORY_LEVELS`), so strict screens every category, off none.
Output images are scored by an :class:`~plantain.safety.classifier.ImageClassifier`; a score of
an unsafe label at or above the level's threshold blocks the image. docs/safety.md has the table.

This module holds :class:`SafetyPolicy`; the term lists and their matching are in
:mod:`plantain.safety.terms`, the image classifier in :mod:`plantain.safety.classifier`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from PIL import Image

from plantain.errors import ConfigurationError, ContentBlockedError
from plantain.safety.classifier import ImageClassifier, TransformersImageClassifier
from plantain.safety.terms import RANK, Category, build_categories, readings
from plantain.settings import Settings
from plantain.types import ImageRequest, SafetyLevel

logger = logging.getLogger(__name__)


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


__all__ = ["DEFAULT_THRESHOLDS", "SafetyPolicy"]
