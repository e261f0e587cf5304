"""A provider's retries: only what may pass by itself is tried again, after a jittered,
growing wait or the provider's own Retry-After, and never longer than the cap."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from plantain.errors import ProviderError, TaskCancelledError
from plantain.providers.base import retry_after
from plantain.providers.retry import Backoff, with_retries


def flaky(failures: list[ProviderError]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "made"

    return calls, call


@pytest.mark.parametrize("status", [None, 429, 500, 503])
def test_what_may_pass_is_retried_until_it_serves(status: int | None) -> None:
    waits: list[float] = []
    calls, call = flaky([ProviderError("busy", upstream_status=status)] * 2)
    assert with_retries(call, Backoff(retries=2, base_seconds=0.0), what="p", sleep=waits.append) == "made"
    assert len(calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 200])
def test_a_refusal_is_not_retried(status: int) -> None:
    calls, call = flaky([ProviderError("no", upstream_status=status)])
    with pytest.raises(ProviderError):
        with_retries(call, Backoff(retries=3), what="p", sleep=lambda s: None)
    assert len(calls) == 1


def test_the_last_error_is_raised_once_the_retries_are_spent() -> None:
    calls, call = flaky([ProviderError(f"down {i}", upstream_status=503) for i in range(5)])
    with pytest.raises(ProviderError, match="down 2"):
        with_retries(call, Backoff(retries=2, base_seconds=0.0), what="p", sleep=lambda s: None)
    assert len(calls) == 3


def test_waits_grow_with_full_jitter_and_are_capped() -> None:
    backoff = Backoff(retries=5, base_seconds=0.5, max_seconds=3.0)
    assert [backoff.delay(k, None, rand=lambda: 1.0) for k in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.delay(3, None, rand=lambda: 0.25) == 0.75  # a random part of the ceiling


def test_retry_after_is_waited_instead_and_capped_too() -> None:
    backoff = Backoff(retries=1, base_seconds=0.5, max_seconds=3.0)
    assert backoff.delay(0, 2.0) == 2.0 and backoff.delay(0, 120.0) == 3.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: at once


def test_a_stop_ends_the_wait() -> None:
    calls, call = flaky([ProviderError("busy", upstream_status=429, retry_after=60)])
    with pytest.raises(TaskCancelledError):
        with_retries(call, Backoff(retries=1, max_seconds=60), what="p", should_stop=lambda: True)
    assert len(calls) == 1
