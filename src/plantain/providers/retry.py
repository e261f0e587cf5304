"""Retries of one provider call: exponential backoff with full jitter, ``Retry-After`` honoured.

Only what may pass by itself is retried (HTTP 429, 5xx, a timeout or a dropped connection); a
refusal (any other 4xx) fails at once, so a route can move on to its next engine without delay.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from plantain.errors import ProviderError, TaskCancelledError

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    retries: int = 2  # tries after the first
    base_seconds: float = 0.5  # the first wait's ceiling; each later one doubles
    max_seconds: float = 8.0  # no wait is longer, Retry-After included

    def delay(
        self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` from 0): the provider's Retry-After
        when it sent one, else a random time up to base * 2**attempt ("full jitter", so that
        many callers refused together do not come back together); never over ``max_seconds``."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_seconds)
        ceiling: float = min(self.max_seconds, self.base_seconds * 2.0**attempt)
        return ceiling * rand()


def with_retries(
    call: Callable[[], T],
    backoff: Backoff,
    *,
    what: str,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried again after a retryable :class:`ProviderError` up to ``backoff.retries``
    times; the last error is raised. A stop request ends the waiting."""
    attempt = 0
    while True:
        try:
            return call()
        except ProviderError as exc:
            if not exc.retryable or attempt >= backoff.retries:
                raise
            wait = backoff.delay(attempt, exc.retry_after)
            logger.warning(
                "%s: %s; trying again in %.2f s (retry %d of %d)",
                what,
                exc.message,
                wait,
                attempt + 1,
                backoff.retries,
            )
            _wait(wait, should_stop, sleep)
            attempt += 1


def _wait(seconds: float, should_stop: Callable[[], bool], sleep: Callable[[float], None]) -> None:
    """``seconds`` in short sleeps, a stop request read between them. Counted from the sleeps
    asked for, not the clock, so that an injected ``sleep`` (tests) is the whole wait."""
    left = seconds
    while left > 0:
        if should_stop():
            raise TaskCancelledError("cancelled while waiting to retry a provider")
        step = min(left, 0.1)
        sleep(step)
        left -= step
