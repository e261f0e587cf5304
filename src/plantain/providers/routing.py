"""A route: one engine name over an ordered list of engines, tried in turn until one serves.

A route is how a model name survives its engine being unavailable (docs/providers.md): local
first and a provider behind it, or the reverse. Planning asks every member; the members that
accept the request keep their own job (each engine its own exact size and steps), and those
that refuse it (a size it does not make, too many inputs) are skipped at run time. Running tries
the members that accepted, in order: a member that refuses, fails, is rate limited or times out
(a provider retries those itself first, ``providers/retry.py``) hands over to the next. The
images carry the name of the member that made them (``SERVED_BY``), which finishing reports as
the task's ``served_by`` (a response header, the task's usage and the vendors' ``output_meta``).

Every member's try is reported to an :data:`AttemptSink` (the store's engine statistics): its
engine, outcome, seconds and cost, which ``/metrics`` and ``GET /v1/usage`` show per engine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from PIL import Image

from plantain.engines.base import Capabilities, Engine, EngineJob, Previews, StepCallback, StopFlag
from plantain.engines.loading import WeightsSource, WeightsStatus
from plantain.errors import InvalidRequestError, PlantainError, RouteFailedError, TaskCancelledError
from plantain.imaging.sizes import SizeLimits
from plantain.providers.base import SERVED_BY, origin_of
from plantain.settings import Settings

if TYPE_CHECKING:
    from plantain.engines.registry import EngineRegistry
from plantain.types import ImageRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One member's try at a run: which engine, how it ended, how long it took, what it cost."""

    engine: str
    outcome: str  # "succeeded", "failed" or "refused"
    seconds: float
    images: int  # made (0 unless it succeeded)
    cost: float  # in the server's currency: device time at its price, or the provider's price


AttemptSink = Callable[[Attempt], None]


@dataclass(frozen=True)
class RoutedJob(EngineJob):
    """A route's job: the first accepting member's job (its numbers batch and report), and each
    member's own job or the refusal it planned to."""

    plans: tuple[tuple[str, EngineJob | PlantainError], ...] = ()

    def plan_for(self, member: str) -> EngineJob | PlantainError:
        return dict(self.plans)[member]

    def with_prompt(self, prompt: str) -> EngineJob:
        """Every member's job gets the prompt, whichever ends up serving."""
        plans = tuple(
            (name, job.with_prompt(prompt) if isinstance(job, EngineJob) else job) for name, job in self.plans
        )
        return replace(self, prompt=prompt, plans=plans)


class RoutedEngine(Engine):
    """An engine made of ``members``, tried in order."""

    upscales = False  # its run is its own: no upscaler after it (engines/upscaling.py)

    family = "route"
    pipeline_class = "route"

    def __init__(
        self,
        name: str,
        settings: Settings,
        members: Sequence[Engine],
        *,
        sink: Callable[[], AttemptSink | None] = lambda: None,
    ) -> None:
        if not members:
            raise ValueError(f"route {name} has no engines")
        first = members[0]
        super().__init__(
            name,
            settings,
            description="route: " + " -> ".join(member.name for member in members),
            source=WeightsSource(engine=name),
            capabilities=_union(members),
            preset=first.preset,
        )
        self.members = tuple(members)
        self._sink = sink  # read at each try: the store's sink is set once the scheduler has a store

    @classmethod
    def of_registry(
        cls, name: str, settings: Settings, *, registry: EngineRegistry, members: Sequence[str]
    ) -> RoutedEngine:
        """The route ``name`` over ``registry``'s engines called ``members``, reporting each try to
        the registry's sink (read at each try: the scheduler sets it once it has a store)."""
        made = [registry.get(member) for member in members]
        return cls(name, settings, made, sink=lambda: registry.attempts)

    # --- weights: a route has none of its own ------------------------------------------------

    def weights_status(self) -> WeightsStatus:
        statuses = [member.weights_status() for member in self.members]
        return WeightsStatus(
            present=any(status.present for status in statuses),
            location=", ".join(
                f"{m.name}: {s.location}" for m, s in zip(self.members, statuses, strict=True)
            ),
        )

    @property
    def loaded(self) -> bool:
        return any(member.loaded for member in self.members)

    def load(self) -> None:
        """Load the first member that loads; a route is ready when one of its engines is."""
        for member in self.members:
            try:
                member.load()
                return
            except Exception as exc:
                logger.warning("route %s: engine %s did not load (%s)", self.name, member.name, exc)

    def _load(self) -> Any:
        return None

    def _generate(
        self, pipeline: Any, jobs: Sequence[EngineJob], callback: Callable[..., Any]
    ) -> list[Image.Image]:
        raise NotImplementedError("a route runs its members")

    # --- planning: every member plans; a route refuses only what all of them refuse -------------

    def check_task(self, request: ImageRequest) -> None:
        self._first_accepting(lambda member: member.check_task(request))

    def check_size(self, request: ImageRequest, *, max_output_pixels: int | None = None) -> None:
        self._first_accepting(lambda member: member.check_size(request, max_output_pixels=max_output_pixels))

    def plan(
        self,
        request: ImageRequest,
        images: Sequence[Image.Image],
        seed: int,
        *,
        max_output_pixels: int | None = None,
        mask: Image.Image | None = None,
    ) -> EngineJob:
        plans: list[tuple[str, EngineJob | PlantainError]] = []
        for member in self.members:
            try:
                job = member.plan(request, images, seed, max_output_pixels=max_output_pixels, mask=mask)
            except InvalidRequestError as exc:  # this member cannot make it; another may
                plans.append((member.name, exc))
            else:
                plans.append((member.name, job))
        accepted = [job for _, job in plans if isinstance(job, EngineJob)]
        if not accepted:
            raise next(error for _, error in plans if isinstance(error, PlantainError))
        lead = accepted[0]
        return RoutedJob(**lead.fields(), plans=tuple(plans))

    def _first_accepting(self, check: Callable[[Engine], None]) -> None:
        refusals = []
        for member in self.members:
            try:
                check(member)
                return
            except InvalidRequestError as exc:
                refusals.append(exc)
        raise refusals[0]

    # --- running: members in order until one serves ---------------------------------------------

    def run(
        self,
        jobs: Sequence[EngineJob],
        on_step: StepCallback | None = None,
        should_stop: StopFlag | None = None,
        previews: Previews | None = None,
    ) -> list[list[Image.Image]]:
        failures: list[str] = []
        refusals: list[PlantainError] = []
        for member in self.members:
            member_jobs = [_member_job(job, member.name) for job in jobs]
            refused = next((job for job in member_jobs if isinstance(job, PlantainError)), None)
            if refused is not None:  # it planned to a refusal: never tried, counted as refused
                refusals.append(refused)
                failures.append(f"{member.name} refused: {refused.message}")
                self._report(member, "refused", 0.0, [])
                continue
            planned = [job for job in member_jobs if isinstance(job, EngineJob)]
            started = time.perf_counter()
            try:
                made = _run_member(member, planned, on_step, should_stop, previews)
            except TaskCancelledError:
                raise
            except Exception as exc:
                message = exc.message if isinstance(exc, PlantainError) else f"{type(exc).__name__}: {exc}"
                refused_now = isinstance(exc, InvalidRequestError)
                self._report(
                    member, "refused" if refused_now else "failed", time.perf_counter() - started, []
                )
                failures.append(f"{member.name} {'refused' if refused_now else 'failed'}: {message}")
                if isinstance(exc, InvalidRequestError):
                    refusals.append(exc)
                logger.warning(
                    "route %s: engine %s failed (%s); trying the next", self.name, member.name, message
                )
                continue
            self._report(member, "succeeded", time.perf_counter() - started, made)
            for images in made:
                for image in images:
                    image.info.setdefault(SERVED_BY, member.name)
            return made
        if len(refusals) == len(self.members):  # nobody could make it: the caller's to fix
            raise refusals[0]
        raise RouteFailedError(f"route {self.name}: no engine served; " + "; ".join(failures))

    def _report(self, member: Engine, outcome: str, seconds: float, made: list[list[Image.Image]]) -> None:
        report(self._sink(), attempt_of(member, outcome, seconds, made))

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described.pop("fast_path", None)
        return {**described, "route": [member.name for member in self.members]}

    def plan_fast_path(self) -> Any:
        return self.members[0].plan_fast_path()


