"""The arena's work beside its records: who competes, a pair's two runs, and reading them back.

A **contestant** is an engine, optionally at its own step count (``tiny:2-steps``): comparing an
engine with itself at fewer steps is a question teams ask ("is the fast preset good enough?"),
and it lets a server with one engine hold an arena at all. The ``arena_contestants`` setting names
them; by default they are the served engines, and one served engine meets itself at half its
steps.

A **pair** is one request run by two contestants picked at random among those that can run it
(an edit needs two engines that edit), with one seed for both and the sides in random order. Each
run is an ordinary task, submitted through the front door with every check a task gets (source
``arena``), so it is queued, limited, watermarked and counted like any other. The voter sees the
sides by position only; the names are given once the pair has its vote.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from plantain.arena.export import VoteRow
from plantain.arena.prompt_sets import DEFAULT_CATEGORY, normalize_category
from plantain.arena.rating import Standing, Vote, leaderboard, winner_of
from plantain.dialects.native import convert
from plantain.dialects.native.protocol import TaskInput
from plantain.engines.registry import EngineRegistry
from plantain.errors import ConfigurationError, ConflictError, InvalidRequestError, NotFoundError
from plantain.scheduler import FrontDoor
from plantain.scheduler.frontdoor import Submission
from plantain.settings import Settings
from plantain.storage.arena import ArenaPair
from plantain.types import InputImage, Task

SOURCE = "arena"  # the tasks' front door, in their records and in usage's "dialect" groups
SEED_BITS = 31  # a seed every engine and every client's number type takes
Converted = TypeVar("Converted")
_STEPS = re.compile(r"^(?P<engine>[^:]+):(?P<steps>\d+)-steps?$")


@dataclass(frozen=True)
class Contestant:
    name: str  # as the leaderboard shows it
    engine: str
    steps: int | None = None  # None: the engine's preset


@dataclass(frozen=True)
class PairSpec:
    """What a voter asked to compare: the prompt (None: the next one of the imported sets)."""

    prompt: str | None = None
    category: str | None = None
    images: Sequence[str] = ()
    aspect_ratio: str | None = None
    resolution: str | None = None


def contestants(settings: Settings, registry: EngineRegistry) -> list[Contestant]:
    """The contestants the settings name (``arena_contestants``), else the default ones."""
    if settings.arena_contestants:
        return [_named(entry, registry) for entry in settings.arena_contestants]
    served = settings.serve_engines or [settings.default_engine]
    found = [Contestant(name, name) for name in served]
    if len(found) == 1:
        steps = registry.get(served[0]).preset.steps // 2
        if steps >= 1:
            found.append(Contestant(f"{served[0]}:{steps}-steps", served[0], steps))
    return found


def _named(entry: str, registry: EngineRegistry) -> Contestant:
    match = _STEPS.match(entry)
    engine, steps = (match["engine"], int(match["steps"])) if match else (entry, None)
    if engine not in registry.names() or steps == 0:
        raise ConfigurationError(
            f"arena_contestants: {entry!r} is not an engine name, or one with a step count "
            f"(ENGINE:N-steps, N >= 1); engines: {', '.join(registry.names())}",
            field="arena_contestants",
        )
    return Contestant(entry, engine, steps)


class Arena:
    """Pairs, votes and ratings over the front door's store."""

    def __init__(self, door: FrontDoor) -> None:
        self.door = door
        self.store = door.store.arena

    def contestants(self) -> list[Contestant]:
        return contestants(self.door.settings, self.door.registry)

    async def start(self, spec: PairSpec, caller: str | None) -> ArenaPair:
        """Two contestants' tasks for one prompt, recorded as a pair; bad input raises first,
        and a second task refused (a full queue, a quota) cancels the first: no orphan runs."""
        prompt, category, prompt_id = self._prompt(spec)
        left, right = self._draw(edit=bool(spec.images))
        seed = secrets.randbits(SEED_BITS)
        body = TaskInput(
            prompt=prompt,
            images=list(spec.images),
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
            seed=seed,
        )
        images = _named_as_the_arena(convert.image_sources, body, self.door.limits)  # decoded once
        first = await self._submit(body, images, left, caller)
        try:
            second = await self._submit(body, images, right, caller)
        except Exception:
            self.door.cancel(first.id)
            raise
        return self.store.create_pair(
            prompt=prompt,
            category=category,
            prompt_id=prompt_id,
            seed=seed,
            left_contestant=left.name,
            right_contestant=right.name,
            left_task=first.id,
            right_task=second.id,
            api_key_id=caller,
        )

    def _prompt(self, spec: PairSpec) -> tuple[str, str, str | None]:
        """(prompt, category, prompt id): the caller's, or the next imported one's."""
        if spec.prompt is not None and spec.prompt.strip():
            return spec.prompt, normalize_category(spec.category, "category"), None
        found = self.store.next_prompt()
        if found is None:
            raise InvalidRequestError(
                "prompt is required: send one, or import a prompt set first (POST /v1/arena/prompts)",
                field="prompt",
            )
        category = found.category if spec.category is None else normalize_category(spec.category, "category")
        return found.prompt, category, found.id

    def _draw(self, edit: bool) -> tuple[Contestant, Contestant]:
        """Two contestants at random, in random order, among those that can run the request."""
        needed = "edit" if edit else "text-to-image"  # an edit-only engine sits out a plain prompt
        registry = self.door.registry
        able = [c for c in self.contestants() if needed in registry.get(c.engine).capabilities.tasks()]
        if len(able) < 2:
            field = "images" if edit else None
            error = InvalidRequestError if edit else ConflictError
            raise error(
                f"the arena needs two contestants that do {needed}; this server has "
                f"{', '.join(c.name for c in able) or 'none'} (setting arena_contestants)",
                field=field,
            )
        left, right = random.sample(able, 2)
        return left, right

    async def _submit(
        self, body: TaskInput, images: Sequence[InputImage], side: Contestant, caller: str | None
    ) -> Task:
        request = _named_as_the_arena(
            convert.to_image_request, body.model_copy(update={"steps": side.steps}), images
        )
        submission = Submission(model=side.engine, source=SOURCE, api_key_id=caller)
        task, _ = await self.door.submit(request, submission)
        return task

    def vote(self, pair_id: str, choice: str, caller: str | None) -> ArenaPair:
        """The pair's one vote, once both sides have ended (a voter must have seen them)."""
        pair = self.store.pair(pair_id)
        if not pair.voted:
            sides = (("left", pair.left_task), ("right", pair.right_task))
            waiting = [name for name, task in sides if not self._ended(task)]
            if waiting:
                raise ConflictError(
                    f"pair {pair_id!r} is not ready to vote on: the {' and '.join(waiting)} side has not "
                    "finished; vote once both show their result",
                    field="choice",
                )
        return self.store.vote(pair_id, choice, caller)

    def _ended(self, task_id: str) -> bool:
        try:
            return self.door.store.get(task_id).finished
        except NotFoundError:  # expired: it ended long ago
            return True

    def leaderboard(self, category: str | None) -> list[Standing]:
        votes = [_vote(pair) for pair in self.store.voted_pairs(category)]
        return leaderboard(votes, [c.name for c in self.contestants()], category=category)

    def export_rows(self) -> list[VoteRow]:
        return [_row(pair) for pair in self.store.voted_pairs()]

    def side(self, task_id: str, file_url: convert.FileURL) -> dict[str, Any]:
        """One side as the voter sees it: how far it is and what it made, no engine named."""
        try:
            task = self.door.store.get(task_id)
        except NotFoundError:
            return {"status": "expired", "progress": None, "images": [], "error": None}
        images = [
            {"url": file_url(out.file_id), "width": out.width, "height": out.height}
            for out in (task.result.outputs if task.result else ())
        ]
        return {
            "status": task.status,
            "progress": self._progress(task) if task.status == "running" else None,
            "images": images,
            "error": {"code": task.error.code, "message": task.error.message} if task.error else None,
        }

    def _progress(self, task: Task) -> dict[str, int] | None:
        steps = [e.data for e in self.door.store.events_after(task.id, 0) if e.type == "progress"]
        return {"step": int(steps[-1]["step"]), "steps": int(steps[-1]["total"])} if steps else None


def _named_as_the_arena(convert_with: Callable[..., Converted], *args: Any) -> Converted:
    """``convert_with(*args)``, its error naming the field as a pair's body does: the task API's
    ``input.images[0]`` is the arena's ``images[0]``."""
    try:
        return convert_with(*args)
    except InvalidRequestError as exc:
        raise exc.renamed({exc.field: exc.field.removeprefix("input.")} if exc.field else {}) from None


def _vote(pair: ArenaPair) -> Vote:
    return Vote(pair.left_contestant, pair.right_contestant, pair.choice or "tie", pair.category)


def _row(pair: ArenaPair) -> VoteRow:
    choice = pair.choice or "tie"
    return VoteRow(
        pair_id=pair.id,
        voted_at=datetime.fromtimestamp(pair.voted_at or 0, UTC).isoformat(),
        category=pair.category,
        prompt=pair.prompt,
        left=pair.left_contestant,
        right=pair.right_contestant,
        choice=choice,
        winner=winner_of(pair.left_contestant, pair.right_contestant, choice),
        seed=pair.seed,
        left_task=pair.left_task,
        right_task=pair.right_task,
    )


__all__ = ["DEFAULT_CATEGORY", "Arena", "Contestant", "PairSpec", "contestants"]
