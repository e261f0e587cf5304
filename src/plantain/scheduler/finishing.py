"""Finishing: what happens to a run's images after the engine, off the engine's thread.

Per task: screen the images, mark (watermark) and encode them, sign their content credentials,
write each file durably, then record the task's end with its usage and announce it. The work runs
on the post-processing stage's threads (``postprocess.py``) while the worker starts its next run;
ends are recorded one at a time in queue order. The worker hands each run over through
:meth:`Finishing.submit`, its only way in; the front door hears of the end through the store and
the channel, the ``completed`` event carrying the encoded images (a same-process channel hands
them to a waiting synchronous caller, which then reads no file back).
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from plantain.generation import OutputScreen, finish_images, upscaled
from plantain.logs import task_context
from plantain.providers.base import origin_of, served_by
from plantain.scheduler.batching import Finished, Processed
from plantain.scheduler.outcomes import Outcomes
from plantain.scheduler.postprocess import PostProcessor
from plantain.types import GeneratedImage, TaskOutput, TaskResult
from plantain.usage import SECONDS_DECIMALS, task_usage

POSTPROCESS_BACKLOG = 2  # finished runs waiting for or in post-processing before the engine waits


class Finishing:
    def __init__(self, outcomes: Outcomes, screen: OutputScreen, *, workers: int) -> None:
        self.outcomes = outcomes
        self.store = outcomes.store
        self.screen = screen  # what images are screened with (the safety policy's classifier)
        self._workers = workers
        self._stage: PostProcessor[Finished, Processed] | None = None

    def start(self) -> None:
        self._stage = PostProcessor(
            self._process,
            self._commit,
            workers=self._workers,
            backlog=POSTPROCESS_BACKLOG,
            context=lambda finished: task_context(task_id=finished.member.task.id),
        )

    def submit(self, finished: list[Finished]) -> None:
        """One run's finished tasks; blocks while ``POSTPROCESS_BACKLOG`` runs are already here,
        which bounds the decoded images held in memory."""
        if self._stage is None:
            raise RuntimeError("Finishing.submit() before start()")
        self._stage.submit(finished)

    def close(self) -> None:
        """Finish and record everything submitted (a drain waits for the images already made)."""
        if self._stage is not None:
            self._stage.close()

    def _process(self, finished: Finished) -> Processed:
        """Screen, mark, encode, sign and write one task's images (on a post-processing thread)."""
        started = time.perf_counter()
        member = finished.member
        images = finish_images(finished.images, member.request, member.job, self.screen, member.stamper)
        outputs = []
        for image in images:
            file_id = self.store.runs.new_file_id()
            self.store.blobs.put(file_id, image.data, image.media_type)
            outputs.append(_output(file_id, image))
        return Processed(tuple(outputs), time.perf_counter() - started, tuple(images))

    def _commit(self, finished: Finished, processed: Future[Processed]) -> None:
        """Record one task's end, in queue order (on the post-processing stage's commit thread)."""
        task = finished.member.task
        try:
            self._succeed(finished, processed.result())
        except Exception as exc:  # a blocked image, a full disk: this task fails, no other
            self.outcomes.end(task, exc, self.outcomes.used(task, finished.device_seconds))

    def _succeed(self, finished: Finished, processed: Processed) -> None:
        member = finished.member
        stored = TaskResult(
            engine=member.task.engine,
            outputs=processed.outputs,
            steps=member.job.steps,
            guidance=member.job.guidance,
            seconds=finished.seconds,
            plan=member.plan,
            grounding=member.grounding,
            upscaled=upscaled(member.job),
        )
        usage = task_usage(
            member.task,
            images=len(processed.outputs),
            device_seconds=finished.device_seconds,
            price=self.outcomes.price,
            provenance_seconds=member.stamper.seconds,
            served_by=_served_by(finished),
            provider_cost=_provider_cost(finished),
            plan=member.plan,
            grounding=member.grounding,
        )
        data: dict[str, Any] = {
            "outputs": [output.model_dump() for output in processed.outputs],
            "seconds": finished.seconds,
            "usage": usage.model_dump(),
            "postprocess_seconds": round(processed.seconds, SECONDS_DECIMALS),
            "batch": {"tasks": finished.batch_tasks, "images": finished.batch_images},
        }
        self.outcomes.release(member.task.id)
        event = self.store.runs.succeed(member.task.id, stored, data, usage, member.task.attempts)
        if event is None:  # ended meanwhile, or its lease passed to another run: not recorded
            for output in processed.outputs:
                self.store.blobs.delete(output.file_id)
        self.outcomes.publish(event, processed.images)


def _served_by(finished: Finished) -> str:
    """The engine that made the images: a route's member or a provider tags them; else the task's."""
    tagged = {served_by(image) for image in finished.images} - {None}
    return str(tagged.pop()) if len(tagged) == 1 else finished.member.task.engine


def _provider_cost(finished: Finished) -> float | None:
    """A remote provider's price for the images it made (None: this server made them)."""
    origins = [origin_of(image) for image in finished.images]
    if not origins or any(origin is None for origin in origins):
        return None
    return sum(origin.price_per_image for origin in origins if origin is not None)


def _output(file_id: str, image: GeneratedImage) -> TaskOutput:
    return TaskOutput(
        file_id=file_id,
        media_type=image.media_type,
        width=image.width,
        height=image.height,
        seed=image.seed,
        provenance=image.provenance,
    )
