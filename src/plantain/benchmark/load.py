"""A closed-loop load: N threads each send a request, wait for its answer, send the next.

So exactly ``concurrency`` requests are in flight until the stop rule (a count, or a deadline
after which no new request starts) holds. The first failure stops every thread and is raised:
a benchmark with failed requests measures something else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from plantain.benchmark.memory import PeakMemory
from plantain.benchmark.stats import RepeatRun, Sample

Call = Callable[[int], Sample]
"""Runs request number ``index`` and measures it."""


class _Dispenser:
    """Hands out request numbers until the stop rule holds or a request fails."""

    def __init__(self, first: int, count: int | None, deadline: float | None) -> None:
        self.next_index = first
        self._end = None if count is None else first + count
        self._deadline = deadline
        self._lock = threading.Lock()
        self.failure: BaseException | None = None

    def take(self) -> int | None:
        with self._lock:
            if self.failure is not None or (self._end is not None and self.next_index >= self._end):
                return None
            if self._deadline is not None and time.perf_counter() >= self._deadline:
                return None
            index, self.next_index = self.next_index, self.next_index + 1
            return index

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.failure = self.failure or error


def drive(
    call: Call,
    *,
    concurrency: int,
    first_index: int,
    requests: int | None = None,
    duration: float | None = None,
) -> tuple[RepeatRun, int]:
    """Run requests ``first_index``, … with ``concurrency`` in flight until ``requests`` have run
    or ``duration`` seconds have passed; returns the repeat and the next unused request number."""
    memory = PeakMemory()
    memory.reset()
    started = time.perf_counter()
    dispenser = _Dispenser(first_index, requests, None if duration is None else started + duration)
    samples: dict[int, Sample] = {}
    threads = [
        threading.Thread(target=_worker, args=(call, dispenser, samples), daemon=True)
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if dispenser.failure is not None:
        raise dispenser.failure
    run = RepeatRun(
        samples=tuple(samples[index] for index in sorted(samples)),
        wall=wall,
        peak_rss_bytes=memory.rss(),
        peak_gpu_bytes=memory.gpu(),
    )
    return run, dispenser.next_index


def _worker(call: Call, dispenser: _Dispenser, samples: dict[int, Sample]) -> None:
    while (index := dispenser.take()) is not None:
        try:
            samples[index] = call(index)
        except BaseException as error:  # handed to the caller, which raises it
            dispenser.fail(error)
            return
