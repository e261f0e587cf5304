"""Queuing a group of requests all or nothing (a Gemini batch).

The caller checks every request (:meth:`FrontDoor.check`) and the room for all of them
(:meth:`FrontDoor.check_capacity`) before the first is queued, so a batch whose third request is
bad queues nothing; :func:`enqueue_all` then queues the checked requests without decoding them again.
"""

from __future__ import annotations

from collections.abc import Sequence

from plantain.scheduler.frontdoor import Checked, FrontDoor, Submission
from plantain.types import Task


async def enqueue_all(door: FrontDoor, checked: Sequence[Checked], submission: Submission) -> list[Task]:
    """Queue ``checked`` in order. If one cannot be queued after all, those already queued are
    cancelled and the error raised."""
    tasks: list[Task] = []
    try:
        for each in checked:
            task, _ = await door.enqueue(each, submission)
            tasks.append(task)
    except BaseException:
        cancel_all(door, [task.id for task in tasks])
        raise
    return tasks


def cancel_all(door: FrontDoor, task_ids: Sequence[str]) -> None:
    """Cancel each task (queued ones at once, a running one at its next step; ended ones stay)."""
    for task_id in task_ids:
        door.cancel(task_id)
