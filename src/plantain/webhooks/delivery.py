"""Webhook delivery from the durable outbox: signed per Standard Webhooks, retried with bounded
exponential backoff and jitter, at least once.

A message is written in the same transaction as its task event, so it survives a killed server;
it is marked delivered only after the receiver's 2xx, so a crash in between sends it again with
the same ``webhook-id`` (receivers drop duplicates by that id). Each attempt is signed afresh with
the current timestamp, and the receiver's address is checked again (DNS may have changed since
submission) and connected to directly, so a second DNS answer cannot point it inward.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import httpx

from plantain import __version__
from plantain.logs import task_context
from plantain.net.fetch import pinned_request
from plantain.net.guard import BlockedURLError
from plantain.settings import Settings
from plantain.storage.outbox import Outbox, OutboxMessage
from plantain.webhooks.signing import load_or_create_secret, webhook_headers

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # besides being woken at every new event
BATCH = 64  # due messages read per pass
CONCURRENCY = 8  # deliveries in flight at once (a slow receiver must not hold up the others)


def webhook_secret(settings: Settings) -> str:
    """The configured secret, or the one generated into the data directory on first use."""
    if settings.webhook_secret:
        return settings.webhook_secret
    path = settings.data_dir / "webhook_secret"
    if not path.exists():
        logger.info("generated a webhook signing secret in %s (`plantain webhook-secret` prints it)", path)
    return load_or_create_secret(path)


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float
    max_delay: float
    max_attempts: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            first_delay=settings.webhook_retry_seconds,
            max_delay=settings.webhook_retry_max_seconds,
            max_attempts=settings.webhook_max_attempts,
        )

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """The wait after the ``failed_attempts``-th failure: doubling and capped, its second half
        random so that receivers coming back from an outage are not hit by every sender at once."""
        full = min(self.max_delay, self.first_delay * 2.0 ** (failed_attempts - 1))
        return full / 2 + rng.uniform(0, full / 2)


@dataclass(frozen=True)
class Outcome:
    kind: Literal["delivered", "gone", "retry"]
    detail: str | None = None


class WebhookDeliverer:
    """One thread that hands due messages to a few delivery threads. A task's next message is
    taken only once its previous one is settled (order), and a slow receiver holds up only its
    own tasks' messages."""

    def __init__(
        self,
        outbox: Outbox,
        secret: str,
        *,
        allowed_hosts: Sequence[str],
        timeout: float,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.policy = policy
        self._secret = secret
        self._allowed_hosts = tuple(allowed_hosts)
        self._clock = clock
        self._rng = random.Random()
        self._timeout = timeout
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,  # a redirect could lead anywhere; it counts as a failure
            headers={"user-agent": f"plantain-webhooks/{__version__}"},
        )
        self._pool = ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="plantain-webhook")
        self._in_flight: set[str] = set()  # task ids with a delivery under way
        self._guard = threading.Lock()
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="plantain-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking messages and give those under way ``timeout`` seconds; whatever is not
        delivered stays pending for the next start."""
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        self._client.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                handed_out = self._dispatch()
            except Exception:  # a bug or a closed database must not end delivery for good
                logger.exception("webhook dispatch failed")
                handed_out = 0
            if not handed_out:
                self._wakeup.wait(POLL_SECONDS)
                self._wakeup.clear()

    def _dispatch(self) -> int:
        """Hand due messages of idle tasks to the delivery threads; returns how many."""
        with self._guard:
            free = CONCURRENCY - len(self._in_flight)
        if free <= 0:
            return 0
        # Claimed for twice a delivery's timeout: another front door leaves them alone meanwhile.
        claim = 2 * self._timeout + 10
        due = self.outbox.due(self._clock(), min(BATCH, free), claim)
        for message in due:
            with self._guard:
                self._in_flight.add(message.task_id)
            self._pool.submit(self._deliver, message)
        return len(due)

    def _deliver(self, message: OutboxMessage) -> None:
        with task_context(task_id=message.task_id):  # a pool thread starts with no context
            try:
                self._record(message, self._attempt(message))
            except Exception:  # e.g. the store closed at shutdown: the message stays pending
                logger.exception("recording webhook %s failed", message.id)
            finally:
                with self._guard:
                    self._in_flight.discard(message.task_id)
                self._wakeup.set()  # the task's next message may go now

    def _attempt(self, message: OutboxMessage) -> Outcome:
        """One signed POST; never raises."""
        body = message.body.encode()
        headers = webhook_headers(self._secret, message.id, int(self._clock()), body)
        try:
            request = pinned_request(
                self._client,
                "POST",
                message.url,
                field="webhook",
                allow=self._allowed_hosts,
                headers=headers,
                content=body,
            )
        except BlockedURLError as exc:  # DNS changed since submission (or cannot resolve now)
            return Outcome("retry", exc.message)
        try:
            response = self._client.send(request)
        except httpx.HTTPError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return Outcome("delivered")
        if response.status_code == 410:
            return Outcome("gone", "the receiver answered 410 Gone")
        return Outcome("retry", f"the receiver answered HTTP {response.status_code}")

    def _record(self, message: OutboxMessage, outcome: Outcome) -> None:
        if outcome.kind == "delivered":
            self.outbox.delivered(message.id)
        elif outcome.kind == "gone":
            logger.info(
                "webhook %s: %s; no more webhooks of task %s go there",
                message.id,
                outcome.detail,
                message.task_id,
            )
            self.outbox.gone(message, outcome.detail or "gone")
        elif message.attempts + 1 >= self.policy.max_attempts:
            logger.warning(
                "webhook %s to %s given up after %d attempts: %s",
                message.id,
                message.url,
                message.attempts + 1,
                outcome.detail,
            )
            self.outbox.give_up(message.id, outcome.detail or "failed")
        else:
            wait = self.policy.delay(message.attempts + 1, self._rng)
            self.outbox.retry_at(message.id, self._clock() + wait, outcome.detail or "failed")
