"""Web search providers for grounding: SearXNG (self-hosted) and the Brave Search API.

Each one turns a query into web hits (facts for the rewrite) and image hits (candidate reference
images). The provider's own answers are read with :func:`plantain.net.fetch.fetch_bytes`, its
byte limit and timeout, with the provider's host:port added to the allow-list (the operator chose
it, and a self-hosted SearXNG usually sits on localhost or a private network). The image URLs in
its answers are NOT fetched here: they point anywhere on the web, so the grounder fetches them
with the server's ``allowed_hosts`` only.

A provider that fails or answers something that is not its JSON raises
:class:`~plantain.errors.ProviderError` (502) naming the provider and the setting to check.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import httpx

from plantain.errors import ConfigurationError, PlantainError, ProviderError
from plantain.net.fetch import FetchLimits, fetch_bytes
from plantain.settings.search import BRAVE_URL

if TYPE_CHECKING:
    from plantain.settings import Settings

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class WebHit:
    """A web page a search returned."""

    uri: str
    title: str
    snippet: str


@dataclass(frozen=True)
class ImageHit:
    """An image a search returned: the image itself and the page it is on."""

    image_uri: str
    source_uri: str
    title: str


@dataclass(frozen=True)
class Found:
    """What one query found; ``calls`` counts the requests made to the search API."""

    query: str
    web: tuple[WebHit, ...]
    images: tuple[ImageHit, ...]
    calls: int


class SearchProvider(Protocol):
    kind: str

    def search(self, query: str, *, images: int, results: int, request_id: str | None) -> Found:
        """Up to ``results`` web hits and ``images`` image hits (none asked for when 0)."""
        ...


class _JsonApi:
    """A search API reached at a base URL: GET + JSON, errors as ProviderError."""

    kind = "search"
    setting = "search_url"

    def __init__(self, settings: Settings, base: str, headers: dict[str, str] | None = None) -> None:
        self.base = base.rstrip("/")
        self._headers = headers or {}
        fetch = FetchLimits.from_settings(settings)
        own = _host_port(self.base)
        self.limits = replace(fetch, allowed_hosts=(*fetch.allowed_hosts, own))

    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    def get_json(self, path: str, params: dict[str, str | int], request_id: str | None) -> Any:
        url = f"{self.base}{path}?{urlencode(params)}"
        field = f"{self.kind} search"
        headers = self.headers()  # a missing key is a ConfigurationError, not the provider's
        try:
            body = fetch_bytes(
                url,
                field=field,
                limits=self.limits,
                request_id=request_id,
                accept="application/json",
                headers=headers,
            )
        except PlantainError as exc:
            raise ProviderError(
                f"{self.kind} search failed: {exc.message}; check {self.setting}", field=field
            ) from None
        try:
            return json.loads(body)
        except ValueError:
            raise ProviderError(
                f"{self.kind} search: {self.base}{path} answered something that is not JSON "
                f"({body[:80]!r}); check {self.setting}",
                field=field,
            ) from None


class SearxngProvider(_JsonApi):
    """A SearXNG instance with its ``json`` output format enabled (settings.yml ``search.formats``)."""

    kind = "searxng"
    setting = "search_url (and that the instance enables format json)"

    def search(self, query: str, *, images: int, results: int, request_id: str | None) -> Found:
        web_answer = self.get_json("/search", {"q": query, "format": "json"}, request_id)
        web = _web_hits(_results(web_answer, self.kind), "url", "title", "content")
        found = Found(query, tuple(islice(web, results)), (), calls=1)
        if images <= 0:
            return found
        params: dict[str, str | int] = {"q": query, "format": "json", "categories": "images"}
        image_answer = self.get_json("/search", params, request_id)
        hits = (
            ImageHit(str(item["img_src"]), str(item.get("url") or item["img_src"]), _text(item.get("title")))
            for item in _results(image_answer, self.kind)
            if isinstance(item.get("img_src"), str) and item["img_src"].startswith(("http://", "https://"))
        )
        return replace(found, images=tuple(islice(_unique_images(hits), images)), calls=2)


class BraveProvider(_JsonApi):
    """The Brave Search API (web and image search), keyed by ``X-Subscription-Token``."""

    kind = "brave"
    setting = "search_api_key"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, settings.search_url or BRAVE_URL)
        self._key = settings.search_api_key
        self._key_env = settings.search_api_key_env

    def headers(self) -> dict[str, str]:
        """The key is read at each search, so a rotated ``search_api_key_env`` takes effect."""
        key = self._key.get_secret_value() if self._key is not None else None
        if key is None and self._key_env:
            key = os.environ.get(self._key_env)
        if not key:
            raise ConfigurationError(
                f"setting search_api_key_env: the variable {self._key_env} is not set; it must "
                "hold the Brave Search API key"
            )
        return {"X-Subscription-Token": key}

    def search(self, query: str, *, images: int, results: int, request_id: str | None) -> Found:
        web_answer = self.get_json("/res/v1/web/search", {"q": query, "count": results}, request_id)
        section = web_answer.get("web") if isinstance(web_answer, dict) else None
        web = _web_hits(_results(section or {"results": []}, self.kind), "url", "title", "description")
        found = Found(query, tuple(islice(web, results)), (), calls=1)
        if images <= 0:
            return found
        image_answer = self.get_json("/res/v1/images/search", {"q": query, "count": images}, request_id)
        hits = (_brave_image(item) for item in _results(image_answer, self.kind))
        kept = _unique_images(hit for hit in hits if hit is not None)
        return replace(found, images=tuple(islice(kept, images)), calls=2)


def provider_from_settings(settings: Settings) -> SearchProvider | None:
    """The provider ``search_provider`` names, or None when grounding is off."""
    if settings.search_provider == "searxng":
        assert settings.search_url is not None  # the settings' own check
        return SearxngProvider(settings, settings.search_url)
    if settings.search_provider == "brave":
        return BraveProvider(settings)
    return None


# --- reading the answers -----------------------------------------------------------------------


def _results(answer: Any, kind: str) -> list[dict[str, Any]]:
    """The ``results`` list of an answer (its non-object entries dropped)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
        raise ProviderError(f"{kind} search answered JSON without a results list", field=f"{kind} search")
    return [item for item in answer["results"] if isinstance(item, dict)]


