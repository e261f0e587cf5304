"""The planner stage: a request in, a :class:`~plantain.types.PlanResult` out, before the engine
runs. Two generations on one model: the rewrite (the prompt the engine gets, using what a web
search found and, on a vision-language model, the input images) and then the answer's text, which
is written from the rewrite so that it describes what the engine was asked to make.

Two smaller generations serve the steps around it: :meth:`Planner.queries` writes the web-search
queries for grounding (whose results come back as the rewrite's facts), and
:meth:`Planner.resolve_edit` decides which earlier image of a conversation an edit means.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from plantain.planner import prompts
from plantain.planner.model import Generated, PlannerModel
from plantain.settings import Settings
from plantain.types import ConversationTurn, ImageRequest, PlanResult

if TYPE_CHECKING:
    from PIL import Image

# A reasoning block a hybrid model may still emit (Qwen3 writes an empty one with thinking off), and
# special-token text a tokenizer did not mark special: neither belongs in an engine's prompt.
_THINKING = re.compile(r"<think>.*?(</think>|$)", re.S)
_SPECIAL = re.compile(r"<\|[^|<>]*\|>")
_QUOTES = ('"', "'", "\u201c\u201d", "\u00ab\u00bb", "`")

# What a search provider takes as one query; longer ones are cut or refused, and a query that
# long is a sentence, not a search.
MAX_QUERY_CHARS = 200

# The list marks a model puts before each line despite being asked not to: "1.", "2)", "-", "*",
# "•", "Query 1:", "#". A number needs a space after it, so that "3.5 inch floppy disk" keeps its 3.
_LIST_MARK = re.compile(r"^(?:[-*•·#>]+|\(?\d{1,2}[.):\]](?=\s)|(?:search\s+)?query\s*\d*\s*[:.)-])\s*", re.I)

# The resolver's answer is one number: a few tokens leave room for "Image 2." and no more.
RESOLVE_MAX_TOKENS = 8


@dataclass(frozen=True)
class Queries:
    """The web-search queries for a request's grounding, and what writing them cost (added to
    the request's :class:`~plantain.types.PlanResult` when it is planned)."""

    queries: tuple[str, ...]  # one or more (the fallback is "" only for a blank prompt)
    seconds: float
    input_tokens: int
    output_tokens: int
    fallback: bool  # True: the model wrote nothing usable, so the one query is the prompt itself


@dataclass(frozen=True)
class Resolved:
    """Which earlier image a conversational edit means, and what deciding cost."""

    # Into the earlier turns' images flattened in order (turn 0's first); None: no earlier image
    # (the model said the message asks for a new image, or there was none, or it did not decide).
    index: int | None
    # Whether the model's answer was usable: when False, index is None and the caller keeps its
    # own rule (the most recent earlier turn with images).
    decided: bool
    seconds: float
    input_tokens: int
    output_tokens: int


# A plan without grounding queries: nothing was spent before the rewrite.
_NOTHING_BEFORE = Queries(queries=(), seconds=0.0, input_tokens=0, output_tokens=0, fallback=False)


