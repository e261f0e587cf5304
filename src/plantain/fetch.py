"""Fetching input images by URL, safely: the caller picks the URL, so every hop is checked.

Each request goes to an address :func:`plantain.netguard.resolve_target` has vetted (no second
DNS lookup), redirects are followed by hand so each new location is checked the same way, and the
body is read in chunks against a byte limit and an overall deadline, so a slow or endless answer
cannot hold a worker or fill memory. What comes back is only bytes: the image decoder sniffs them
(a declared content type is not trusted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from plantain import __version__
from plantain.errors import FetchError
from plantain.limits import image_too_large
from plantain.netguard import resolve_target

if TYPE_CHECKING:
    from plantain.settings import Settings

MAX_REDIRECTS = 5


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float
    allowed_hosts: Sequence[str] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchLimits:
        return cls(settings.max_image_bytes, settings.fetch_timeout_seconds, settings.allowed_hosts)


async def fetch_all(urls: Mapping[str, str], limits: FetchLimits) -> dict[str, bytes]:
    """The body at each URL of ``{field: url}``, fetched at once (each in a worker thread)."""
    bodies = await asyncio.gather(
        *(asyncio.to_thread(fetch_bytes, url, field=field, limits=limits) for field, url in urls.items())
    )
    return dict(zip(urls, bodies, strict=True))


def fetch_bytes(url: str, *, field: str, limits: FetchLimits) -> bytes:
    """The body at ``url`` (http/https), following at most :data:`MAX_REDIRECTS` checked redirects."""
    deadline = time.monotonic() + limits.timeout_seconds
    with httpx.Client(
        timeout=limits.timeout_seconds,
        follow_redirects=False,
        headers={"user-agent": f"plantain/{__version__}", "accept": "image/*"},
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            location = _get(client, url, field, limits, deadline)
            if isinstance(location, bytes):
                return location
            url = location
    raise FetchError(f"{field}: more than {MAX_REDIRECTS} redirects; send the image's final URL", field=field)


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


def _get(client: httpx.Client, url: str, field: str, limits: FetchLimits, deadline: float) -> bytes | str:
    """The body, or the next URL to try when the answer is a redirect."""
    request = pinned_request(client, "GET", url, field=field, allow=limits.allowed_hosts)
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
