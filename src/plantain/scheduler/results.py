"""A finished task as its caller gets it: its images (handed over in memory or read back from
its files) with the run's numbers, or its error raised again."""

from __future__ import annotations

from plantain.errors import EngineRunError, PlantainError, TaskCancelledError, error_from_code
from plantain.storage.tasks import TaskStore
from plantain.types import GeneratedImage, ImageResult, Task


def result_from(task: Task, images: tuple[GeneratedImage, ...]) -> ImageResult:
    """``task``'s result with ``images`` (its outputs, in order)."""
    result = task.result
    if task.status != "succeeded" or result is None:
        raise error_of(task)
    return ImageResult(
        engine=result.engine,
        images=images,
        steps=result.steps,
        guidance=result.guidance,
        seconds=result.seconds,
        plan=result.plan,
        grounding=result.grounding,
        upscaled=result.upscaled,
    )


def images_of(task: Task, store: TaskStore) -> tuple[GeneratedImage, ...]:
    """A succeeded task's images, read back from its files."""
    if task.result is None:
        raise error_of(task)
    images = []
    for output in task.result.outputs:
        images.append(
            GeneratedImage(
                data=store.blobs.get(output.file_id),
                media_type=output.media_type,
                width=output.width,
                height=output.height,
                seed=output.seed,
                provenance=output.provenance,
            )
        )
    return tuple(images)


def error_of(task: Task) -> PlantainError:
    """The error a task that did not succeed ended with, as the exception it was."""
    if task.status == "cancelled":
        return TaskCancelledError(f"task {task.id} was cancelled")
    if task.error is None:
        return EngineRunError(f"task {task.id} ended as {task.status} without a result")
    return error_from_code(task.error.code, task.error.message, task.error.field, task.error.category)