def _web_hits(items: Iterable[dict[str, Any]], url: str, title: str, snippet: str) -> Iterator[WebHit]:
    """Web hits with an http(s) URL, each URL once, in the provider's order."""
    seen: set[str] = set()
    for item in items:
        uri = item.get(url)
        if not isinstance(uri, str) or not uri.startswith(("http://", "https://")) or uri in seen:
            continue
        seen.add(uri)
        yield WebHit(uri, _text(item.get(title)), _text(item.get(snippet)))


def _brave_image(item: dict[str, Any]) -> ImageHit | None:
    """The full image (``properties.url``), else its thumbnail, with the page it is on."""
    properties, thumbnail = item.get("properties"), item.get("thumbnail")
    image = properties.get("url") if isinstance(properties, dict) else None
    if not image and isinstance(thumbnail, dict):
        image = thumbnail.get("src")
    if not isinstance(image, str) or not image.startswith(("http://", "https://")):
        return None
    page = item.get("url")
    return ImageHit(image, page if isinstance(page, str) else image, _text(item.get("title")))


def _unique_images(hits: Iterable[ImageHit]) -> Iterator[ImageHit]:
    seen: set[str] = set()
    for hit in hits:
        if hit.image_uri not in seen:
            seen.add(hit.image_uri)
            yield hit


def _text(value: Any) -> str:
    """Plain text of a title or snippet: HTML tags removed (search engines mark matches with
    ``<strong>``), entities decoded, whitespace collapsed."""
    if not isinstance(value, str):
        return ""
    return _SPACE.sub(" ", html.unescape(_TAG.sub("", value))).strip()


def _host_port(base: str) -> str:
    """``host:port`` of ``base`` for the allow-list (the scheme's default port when none)."""
    try:
        url = httpx.URL(base)
    except httpx.InvalidURL:
        raise ConfigurationError(f"setting search_url: {base!r} is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"setting search_url: {base!r} is not an http(s) URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{host}:{port}"
