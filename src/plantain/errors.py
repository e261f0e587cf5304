"""Plantain's one error hierarchy.

Every error a user can cause or meet carries a stable ``code`` and the HTTP ``status`` it maps to;
the dialects (Gemini, OpenAI, tasks) and the CLI render them, this module knows none of them.
Messages name the field, the value and the limit, and say what to do where there is a remedy.

    PlantainError                       500 internal
    ├── InvalidRequestError             400 invalid_request   (a field's value is not allowed)
    │   ├── UnsupportedSizeError        400 unsupported_size  (engine cannot make that size natively)
    │   ├── UnsupportedTaskError        400 unsupported_task  (e.g. edit on a text-to-image engine)
    │   ├── TooManyImagesError          400 too_many_images   (more inputs than the engine takes)
    │   ├── InvalidImageError           400 invalid_image     (input bytes are not a usable image)
    │   │   └── ImageTooLargeError      400 image_too_large   (over max_image_bytes or max_input_pixels)
    │   ├── ContentBlockedError         400 content_blocked   (safety/policy.py: prompt or output refused)
    │   ├── BlockedURLError             400 url_blocked       (net/guard.py: a URL Plantain will not fetch)
    │   └── FetchError                  400 url_fetch_failed  (net/fetch.py: an allowed URL gave no image)
    ├── ConfigurationError              500 invalid_configuration (a PLANTAIN_* setting is wrong)
    ├── AuthenticationError             401 unauthenticated   (no API key sent)
    ├── PermissionDeniedError           403 permission_denied (a key that is not configured)
    ├── NotFoundError                   404 not_found
    │   ├── RouteNotFoundError          404 route_not_found   (no such route on this server)
    │   ├── UnknownEngineError          404 unknown_engine
    │   └── UnknownModelError           404 model_not_found   (a dialect's model name)
    ├── MethodNotAllowedError           405 method_not_allowed
    ├── ConflictError                   409 conflict          (an arena pair voted already)
    ├── PayloadTooLargeError            413 payload_too_large (request body over max_body_bytes)
    ├── IdempotencyConflictError        422 idempotency_conflict (a key reused with another body)
    ├── QueueFullError                  429 queue_full        (carries retry_after seconds)
    ├── QuotaExceededError              429 quota_exceeded    (a key's quota; carries retry_after)
    ├── MissingWeightsError             503 missing_weights   (checkpoint not installed)
    ├── ShuttingDownError               503 shutting_down     (draining after SIGTERM; carries retry_after)
    ├── ServerUnreachableError          503 server_unreachable (client/: no answer from the server)
    ├── EngineLoadError                 500 engine_load_failed
    ├── EngineRunError                  500 engine_failed
    │   └── AttemptsExhaustedError      500 attempts_exhausted (interrupted by restarts too often)
    └── TaskCancelledError              499 cancelled         (stop flag honoured mid-run)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import ClassVar


class PlantainError(Exception):
    """Base of every error Plantain raises on purpose."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field  # the request field at fault, for dialects that report it (OpenAI `param`)

    def renamed(self, names: Mapping[str, str]) -> PlantainError:
        """This error pointed at a dialect's name for its field (``num_images`` -> OpenAI's ``n``),
        in ``field`` and in the message's leading name; unchanged when the field has no other name."""
        if self.field is None:
            return self
        name = names.get(self.field) or _renamed_item(self.field, names)
        if name is None:
            return self
        prefix = f"{self.field}:"
        message = (
            name + ":" + self.message[len(prefix) :] if self.message.startswith(prefix) else self.message
        )
        renamed = copy.copy(self)
        renamed.message, renamed.field, renamed.args = message, name, (message,)
        return renamed


def _renamed_item(field: str, names: Mapping[str, str]) -> str | None:
    """``loras[0].name`` under the dialect's name for ``loras``; None when it has none."""
    head, bracket, rest = field.partition("[")
    return names[head] + bracket + rest if bracket and head in names else None


class InvalidRequestError(PlantainError):
    code = "invalid_request"
    status = 400


class UnsupportedSizeError(InvalidRequestError):
    code = "unsupported_size"


class UnsupportedTaskError(InvalidRequestError):
    code = "unsupported_task"


class TooManyImagesError(InvalidRequestError):
    code = "too_many_images"


class InvalidImageError(InvalidRequestError):
    code = "invalid_image"


class ImageTooLargeError(InvalidImageError):
    code = "image_too_large"


class ContentBlockedError(InvalidRequestError):
    """The safety stage refused a prompt (``stage="prompt"``) or an output image (``"image"``);
    ``category`` names the policy category that matched, for the dialects that report it."""

    code = "content_blocked"

    def __init__(
        self, message: str, *, field: str | None = None, stage: str = "prompt", category: str = "other"
    ) -> None:
        super().__init__(message, field=field)
        self.stage = stage
        self.category = category


