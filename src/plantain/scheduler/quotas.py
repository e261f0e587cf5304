"""Per-key quotas: requests per minute, tasks queued or running at once, images per UTC day.

The server-wide defaults (``quota_*`` settings) apply to every API key, and to ``anonymous`` as
one caller when the server needs no key; ``key_quotas`` changes them for single keys. The front
door checks a request against them before it checks anything else about it (a refused request
costs nothing), and the store checks again in the transaction that queues it, so several front
doors on one store never let more through than the quota. A refusal is a 429
``quota_exceeded`` with ``Retry-After``: when the oldest request leaves the minute, at the next
UTC midnight, or (for concurrent tasks) in a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from plantain.errors import QuotaExceededError
from plantain.settings import Settings
from plantain.storage.quotas import DAY_SECONDS, WINDOW_SECONDS, QuotaUse
from plantain.storage.tasks import Admit, TaskStore

CONCURRENT_RETRY_SECONDS = 1  # a task ends at an unknown time: ask again soon


@dataclass(frozen=True)
class KeyLimits:
    requests_per_minute: int | None
    concurrent_tasks: int | None
    images_per_day: int | None

    @property
    def unlimited(self) -> bool:
        return (
            self.requests_per_minute is None and self.concurrent_tasks is None and self.images_per_day is None
        )


class Quotas:
    def __init__(self, settings: Settings) -> None:
        self._default = KeyLimits(
            settings.quota_requests_per_minute, settings.quota_concurrent_tasks, settings.quota_images_per_day
        )
        self._keys = {
            key: KeyLimits(
                **{
                    name: getattr(quota, name)
                    if name in quota.model_fields_set
                    else getattr(self._default, name)
                    for name in ("requests_per_minute", "concurrent_tasks", "images_per_day")
                }
            )
            for key, quota in settings.key_quotas.items()
        }

    def limits(self, key_id: str) -> KeyLimits:
        return self._keys.get(key_id, self._default)

    def admit(self, key_id: str, requests: int = 1, images: int = 1) -> Admit | None:
        """What the store calls with the key's use to let ``requests`` asking for ``images``
        through, or None when the key has no quota."""
        limits = self.limits(key_id)
        if limits.unlimited:
            return None

        def check(use: QuotaUse) -> None:
            refusal = _refusal(key_id, limits, use, requests, images)
            if refusal is not None:
                raise refusal

        return check

    def check(self, key_id: str, store: TaskStore, requests: int = 1, images: int = 1) -> None:
        """QuotaExceededError unless ``key_id`` may send ``requests`` more asking for ``images``
        (read from ``store`` only when the key has a quota)."""
        admit = self.admit(key_id, requests, images)
        if admit is not None:
            admit(store.quota_use(key_id))

    def allowance(self, key_id: str, use: QuotaUse) -> dict[str, Any]:
        """Each quota's limit, use and what remains (``GET /v1/usage``); limit null: none."""
        limits = self.limits(key_id)
        used = {
            "requests_per_minute": use.requests_in_window,
            "concurrent_tasks": use.active_tasks,
            "images_per_day": use.images_today,
        }
        return {
            name: {
                "limit": getattr(limits, name),
                "used": count,
                "remaining": None if getattr(limits, name) is None else max(0, getattr(limits, name) - count),
            }
            for name, count in used.items()
        }


def _refusal(
    key_id: str, limits: KeyLimits, use: QuotaUse, requests: int, images: int
) -> QuotaExceededError | None:
    who = "this server's callers" if key_id == "anonymous" else f"API key {key_id}"
    if (
        limits.requests_per_minute is not None
        and use.requests_in_window + requests > limits.requests_per_minute
    ):
        oldest = use.window_oldest if use.window_oldest is not None else use.now
        wait = max(1, math.ceil(oldest + WINDOW_SECONDS - use.now))
        return _exceeded(
            f"{who} sent {use.requests_in_window} requests in the last minute and may send "
            f"{limits.requests_per_minute} (quota_requests_per_minute)",
            wait,
            "requests_per_minute",
            limits.requests_per_minute,
        )
    if limits.concurrent_tasks is not None and use.active_tasks + requests > limits.concurrent_tasks:
        return _exceeded(
            f"{who} has {use.active_tasks} tasks queued or running and may have "
            f"{limits.concurrent_tasks} at once (quota_concurrent_tasks)",
            CONCURRENT_RETRY_SECONDS,
            "concurrent_tasks",
            limits.concurrent_tasks,
        )
    if limits.images_per_day is not None and use.images_today + images > limits.images_per_day:
        midnight = (math.floor(use.now / DAY_SECONDS) + 1) * DAY_SECONDS
        return _exceeded(
            f"{who} asked for {use.images_today} images today (UTC) and may ask for "
            f"{limits.images_per_day} (quota_images_per_day); this request asks for {images}",
            max(1, math.ceil(midnight - use.now)),
            "images_per_day",
            limits.images_per_day,
        )
    return None


def _exceeded(why: str, wait: int, quota: str, limit: int) -> QuotaExceededError:
    message = f"quota exceeded: {why}; retry in {wait} s"
    return QuotaExceededError(message, retry_after=wait, quota=quota, limit=limit)