def lead_family(engine: Engine) -> str:
    """The model family a run's prompts are written for: a route's first member's (the one it
    tries first), else the engine's own."""
    if isinstance(engine, RoutedEngine):
        return lead_family(engine.members[0])
    return engine.family


def attempt_of(
    engine: Engine, outcome: str, seconds: float, made: Sequence[Sequence[Image.Image]]
) -> Attempt:
    """One try of ``engine`` that ended as ``outcome`` after ``seconds``, having ``made`` these images."""
    images = [image for per_job in made for image in per_job]
    return Attempt(engine.name, outcome, seconds, len(images), _cost(engine.settings, seconds, images))


def report(sink: AttemptSink | None, attempt: Attempt) -> None:
    """``attempt`` to ``sink``, if there is one; statistics never fail a run that made its images."""
    if sink is None:
        return
    try:
        sink(attempt)
    except Exception:
        logger.exception("recording a try of engine %s failed", attempt.engine)


def _cost(settings: Settings, seconds: float, images: Sequence[Image.Image]) -> float:
    """A try's cost: the provider's price per image when a provider made them, else device time."""
    origins = [origin_of(image) for image in images]
    if images and all(origin is not None for origin in origins):
        return sum(origin.price_per_image for origin in origins if origin is not None)
    return seconds / 3600 * settings.price_per_device_hour


def _run_member(
    member: Engine,
    jobs: list[EngineJob],
    on_step: StepCallback | None,
    should_stop: StopFlag | None,
    previews: Previews | None,
) -> list[list[Image.Image]]:
    """``jobs`` on ``member``: in one run where it batches, else one run each."""
    if len(jobs) == 1 or member.capabilities.batchable:
        return member.run(jobs, on_step, should_stop, previews)
    return [
        member.run([job], on_step, should_stop, previews if i == 0 else None)[0] for i, job in enumerate(jobs)
    ]


def _member_job(job: EngineJob, member: str) -> EngineJob | PlantainError:
    if isinstance(job, RoutedJob):
        return job.plan_for(member)
    return job  # a job planned elsewhere runs as it is


def _union(members: Sequence[Engine]) -> Capabilities:
    """What a route can do: what any member can (each member still refuses what it cannot)."""
    caps = [member.capabilities for member in members]
    return Capabilities(
        text_to_image=any(c.text_to_image for c in caps),
        edit=any(c.edit for c in caps),
        max_input_images=max(c.max_input_images for c in caps),
        sizes=SizeLimits(
            multiple=min(c.sizes.multiple for c in caps),
            min_side=min(c.sizes.min_side for c in caps),
            max_pixels=max(c.sizes.max_pixels for c in caps),
            max_aspect=max(c.sizes.max_aspect for c in caps),
        ),
        batchable=caps[0].batchable,
        inpaint_max_images=max(c.inpaint_max_images for c in caps),
    )
