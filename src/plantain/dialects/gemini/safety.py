"""Gemini's safety vocabulary: ``safetySettings`` -> a Plantain level, and a blocked prompt or
output image -> the HTTP 200 answer google-genai reads (``response.prompt_feedback.block_reason``;
``candidates[i].finish_reason == IMAGE_SAFETY``). docs/safety.md has the tables.

Plantain applies one level to every category, so per-category thresholds collapse to the
strictest one sent; ``HARM_BLOCK_THRESHOLD_UNSPECIFIED`` leaves the server's default.
"""

from __future__ import annotations

from plantain.dialects.gemini.protocol import (
    Candidate,
    GenerateContentResponse,
    PromptFeedback,
    SafetyRating,
    SafetySetting,
)
from plantain.errors import ContentBlockedError, InvalidRequestError
from plantain.safety.terms import strictest
from plantain.types import SafetyLevel

THRESHOLD_LEVELS: dict[str, SafetyLevel] = {
    "BLOCK_LOW_AND_ABOVE": "strict",
    "BLOCK_MEDIUM_AND_ABOVE": "standard",
    "BLOCK_ONLY_HIGH": "relaxed",
    "BLOCK_NONE": "off",
    "OFF": "off",
}
UNSPECIFIED = "HARM_BLOCK_THRESHOLD_UNSPECIFIED"

# Plantain's built-in categories as Gemini's harm categories (a category the operator added has none).
HARM_CATEGORIES: dict[str, str] = {
    "sexual/minors": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "sexual": "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "violence/graphic": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "violence": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "self-harm": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "illicit": "HARM_CATEGORY_DANGEROUS_CONTENT",
    "hate": "HARM_CATEGORY_HATE_SPEECH",
}
PROHIBITED = frozenset({"sexual/minors"})  # blocked at every level a request may choose


def safety_level(settings: list[SafetySetting]) -> SafetyLevel | None:
    """The strictest level the thresholds ask for; None (the server default) when none is set."""
    levels: list[SafetyLevel] = []
    for index, setting in enumerate(settings):
        threshold = (setting.threshold or UNSPECIFIED).strip().upper()
        if threshold == UNSPECIFIED:
            continue
        if threshold not in THRESHOLD_LEVELS:
            field = f"safetySettings[{index}].threshold"
            raise InvalidRequestError(
                f"{field}: {setting.threshold!r} is not allowed; must be one of {UNSPECIFIED}, "
                f"{', '.join(THRESHOLD_LEVELS)}",
                field=field,
            )
        levels.append(THRESHOLD_LEVELS[threshold])
    return strictest(levels) if levels else None


def blocked_response(
    error: ContentBlockedError, model_version: str, response_id: str
) -> GenerateContentResponse:
    """The 200 answer for a refused request: prompt feedback for a prompt, an IMAGE_SAFETY
    candidate without content for an output image."""
    if error.stage == "prompt":
        return prompt_blocked(error, model_version, response_id)
    return image_blocked(error.message, model_version, response_id)


def prompt_blocked(
    error: ContentBlockedError, model_version: str, response_id: str
) -> GenerateContentResponse:
    harm = HARM_CATEGORIES.get(error.category)
    ratings = [SafetyRating(category=harm, probability="HIGH", blocked=True)] if harm else None
    feedback = PromptFeedback(
        block_reason=block_reason(error.category), block_reason_message=error.message, safety_ratings=ratings
    )
    return GenerateContentResponse(
        prompt_feedback=feedback, model_version=model_version, response_id=response_id
    )


def block_reason(category: str) -> str:
    """PROHIBITED_CONTENT for what no level allows, SAFETY for a harm category, BLOCKLIST for a
    list the operator added."""
    if category in PROHIBITED:
        return "PROHIBITED_CONTENT"
    return "SAFETY" if category in HARM_CATEGORIES else "BLOCKLIST"


def image_blocked(message: str, model_version: str, response_id: str) -> GenerateContentResponse:
    """One candidate, no image: the whole request is withheld when any of its images is blocked."""
    candidate = Candidate(finish_reason="IMAGE_SAFETY", finish_message=message, index=0)
    return GenerateContentResponse(
        candidates=[candidate], model_version=model_version, response_id=response_id
    )