class Planner:
    """Rewrites a request's prompt for its engine's family and writes the answer's text; also
    writes grounding's search queries and resolves which earlier image a conversational edit means."""

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
        """Whether the stage runs for ``request`` (the server's rule, ``Settings.plans``)."""
        return self.settings.plans(request.plan)

    def plan(
        self,
        request: ImageRequest,
        family: str,
        *,
        facts: Sequence[str] = (),
        images: Sequence[Image.Image] = (),
        queries: Queries | None = None,
    ) -> PlanResult:
        """The rewritten prompt for an engine of ``family`` and the answer's text. ``facts`` are
        what a web search found (the rewrite uses them for what real things look like);
        ``images`` the decoded input images, read only by a model that sees images; ``queries``
        the grounding queries this stage wrote, whose cost the result then includes, so that one
        PlanResult accounts for the whole stage."""
        started = time.perf_counter()
        facts = [fact for fact in facts if fact.strip()]  # a blank one would still add the rules
        sees = bool(images) and self.model.sees_images
        rewrite = self._generate(
            prompts.rewrite_system(family, edit=bool(request.images), sees=sees, facts=bool(facts)),
            prompts.rewrite_user(request.prompt, input_images=len(request.images), facts=facts),
            images=images if sees else (),
        )
        revised = self.usable_prompt(rewrite.text) or request.prompt
        # The answer gets no images: it describes the rewrite, which already says what they show.
        answer = self._generate(
            prompts.answer_system(facts=bool(facts)), prompts.answer_user(request.prompt, revised, facts)
        )
        before = queries or _NOTHING_BEFORE
        return PlanResult(
            model=self.model.name,
            original_prompt=request.prompt,
            revised_prompt=revised,
            text=clean(answer.text),
            seconds=time.perf_counter() - started + before.seconds,
            input_tokens=before.input_tokens + rewrite.input_tokens + answer.input_tokens,
            output_tokens=before.output_tokens + rewrite.output_tokens + answer.output_tokens,
        )

    def queries(self, request: ImageRequest, *, limit: int = 3) -> Queries:
        """Up to ``limit`` web-search queries for grounding ``request``, written by the model; when
        it writes nothing usable, the one query :func:`fallback_query` makes of the prompt."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        started = time.perf_counter()
        written = self._generate(prompts.queries_system(limit), prompts.queries_user(request.prompt))
        found = parse_queries(written.text, limit=limit)
        fallback = not found
        if fallback:
            found = (fallback_query(request.prompt),)
        return Queries(
            queries=found,
            seconds=time.perf_counter() - started,
            input_tokens=written.input_tokens,
            output_tokens=written.output_tokens,
            fallback=fallback,
        )

    def resolve_edit(self, prompt: str, turns: Sequence[ConversationTurn]) -> Resolved:
        """Which of the earlier ``turns``' images the new message ``prompt`` edits, as the model
        reads the chat. With no earlier image there is nothing to choose and nothing is generated."""
        count = sum(turn.images for turn in turns)
        if count == 0:
            return Resolved(index=None, decided=True, seconds=0.0, input_tokens=0, output_tokens=0)
        started = time.perf_counter()
        answer = self._generate(
            prompts.RESOLVE_SYSTEM,
            prompts.resolve_user(turns, prompt),
            max_new_tokens=min(RESOLVE_MAX_TOKENS, self.settings.planner_max_tokens),
        )
        number = prompts.first_number(clean(answer.text))
        decided = number is not None and 0 <= number <= count  # else noise, or an image not there
        return Resolved(
            index=number - 1 if decided and number else None,  # the chat counts from 1; 0: new image
            decided=decided,
            seconds=time.perf_counter() - started,
            input_tokens=answer.input_tokens,
            output_tokens=answer.output_tokens,
        )

    def usable_prompt(self, text: str) -> str:
        """The model's rewrite as an engine prompt, cut to ``max_prompt_chars`` (the limit every
        request's prompt meets); empty when nothing usable is left, so the caller's prompt stands."""
        prompt = _unquote(clean(text))
        return prompt[: self.settings.max_prompt_chars].rstrip()

    def _generate(
        self,
        system: str,
        user: str,
        images: Sequence[Image.Image] = (),
        max_new_tokens: int | None = None,
    ) -> Generated:
        most = self.settings.planner_max_tokens if max_new_tokens is None else max_new_tokens
        if images:
            return self.model.generate(system, user, images=images, max_new_tokens=most)
        # No images argument at all when there are none: the call any model takes.
        return self.model.generate(system, user, max_new_tokens=most)


def fallback_query(prompt: str) -> str:
    """The one search query made of a request's own prompt, when no model writes better ones (the
    planner is off, or its model wrote nothing usable): the prompt with its whitespace collapsed,
    cut to :data:`MAX_QUERY_CHARS` at a word boundary."""
    return prompts.shorten(prompt, MAX_QUERY_CHARS)


def parse_queries(text: str, *, limit: int) -> tuple[str, ...]:
    """The queries in a model's answer: one per line, list marks and quotes removed; blank,
    over-long, noise-like and repeated lines dropped; at most ``limit``."""
    found: list[str] = []
    seen: set[str] = set()
    for line in clean(text).splitlines():
        query = _as_query(line)
        if query and query.casefold() not in seen:
            seen.add(query.casefold())
            found.append(query)
    return tuple(found[:limit])


def _as_query(line: str) -> str:
    """One line of the model's answer as a query, or empty when it is not one."""
    query = " ".join(line.split())
    while (unmarked := _LIST_MARK.sub("", query, count=1)) != query:  # "1. - x" has two marks
        query = unmarked
    query = _unquote(query)
    if not query or len(query) > MAX_QUERY_CHARS or not _looks_like_words(query):
        return ""
    return query


def _looks_like_words(query: str) -> bool:
    """Whether ``query`` reads as words rather than noise, as a random-weight model writes: mostly
    letters, digits and spaces, and no one character making up half of it (greedy decoding of
    random weights repeats one token: "DDDDDDDD"). Any script's letters count."""
    visible = query.replace(" ", "")
    if not any(char.isalpha() for char in visible):
        return False
    wordlike = sum(char.isalnum() or unicodedata.category(char).startswith("M") for char in visible)
    if wordlike < 0.7 * len(visible):
        return False
    commonest = max(visible.count(char) for char in set(visible))
    return len(visible) < 4 or commonest * 2 <= len(visible)


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
