"""The planner stage: a request in, a :class:`~plantain.types.PlanResult` out, before the engine
runs. Two generations on one model: the rewrite (the prompt the engine gets) and then the answer's
text, which is written from the rewrite so that it describes what the engine was asked to make.
"""

from __future__ import annotations

import re
import time

from plantain.planner import prompts
from plantain.planner.model import Generated, PlannerModel
from plantain.settings import Settings
from plantain.types import ImageRequest, PlanResult

# A reasoning block a hybrid model may still emit (Qwen3 writes an empty one with thinking off), and
# special-token text a tokenizer did not mark special: neither belongs in an engine's prompt.
_THINKING = re.compile(r"<think>.*?(</think>|$)", re.S)
_SPECIAL = re.compile(r"<\|[^|<>]*\|>")
_QUOTES = ('"', "'", "\u201c\u201d", "\u00ab\u00bb", "`")


class Planner:
    """Rewrites a request's prompt for its engine's family and writes the answer's text."""

    def __init__(self, settings: Settings, model: PlannerModel | None = None) -> None:
        self.settings = settings
        self.model = model if model is not None else PlannerModel(settings)

    def load(self) -> None:
        """Load the model now (the worker does at start, so readiness means the stage is ready)."""
        self.model.load()

    @property
    def available(self) -> bool:
        """Whether a request may ask for the stage: the checkpoint is here (or built on first use),
        so asking cannot fail for want of weights. Reads the file system only."""
        return self.model.loaded or self.model.present()

    def enabled_for(self, request: ImageRequest) -> bool:
        """Whether the stage runs for ``request``: its own ``plan`` when it set one, else the
        server's ``planner`` setting."""
        if request.plan is not None:
            return request.plan
        return self.settings.planner == "on"

    def plan(self, request: ImageRequest, family: str) -> PlanResult:
        """The rewritten prompt for an engine of ``family`` and the answer's text."""
        started = time.perf_counter()
        rewrite = self._generate(
            prompts.rewrite_system(family, edit=bool(request.images)),
            prompts.rewrite_user(request.prompt, input_images=len(request.images)),
        )
        revised = self.usable_prompt(rewrite.text) or request.prompt
        answer = self._generate(prompts.ANSWER_SYSTEM, prompts.answer_user(request.prompt, revised))
        return PlanResult(
            model=self.model.name,
            original_prompt=request.prompt,
            revised_prompt=revised,
            text=clean(answer.text),
            seconds=time.perf_counter() - started,
            input_tokens=rewrite.input_tokens + answer.input_tokens,
            output_tokens=rewrite.output_tokens + answer.output_tokens,
        )

    def usable_prompt(self, text: str) -> str:
        """The model's rewrite as an engine prompt, cut to ``max_prompt_chars`` (the limit every
        request's prompt meets); empty when nothing usable is left, so the caller's prompt stands."""
        prompt = _unquote(clean(text))
        return prompt[: self.settings.max_prompt_chars].rstrip()

    def _generate(self, system: str, user: str) -> Generated:
        return self.model.generate(system, user, max_new_tokens=self.settings.planner_max_tokens)


def clean(text: str) -> str:
    """Generated text without reasoning blocks, stray special tokens or surrounding whitespace."""
    return _SPECIAL.sub("", _THINKING.sub("", text)).strip()


def _unquote(text: str) -> str:
    """The text without one pair of quotes around all of it (models quote what they were asked to
    write); quotes inside, such as text to render, stay."""
    for pair in _QUOTES:
        opening, closing = pair[0], pair[-1]
        inner = text[1:-1]
        if (
            len(text) >= 2
            and text[0] == opening
            and text[-1] == closing
            and opening not in inner
            and closing not in inner
        ):
            return inner.strip()
    return text
