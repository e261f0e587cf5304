"""A conversation's earlier turns as the core request carries them, so the planner can resolve
which earlier image an edit means ("make the first one blue"; docs/planner.md). Shared by the
dialects that read conversations (Gemini ``contents``, chat ``messages``).

Only a real choice is carried: two or more earlier images, every one sent inline (an image given
by URL or as an uploaded file would need fetching or reading for nothing if it is not picked, so
such a conversation keeps the dialect's own rule). The turns kept are the newest whose images fit
the input limit, so the planner's image numbers always match the images carried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from plantain.errors import PlantainError
from plantain.types import ConversationTurn, InputImage

Reader = tuple[str, Callable[[], InputImage]]  # an image's label, and what reads it when needed


@dataclass(frozen=True)
class EarlierTurn:
    """One turn before the last user turn: who spoke, its text, and its images (read lazily, so
    a conversation without a choice decodes nothing more than it did)."""

    role: Literal["user", "model"]
    text: str
    images: Sequence[Reader]


def conversation_fields(
    turns: Sequence[EarlierTurn], chosen: Sequence[InputImage], from_history: int, max_images: int
) -> dict[str, Any]:
    """``history``, ``earlier`` and ``from_history`` for the core request, or nothing when the
    earlier turns offer no choice (fewer than two images, one not inline, or one unreadable).
    ``chosen`` are the images the dialect's rule already read (by label): not read again."""
    kept: list[EarlierTurn] = []
    count = 0
    for turn in reversed(turns):
        if count + len(turn.images) > max_images:
            break
        kept.insert(0, turn)
        count += len(turn.images)
    if count < 2:
        return {}
    already = {image.label: image for image in chosen}
    try:
        images = [already.get(label) or read() for turn in kept for label, read in turn.images]
    except PlantainError:  # the rule's own images are checked where they are read; others may be bad
        return {}
    if any(image.url is not None for image in images):
        return {}
    history = tuple(
        ConversationTurn(role=turn.role, text=turn.text, images=len(turn.images)) for turn in kept
    )
    return {"history": history, "earlier": tuple(images), "from_history": from_history}
