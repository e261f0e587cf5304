"""Fetching input images by URL, safely: the caller picks the URL, so every hop is checked.

Each request goes to an address :func:`plantain.net.guard.resolve_target` has vetted (no second
DNS lookup), redirects are followed by hand so each new location is checked the same way, and the
body is read in chunks against a byte limit and an overall deadline, so a slow or endless answer
cannot hold a worker or fill memory. What comes back is only bytes: the image decoder sniffs them
(a declared content type is not trusted).

Every fetch is logged (INFO, logger ``plantain.net.fetch``): the input it is for, the id of the request
that asked for it, the URL without its query (which may carry a signature), the bytes read, the
time taken and any redirects; a failed fetch says why. No task exists yet when a request's inputs
are fetched, so the line carries the request id, and the scheduler logs the task that request
became (``task … queued for request req_…``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from plantain import __version__
from plantain.errors import FetchError, PlantainError
from plantain.limits import image_too_large
from plantain.net.guard import resolve_target
from plantain.types import InputImage

if TYPE_CHECKING:
    from plantain.settings import Settings

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float
    allowed_hosts: Sequence[str] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchLimits:
        return cls(settings.max_image_bytes, settings.fetch_timeout_seconds, settings.allowed_hosts)


async def fetch_inputs(
    images: Sequence[InputImage], limits: FetchLimits, *, request_id: str | None = None
) -> tuple[InputImage, ...]:
    """``images`` with the bytes of each one given by ``url`` fetched (all at once, each in a
    worker thread); the others as they are."""

    async def fetched(image: InputImage) -> InputImage:
        if image.url is None:
            return image
        data = await asyncio.to_thread(
            fetch_bytes, image.url, field=image.label, limits=limits, request_id=request_id
        )
        return InputImage(data=data, label=image.label)

    return tuple(await asyncio.gather(*(fetched(image) for image in images)))


def fetch_bytes(
    url: str,
    *,
    field: str,
    limits: FetchLimits,
    request_id: str | None = None,
    accept: str = "image/*",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body at ``url`` (http/https), following at most :data:`MAX_REDIRECTS` checked redirects;
    logged, with ``request_id``, whether it succeeds or not. ``accept`` is the Accept header (a
    search API asks for JSON); ``headers`` (an API key) go only to ``url``'s own origin: a redirect
    elsewhere is followed without them, so a key never leaks to a host its owner did not pick."""
    started = time.monotonic()
    hops: list[str] = []
    try:
        body = _follow(url, field, limits, hops, accept=accept, headers=headers)
    except PlantainError as exc:
        why = exc.message
        for seen in (url, *hops):  # the message names the URLs in full; the log, without queries
            why = why.replace(seen, _shown(seen))
        _log(field, request_id, url, hops, started, f"failed: {why}")
        raise
    _log(field, request_id, url, hops, started, f"{len(body)} bytes")
    return body


def _follow(
    url: str,
    field: str,
    limits: FetchLimits,
    hops: list[str],
    *,
    accept: str = "image/*",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body at the end of ``url``'s redirects; ``hops`` gets each location followed.
    ``headers`` are sent only while the URL stays on the first URL's origin."""
    deadline = time.monotonic() + limits.timeout_seconds
    origin = _origin(url)
    with httpx.Client(
        timeout=limits.timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": f"plantain/{__version__}", "accept": accept},
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            sent = headers if headers and _origin(url) == origin else None
            location = _get(client, url, field, limits, deadline, headers=sent)
            if isinstance(location, bytes):
                return location
            url = location
            hops.append(url)
    raise FetchError(f"{field}: more than {MAX_REDIRECTS} redirects; send the image's final URL", field=field)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """``url``'s scheme, host and port (None when it does not parse: such a URL is refused
    anyway, and matches no origin)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    return parsed.scheme, parsed.host, parsed.port


def _log(field: str, request_id: str | None, url: str, hops: list[str], started: float, outcome: str) -> None:
    redirects = f" via {len(hops)} redirect(s) to {_shown(hops[-1])}" if hops else ""
    milliseconds = (time.monotonic() - started) * 1000
    logger.info(
        "fetch for request %s, %s: %s%s, %s in %.0f ms",
        request_id or "-",
        field,
        _shown(url),
        redirects,
        outcome,
        milliseconds,
    )


def _shown(url: str) -> str:
    """``url`` as a log shows it: scheme, host, port and path; no query or user info, which may
    hold a signature or a password."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))


def pinned_request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    field: str,
    allow: Sequence[str],
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Request:
    """A request to ``url`` once netguard has checked it, addressed to the checked IP (with the
    URL's host in ``Host`` and TLS SNI), so a second DNS answer cannot point it elsewhere."""
    target = resolve_target(url, field=field, allow=allow)
    parsed = httpx.URL(url)
    return client.build_request(
        method,
        parsed.copy_with(host=target.addresses[0]),
        headers={**(headers or {}), "host": parsed.netloc.decode("ascii")},
        content=content,
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )


def _get(
    client: httpx.Client,
    url: str,
    field: str,
    limits: FetchLimits,
    deadline: float,
    *,
    headers: Mapping[str, str] | None = None,
) -> bytes | str:
    """The body, or the next URL to try when the answer is a redirect."""
    request = pinned_request(client, "GET", url, field=field, allow=limits.allowed_hosts, headers=headers)
    try:
        response = client.send(request, stream=True)
    except httpx.HTTPError as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise FetchError(f"{field}: fetching {url} failed: {why}", field=field) from None
    try:
        if response.is_redirect and "location" in response.headers:
            return str(httpx.URL(url).join(response.headers["location"]))
        if not response.is_success:
            raise FetchError(f"{field}: {url} answered HTTP {response.status_code}", field=field)
        return _read_limited(response, url, field, limits, deadline)
    finally:
        response.close()


def _read_limited(
    response: httpx.Response, url: str, field: str, limits: FetchLimits, deadline: float
) -> bytes:
    label = f"{field}: the image at {url}"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise image_too_large(label, limits.max_bytes, field=field, size=int(declared))
    body = bytearray()
    try:
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limits.max_bytes:  # stopped here: the rest is never read
                raise image_too_large(label, limits.max_bytes, field=field)
            if time.monotonic() > deadline:
                raise FetchError(
                    f"{field}: fetching {url} took longer than {limits.timeout_seconds:g} seconds",
                    field=field,
                )
    except httpx.HTTPError as exc:
        raise FetchError(f"{field}: reading {url} failed: {type(exc).__name__}: {exc}", field=field) from None
    return bytes(body)