class PayloadTooLargeError(PlantainError):
    code = "payload_too_large"
    status = 413


class FetchError(InvalidRequestError):
    code = "url_fetch_failed"


class ConfigurationError(PlantainError):
    code = "invalid_configuration"
    status = 500


class AuthenticationError(PlantainError):
    code = "unauthenticated"
    status = 401


class PermissionDeniedError(PlantainError):
    code = "permission_denied"
    status = 403


class LicenceNotAcceptedError(PermissionDeniedError):
    """An engine under a licence the operator has not accepted (setting ``accept_licences``)."""

    code = "licence_not_accepted"


class NotFoundError(PlantainError):
    code = "not_found"
    status = 404


class RouteNotFoundError(NotFoundError):
    code = "route_not_found"


class MethodNotAllowedError(PlantainError):
    code = "method_not_allowed"
    status = 405


class UnknownEngineError(NotFoundError):
    code = "unknown_engine"


class UnknownModelError(NotFoundError):
    code = "model_not_found"


class ConflictError(PlantainError):
    """A valid request the resource's present state refuses (an arena pair already voted, or
    one whose results are not ready): asking again later, or for another, may work."""

    code = "conflict"
    status = 409


class IdempotencyConflictError(PlantainError):
    code = "idempotency_conflict"
    status = 422


class QueueFullError(PlantainError):
    """The queue holds as many tasks as it may; the caller should retry after ``retry_after`` s."""

    code = "queue_full"
    status = 429

    def __init__(self, message: str, *, field: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class QuotaExceededError(PlantainError):
    """A key has used up one of its quotas (requests per minute, concurrent tasks, images per
    day); the caller should retry after ``retry_after`` s. Not a full queue: other keys go on."""

    code = "quota_exceeded"
    status = 429

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        retry_after: int = 1,
        quota: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after
        self.quota = quota  # which one: requests_per_minute, concurrent_tasks, images_per_day
        self.limit = limit


class MissingWeightsError(PlantainError):
    code = "missing_weights"
    status = 503


class ShuttingDownError(PlantainError):
    """The server is draining after SIGTERM and takes no new work; the caller should retry after
    ``retry_after`` s (elsewhere, or once this server has restarted)."""

    code = "shutting_down"
    status = 503

    def __init__(self, message: str, *, field: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


class ServerUnreachableError(PlantainError):
    """Raised by the client, never by the server: the connection failed or timed out."""

    code = "server_unreachable"
    status = 503


class EngineLoadError(PlantainError):
    code = "engine_load_failed"
    status = 500


class EngineRunError(PlantainError):
    code = "engine_failed"
    status = 500


class ProviderError(EngineRunError):
    """A remote provider (providers/) failed or refused. ``upstream_status`` is its HTTP status
    (None: no answer — a timeout or a dropped connection); ``retry_after`` its Retry-After."""

    code = "provider_failed"
    status = 502

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.upstream_status = upstream_status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """What may pass by itself: no answer, 429 (rate limited) or a 5xx."""
        status = self.upstream_status
        return status is None or status == 429 or status >= 500


class RouteFailedError(EngineRunError):
    """Every engine of a route (providers/routing.py) refused or failed; the message names each."""

    code = "route_failed"
    status = 503


class AttemptsExhaustedError(EngineRunError):
    code = "attempts_exhausted"


class TaskCancelledError(PlantainError):
    code = "cancelled"
    status = 499

    def __init__(self, message: str, *, field: str | None = None, step: int | None = None) -> None:
        super().__init__(message, field=field)
        self.step = step  # the denoising steps a stopped run had done (None: it never ran)


# The former name, deprecated but kept: docs/client.md promised it to callers. It was renamed
# because it shadowed asyncio.CancelledError in modules that use both.
CancelledError = TaskCancelledError


def error_from_code(
    code: str, message: str, field: str | None = None, category: str | None = None
) -> PlantainError:
    """The error a stored task failure stands for, raised again for a caller that waited on it
    (unknown codes become EngineRunError, keeping the message). A stored block is always of an
    output image: prompts are refused before a task exists."""
    if code == ContentBlockedError.code:
        return ContentBlockedError(message, field=field, stage="image", category=category or "other")
    for cls in _subclasses(PlantainError):
        if cls.code == code:
            return cls(message, field=field)
    return EngineRunError(message, field=field)


def _subclasses(cls: type[PlantainError]) -> list[type[PlantainError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def response_headers(error: PlantainError) -> dict[str, str]:
    """HTTP headers an error's answer carries in every dialect (a 429 or a 503 while shutting
    down says when to retry)."""
    if isinstance(error, QueueFullError | QuotaExceededError | ShuttingDownError):
        return {"Retry-After": str(error.retry_after), "retry-after-ms": str(error.retry_after * 1000)}
    return {}
