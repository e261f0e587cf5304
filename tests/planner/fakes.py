"""A scripted planner model for tests: the real stage and worker around it, answers chosen by the
test, nothing loaded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plantain.planner.model import Generated, PlannerModel
from plantain.settings import Settings

Answer = Callable[[str, str], str]  # (system, user) -> what the model writes


@dataclass(frozen=True)
class Call:
    system: str
    user: str
    images: tuple[Any, ...]
    max_new_tokens: int


class Scripted(PlannerModel):
    """Answers each generation with ``answer(system, user)`` at 10 tokens in and 3 out, keeps every
    call, and loads nothing; ``sees`` is whether it reads images (a vision-language model)."""

    def __init__(self, settings: Settings, answer: Answer, *, sees: bool = False) -> None:
        super().__init__(settings)
        self.answer = answer
        self.sees = sees
        self.calls: list[Call] = []

    @property
    def sees_images(self) -> bool:
        return self.sees

    @property
    def loaded(self) -> bool:
        return True

    def load(self) -> None:
        pass

    def generate(
        self,
        system: str,
        user: str,
        *,
        images: Sequence[Any] = (),
        max_new_tokens: int,
        min_new_tokens: int = 0,
    ) -> Generated:
        self.calls.append(Call(system, user, tuple(images), max_new_tokens))
        return Generated(text=self.answer(system, user), input_tokens=10, output_tokens=3)


def in_turn(*answers: str) -> Answer:
    """Each generation gets the next of ``answers``, the last again when they run out."""
    given = list(answers) or ["A fox."]
    count = 0

    def answer(system: str, user: str) -> str:
        nonlocal count
        count += 1
        return given[min(count, len(given)) - 1]

    return answer
