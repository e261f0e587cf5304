"""Checked inputs kept for the worker, so an input image is decoded once between check and run.

The front door decodes every input while checking a request (a bad image is a 400, never a failed
task) and sends the resulting :class:`EngineJob` with its ``queued`` signal. On a same-process
channel the worker keeps it here until it claims the task. Decoded images are large (12 MiB for
a 2K RGB input) and a queue may hold thousands of tasks, so this holds at most ``max_bytes`` of
decoded pixels, oldest dropped first; a task whose job is not here is prepared again from the
store, as it is after a restart or on a cross-process channel.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from plantain.engines.base import EngineJob

MAX_BYTES = 512 * 2**20  # decoded input pixels held for queued tasks
MAX_JOBS = 4096  # jobs held (a text-only job holds no pixels, but each costs a little memory)


class PreparedJobs:
    def __init__(self, max_bytes: int = MAX_BYTES, max_jobs: int = MAX_JOBS) -> None:
        self._jobs: OrderedDict[str, tuple[EngineJob, int]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_jobs = max_jobs
        self._lock = threading.Lock()  # kept on the loop's thread, taken on the worker's

    def keep(self, task_id: str, job: EngineJob) -> None:
        size = job_bytes(job)
        if size > self._max_bytes:
            return
        with self._lock:
            self._jobs[task_id] = (job, size)
            self._bytes += size
            while self._bytes > self._max_bytes or len(self._jobs) > self._max_jobs:
                _, (_, dropped) = self._jobs.popitem(last=False)
                self._bytes -= dropped

    def peek(self, task_id: str) -> EngineJob | None:
        with self._lock:
            kept = self._jobs.get(task_id)
        return None if kept is None else kept[0]

    def take(self, task_id: str) -> EngineJob | None:
        with self._lock:
            kept = self._jobs.pop(task_id, None)
            if kept is None:
                return None
            self._bytes -= kept[1]
        return kept[0]

    def drop(self, task_id: str) -> None:
        self.take(task_id)

    def __len__(self) -> int:
        return len(self._jobs)


def job_bytes(job: EngineJob) -> int:
    """The decoded pixels ``job`` holds."""
    return sum(image.width * image.height * len(image.getbands()) for image in job.images)
