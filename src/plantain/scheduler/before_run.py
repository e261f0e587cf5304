"""What may change a task's job after it is claimed and before the engine runs: which earlier
image of a conversation an edit means, search grounding (search/, docs/grounding.md) and the
planner stage (planner/, docs/planner.md).

Both run in the worker, beside the engine, so a cluster's front doors need neither a language
model nor network access to a search provider. Grounding runs first: its search queries are the
planner's when the planner runs for the task (else the prompt itself), its web results become
facts for the planner's rewrite, and its best images become reference images. A task that gains
references is planned again (``generation.prepare``) with its seed and output size kept, so the
same request still makes an image of the same size and the same noise; such a task runs alone in
its batch (the worker never batches a grounded task), since its inputs are its own. So does a
conversation's edit whose earlier image the planner resolves first (``ImageRequest.earlier``):
when it picks another image than the dialect's rule did, the task is planned again the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from plantain.engines.base import Engine
from plantain.engines.planning import most_inputs
from plantain.errors import ConfigurationError
from plantain.generation import prepare
from plantain.imaging.background import steered
from plantain.limits import Limits
from plantain.providers.routing import lead_family
from plantain.scheduler.batching import Batch, Member
from plantain.types import ImageRequest, InputImage, PlanResult

if TYPE_CHECKING:
    from plantain.planner.stage import Planner, Queries, Resolved
    from plantain.search.grounder import Grounder

logger = logging.getLogger(__name__)

NO_SEARCH_PROVIDER = (
    "grounding: this worker has no search provider (setting search_provider, PLANTAIN_SEARCH_PROVIDER, "
    "is none), so the request cannot be looked up; configure one (docs/grounding.md) or send the "
    "request without search"
)


def runs_alone(request: ImageRequest) -> bool:
    """Whether ``request``'s inputs may change before its run (grounding's references, an edit
    resolved to another earlier image), so it never shares a batch."""
    return request.grounding or bool(request.earlier)


class BeforeRun:
    """Grounding and planning for the members of a batch, one member at a time."""

    def __init__(
        self, limits: Limits, planner: Planner | None = None, grounder: Grounder | None = None
    ) -> None:
        self.limits = limits
        self.planner = planner
        self.grounder = grounder

    def wanted(self, request: ImageRequest) -> bool:
        """Whether anything here runs for ``request`` (else its job goes to the engine as it is)."""
        return request.grounding or self._plans(request)

    def apply(self, batch: Batch, member: Member) -> None:
        """Ground and plan ``member`` for ``batch``'s engine, updating its request, job, plan and
        grounding; raises what failed (the worker ends that task with it)."""
        planning = self._plans(member.request)
        edited = self._resolve_edit(batch.engine, member) if planning and member.request.earlier else None
        request = member.request  # as the caller meant it: references found below are not theirs
        queries = self._queries(request) if request.grounding and planning else None
        if request.grounding:
            self._ground(batch.engine, member, queries)
        if planning and self.planner is not None:
            facts = member.grounding.facts if member.grounding is not None else []
            plan = self.planner.plan(
                request,  # a new image stays a new image when references were added
                lead_family(batch.engine),
                facts=facts,
                images=self._seen_images(member),
                queries=queries,
            )
            if edited is not None:
                plan = _with_resolution(plan, edited)
            revised = steered(member.request.model_copy(update={"prompt": plan.revised_prompt})).prompt
            member.plan = plan
            member.job = member.job.with_prompt(revised)

    def _resolve_edit(self, engine: Engine, member: Member) -> Resolution:
        """Which earlier image the edit means, by the planner; when it picks another than the
        dialect's rule did (``from_history`` leading images), ``member`` is planned again with it
        in their place, its seed kept."""
        assert self.planner is not None
        request = member.request
        resolved = self.planner.resolve_edit(request.prompt, request.history)
        chosen = () if resolved.index is None else (request.earlier[resolved.index],)
        ruled = request.images[: request.from_history]
        images = (*chosen, *request.images[request.from_history :])
        same = [image.data for image in chosen] == [image.data for image in ruled]
        if not resolved.decided or same or not (images or engine.capabilities.text_to_image):
            return Resolution(resolved, None)
        job = member.job
        update = {"images": images, "seed": job.seeds[0], "from_history": len(chosen)}
        member.request = request.model_copy(update=update)
        member.job = prepare(member.request, engine, self.limits)
        logger.info("task %s: the edit means %s", member.task.id, chosen[0].label if chosen else "no image")
        return Resolution(resolved, chosen[0].label if chosen else "")

    def _plans(self, request: ImageRequest) -> bool:
        return self.planner is not None and self.planner.enabled_for(request)

    def _queries(self, request: ImageRequest) -> Queries | None:
        assert self.planner is not None
        return self.planner.queries(request)

    def _ground(self, engine: Engine, member: Member, queries: Queries | None) -> None:
        if self.grounder is None:
            raise ConfigurationError(NO_SEARCH_PROVIDER)
        request = member.request
        grounding, references = self.grounder.ground(
            queries.queries if queries is not None else (),  # none: the grounder searches the prompt
            request.prompt,
            max_references=self.room_for_references(engine, request),
            limits=self.limits,
            request_id=member.task.id,
        )
        member.grounding = grounding
        logger.info(
            "task %s grounded: %d queries, %d sources, %d reference images in %.2f s",
            member.task.id,
            len(grounding.queries),
            len(grounding.sources),
            len(references),
            grounding.seconds,
        )
        if references:
            self._add_references(engine, member, references)

    def room_for_references(self, engine: Engine, request: ImageRequest) -> int:
        """How many reference images ``engine`` can still take beside ``request``'s own: none for
        an engine that does not edit, and within the server's input limit."""
        most = min(most_inputs(engine, request), self.limits.max_input_images)
        return max(0, most - len(request.images))

    def _add_references(self, engine: Engine, member: Member, references: Sequence[InputImage]) -> None:
        """Plan ``member`` again with ``references`` after its own inputs, keeping its seed and its
        output size (a reference must not change the shape of the answer)."""
        job = member.job
        request = member.request.model_copy(
            update={
                "images": (*member.request.images, *references),
                "seed": job.seeds[0],
                "width": job.width,
                "height": job.height,
            }
        )
        member.job = prepare(request, engine, self.limits)
        member.request = request

    def _seen_images(self, member: Member) -> tuple[Image.Image, ...]:
        """The input images a vision-language planner reads: the engine's own decoded inputs (the
        caller's and any references), when the planner's model can see."""
        if self.planner is None or not self.planner.model.sees_images:
            return ()
        return member.job.images


@dataclass(frozen=True)
class Resolution:
    """The planner's answer on which earlier image an edit means, and the label of the one it
    chose when that changed the inputs ("" for none: a new image; None: the rule's stood)."""

    resolved: Resolved
    edited: str | None


def _with_resolution(plan: PlanResult, edited: Resolution) -> PlanResult:
    """``plan`` accounting for the resolution's generation too, and naming its choice."""
    resolved = edited.resolved
    return plan.model_copy(
        update={
            "seconds": plan.seconds + resolved.seconds,
            "input_tokens": plan.input_tokens + resolved.input_tokens,
            "output_tokens": plan.output_tokens + resolved.output_tokens,
            "edited": edited.edited,
        }
    )
