"""Keeping this process's claims alive, and taking back the claims of workers that died.

Every third of ``lease_seconds`` the keeper renews the lease of each task this process holds (from
its claim, through the engine run and finishing, to its recorded end). A task whose lease this
process lost (another run took it after the lease ran out) is stopped here at its next step and
nothing more of it is recorded. The same tick queues again the tasks whose lease ran out anywhere,
or fails them after ``max_attempts`` (``storage/leases.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from plantain.scheduler.channel import Signal
from plantain.scheduler.outcomes import Outcomes

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, outcomes: Outcomes, *, max_attempts: int, on_lost: Callable[[str], None]) -> None:
        self.outcomes = outcomes
        self.store = outcomes.store
        self.max_attempts = max_attempts
        self._on_lost = on_lost
        self._interval = self.store.runs.lease_seconds / 3
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._keep, name="plantain-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(10)

    def tick(self) -> None:
        """Renew what is held here; take back what ran out elsewhere."""
        for task_id in self.store.leases.renew(self.outcomes.held()):
            logger.warning("task %s: this worker's lease on it ran out; another run has it", task_id)
            self.outcomes.release(task_id)
            self._on_lost(task_id)
        requeued, failed = self.store.leases.reclaim_expired(self.max_attempts)
        for event in requeued:
            logger.warning("task %s queued again: its worker stopped renewing its lease", event.task_id)
            self.outcomes.publish(event)
            self.outcomes.channel.signal(Signal("queued", event.task_id))
        for event in failed:
            self.outcomes.publish(event)

    def _keep(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.tick()
            except Exception:  # a store hiccup must not end the renewals for good
                logger.exception("renewing leases failed")
