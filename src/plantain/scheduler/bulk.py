"""Queuing a group of requests all or nothing (a Gemini batch).

The caller checks every request (:meth:`Scheduler.check`) and the room for all of them
(:meth:`Scheduler.check_capacity`) before the first is queued, so a batch whose third request is
bad queues nothing; :func:`enqueue_all` then queues the checked requests without decoding them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from plantain.scheduler.scheduler import Scheduler, Submission
from plantain.types import ImageRequest, Task


async def enqueue_all(
    scheduler: Scheduler, checked: Sequence[ImageRequest], submission: Submission
) -> list[Task]:
    """Queue ``checked`` in order. If one cannot be queued after all, those already queued are
    cancelled and the error raised."""
    tasks: list[Task] = []
    try:
        for request in checked:
            task, _ = await scheduler.enqueue(request, submission)
            tasks.append(task)
    except BaseException:
        cancel_all(scheduler, [task.id for task in tasks])
        raise
    return tasks


def cancel_all(scheduler: Scheduler, task_ids: Sequence[str]) -> None:
    """Cancel each task (queued ones at once, a running one at its next step; ended ones stay)."""
    for task_id in task_ids:
        scheduler.cancel(task_id)
