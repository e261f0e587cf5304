"""Queuing a group of requests all or nothing (a Gemini batch).

Every request is checked as :meth:`Scheduler.submit` checks it, and the queue must have room for
the whole group, before the first is queued: a batch whose third request is bad queues nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from plantain.errors import InvalidRequestError, QueueFullError
from plantain.generation import prepare
from plantain.scheduler.scheduler import Scheduler, Submission
from plantain.types import ImageRequest, Task


async def check(scheduler: Scheduler, request: ImageRequest, submission: Submission) -> None:
    """Raise what :meth:`Scheduler.submit` would raise for bad input, without queuing anything.

    submit() decodes the inputs again: a decode is milliseconds, and keeping every request of a
    batch decoded in memory until it is queued would cost more."""
    engine_name = request.engine or scheduler.engine_name(submission.model)
    engine = scheduler.registry.get(engine_name)
    await asyncio.to_thread(prepare, request.model_copy(update={"engine": engine_name}), engine)


def check_room(scheduler: Scheduler, count: int, *, field: str) -> None:
    """400 for a group larger than the whole queue (it can never fit, ``field`` names it); 429
    when the free room is too small now (Retry-After as for a single submission)."""
    limit = scheduler.settings.max_queued_tasks
    if count > limit:
        raise InvalidRequestError(
            f"{field}: {count} requests are more than the queue holds (max_queued_tasks is {limit}); "
            f"split them into batches of at most {limit}",
            field=field,
        )
    queued = scheduler.store.queued_count()
    if queued + count > limit:
        raise QueueFullError(
            f"the queue has room for {limit - queued} more tasks ({queued} waiting, max_queued_tasks "
            f"is {limit}) and this batch has {count}; retry later",
            retry_after=max(1, min(60, queued // 4)),
        )


async def submit_all(
    scheduler: Scheduler, requests: Sequence[ImageRequest], submission: Submission
) -> list[Task]:
    """Queue ``requests`` in order (check them first). If one cannot be queued after all (other
    callers filled the queue meanwhile), those already queued are cancelled and the error raised."""
    tasks: list[Task] = []
    try:
        for request in requests:
            task, _ = await scheduler.submit(request, submission)
            tasks.append(task)
    except BaseException:
        cancel_all(scheduler, [task.id for task in tasks])
        raise
    return tasks


def cancel_all(scheduler: Scheduler, task_ids: Sequence[str]) -> None:
    """Cancel each task that has not ended (queued ones at once, a running one at its next step)."""
    for task_id in task_ids:
        if not scheduler.store.get(task_id).finished:
            scheduler.cancel(task_id)
