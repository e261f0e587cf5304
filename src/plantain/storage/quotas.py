"""What an API key has used of its quotas, counted in the store inside the transaction that
queues a request, so two front doors cannot both let through the last allowed request.

Requests in the last 60 s and tasks queued or running are counted from the tasks themselves
(kept at least 60 s after they end); images per UTC day in ``quota_days``, which outlives expired
tasks. The limits are the front door's (``scheduler/quotas.py``); the store only counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from plantain.storage.db import Connection

WINDOW_SECONDS = 60.0
DAY_SECONDS = 86400


@dataclass(frozen=True)
class QuotaUse:
    requests_in_window: int  # tasks submitted in the last WINDOW_SECONDS
    window_oldest: float | None  # when the oldest of them was submitted
    active_tasks: int  # queued or running
    images_today: int  # asked for by requests accepted this UTC day
    now: float


def utc_day(now: float) -> int:
    return int(now // DAY_SECONDS)


def quota_use(db: Connection, key_id: str, now: float) -> QuotaUse:
    window = db.execute(
        "SELECT COUNT(*), MIN(created_at) FROM tasks WHERE api_key_id = ? AND created_at > ?",
        (key_id, now - WINDOW_SECONDS),
    ).fetchone()
    active = db.execute(
        "SELECT COUNT(*) FROM tasks WHERE api_key_id = ? AND status IN ('queued', 'running')", (key_id,)
    ).fetchone()[0]
    images = db.execute(
        "SELECT images FROM quota_days WHERE api_key_id = ? AND day = ?", (key_id, utc_day(now))
    ).fetchone()
    return QuotaUse(int(window[0]), window[1], int(active), int(images[0]) if images else 0, now)


def count_images(db: Connection, key_id: str, now: float, images: int) -> None:
    """Add a queued request's images to its key's day."""
    db.execute(
        "INSERT INTO quota_days (api_key_id, day, images) VALUES (?, ?, ?) "
        "ON CONFLICT (api_key_id, day) DO UPDATE SET images = quota_days.images + excluded.images",
        (key_id, utc_day(now), images),
    )
