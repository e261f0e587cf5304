"""The post-processing stage: what happens to a batch's images after the engine, off the engine
thread, so the engine starts its next batch at once.

Each submitted group (one engine run's tasks) is worked on a small thread pool — the heavy parts
(numpy, Pillow encoders, C2PA signing) release the GIL — and committed one item at a time in
submission order on one thread, so tasks end in queue order and a task's ``completed`` event comes
after all of its progress. At most ``backlog`` groups wait or run here: the engine thread blocks
when it gets that far ahead, which bounds the decoded images held in memory.

Each item's work and commit run inside ``context(item)`` (e.g. its task's log context): these
threads do not inherit the submitting thread's context variables.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class PostProcessor(Generic[Item, Result]):
    """``work`` runs on each item on ``workers`` threads; ``commit`` gets each item with its
    finished future (``result()`` raises what ``work`` raised), in submission order."""

    def __init__(
        self,
        work: Callable[[Item], Result],
        commit: Callable[[Item, Future[Result]], None],
        *,
        workers: int,
        backlog: int,
        context: Callable[[Item], AbstractContextManager[object]] = lambda _item: nullcontext(),
    ) -> None:
        self._work = work
        self._commit = commit
        self._context = context
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plantain-post")
        # One slot is the group being committed; a group waits in the queue for each other one.
        self._groups: queue.Queue[list[tuple[Item, Future[Result]]] | None] = queue.Queue(
            maxsize=max(1, backlog - 1)
        )
        self._committer = threading.Thread(target=self._commit_all, name="plantain-commit", daemon=True)
        self._committer.start()

    def submit(self, items: Sequence[Item]) -> None:
        """Start ``items``' work now; blocks while ``backlog`` groups are already here."""
        if items:
            self._groups.put([(item, self._pool.submit(self._work_in_context, item)) for item in items])

    def close(self) -> None:
        """Finish and commit everything submitted, then stop the threads."""
        self._groups.put(None)
        self._committer.join()
        self._pool.shutdown(wait=True)

    def _commit_all(self) -> None:
        while (group := self._groups.get()) is not None:
            for item, future in group:
                future.exception()  # wait for it (an error is the commit's to report)
                with self._context(item):
                    try:
                        self._commit(item, future)
                    except Exception:  # one task's bad commit must not strand the tasks after it
                        logger.exception("committing a finished task failed")

    def _work_in_context(self, item: Item) -> Result:
        with self._context(item):
            return self._work(item)
