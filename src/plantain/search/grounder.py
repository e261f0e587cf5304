"""Search grounding: look a request up before the engine draws.

:meth:`Grounder.ground` searches each query with the provider, keeps the web hits as sources
(facts for the prompt rewrite), fetches the image hits as untrusted input images (only the
server's ``allowed_hosts`` may be private, and the input limits apply), ranks the ones that decode
against the prompt with the CLIP reranker, and hands the best to the engine as reference images.
A candidate that cannot be fetched or decoded is skipped and logged: the web is unreliable, and
one dead link must not fail the request. A failing search provider does fail it
(:class:`~plantain.errors.ProviderError`): the request asked to be grounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from plantain.errors import PlantainError
from plantain.imaging.codecs import decode_image
from plantain.net.fetch import FetchLimits, fetch_bytes
from plantain.planner.stage import MAX_QUERY_CHARS, fallback_query
from plantain.search.providers import Found, ImageHit, SearchProvider, WebHit, provider_from_settings
from plantain.search.rerank import Reranker
from plantain.types import GroundingReference, GroundingResult, GroundingSource, InputImage

if TYPE_CHECKING:
    from PIL import Image

    from plantain.limits import Limits
    from plantain.settings import Settings

logger = logging.getLogger(__name__)

MAX_QUERIES = 3
FETCH_THREADS = 4  # candidate images are independent reads: a few at once, not one per hit
FIELD = "grounding image"


@dataclass(frozen=True)
class _Candidate:
    """An image hit that was fetched and decoded, with its place in the search's order."""

    order: int
    hit: ImageHit
    data: bytes
    image: Image.Image


class Grounder:
    """Searches, fetches, reranks: one per server, shared by its workers."""

    def __init__(self, settings: Settings, provider: SearchProvider, reranker: Reranker) -> None:
        self.settings = settings
        self.provider = provider
        self.reranker = reranker

    @classmethod
    def from_settings(cls, settings: Settings) -> Grounder | None:
        """The grounder ``search_provider`` asks for, or None when grounding is off."""
        provider = provider_from_settings(settings)
        if provider is None:
            return None
        return cls(settings, provider, Reranker(settings))

    def load(self) -> None:
        """Load the reranker now (the worker's start), unless no reference image is ever used."""
        if self.settings.grounding_references > 0 and self.settings.search_images > 0:
            self.reranker.load()

    def ground(
        self,
        queries: Sequence[str],
        prompt: str,
        *,
        max_references: int,
        limits: Limits,
        request_id: str | None = None,
    ) -> tuple[GroundingResult, list[InputImage]]:
        """What the search found for ``queries`` (the first :data:`MAX_QUERIES` distinct ones;
        without any, the prompt itself, cut as ``fallback_query`` cuts it), and the reference
        images for the engine, best first: at most ``min(max_references, grounding_references)``.
        No image is searched or fetched when that is 0 or ``search_images`` is 0."""
        started = time.monotonic()
        asked = _distinct(queries) or [fallback_query(prompt)]
        wanted = min(max_references, self.settings.grounding_references)
        images = self.settings.search_images if wanted > 0 else 0
        found = [
            self.provider.search(
                query, images=images, results=self.settings.search_results, request_id=request_id
            )
            for query in asked
        ]
        sources = _merged_web(found, self.settings.search_results)
        hits = _merged_images(found, images)
        ranked = self._ranked(self._fetched(hits, limits, request_id), prompt)
        references = tuple(
            GroundingReference(
                image_uri=c.hit.image_uri,
                source_uri=c.hit.source_uri,
                title=c.hit.title,
                score=score,
                used=rank < wanted,
            )
            for rank, (c, score) in enumerate(ranked)
        )
        chosen = [
            InputImage(data=c.data, label=f"grounding reference {i + 1} ({c.hit.image_uri})")
            for i, (c, _) in enumerate(ranked[:wanted])
        ]
        result = GroundingResult(
            provider=self.provider.kind,
            queries=tuple(asked),
            sources=tuple(GroundingSource(uri=w.uri, title=w.title, snippet=w.snippet) for w in sources),
            references=references,
            seconds=time.monotonic() - started,
            searches=sum(f.calls for f in found),
        )
        return result, chosen

    def _fetched(self, hits: Sequence[ImageHit], limits: Limits, request_id: str | None) -> list[_Candidate]:
        """The hits whose image could be fetched and decoded, in search order."""
        if not hits:
            return []
        fetch = replace(
            FetchLimits.from_settings(self.settings),
            max_bytes=limits.max_image_bytes,
            allowed_hosts=tuple(self.settings.allowed_hosts),  # never the provider's own host
        )
        with ThreadPoolExecutor(max_workers=min(FETCH_THREADS, len(hits))) as pool:
            loaded = pool.map(
                lambda order: _candidate(order, hits[order], fetch, limits, request_id), range(len(hits))
            )
            return [c for c in loaded if c is not None]

    def _ranked(self, candidates: list[_Candidate], prompt: str) -> list[tuple[_Candidate, float]]:
        """``candidates`` with their scores, best first; ties keep the search's order."""
        if not candidates:
            return []
        scores = self.reranker.score(prompt, [c.image for c in candidates])
        return sorted(zip(candidates, scores, strict=True), key=lambda pair: (-pair[1], pair[0].order))


def _candidate(
    order: int, hit: ImageHit, fetch: FetchLimits, limits: Limits, request_id: str | None
) -> _Candidate | None:
    """One image hit fetched and decoded, or None (logged) when either fails."""
    request = request_id or "-"
    try:
        data = fetch_bytes(hit.image_uri, field=FIELD, limits=fetch, request_id=request_id)
    except PlantainError as exc:  # fetch_bytes has logged why, without the URL's query
        logger.info("grounding for request %s: skipped image %d (%s)", request, order + 1, exc.code)
        return None
    try:
        image = decode_image(InputImage(data=data, label=f"{FIELD} {order + 1}"), limits)
    except PlantainError as exc:
        logger.info("grounding for request %s: skipped image %d: %s", request, order + 1, exc.message)
        return None
    return _Candidate(order, hit, data, image)


def _distinct(queries: Sequence[str]) -> list[str]:
    """The first :data:`MAX_QUERIES` non-blank queries, each once, whitespace collapsed and cut
    to :data:`MAX_QUERY_CHARS`."""
    kept: list[str] = []
    for query in queries:
        text = " ".join(query.split())[:MAX_QUERY_CHARS].strip()
        if text and text not in kept:
            kept.append(text)
    return kept[:MAX_QUERIES]


def _merged_web(found: Sequence[Found], limit: int) -> list[WebHit]:
    """Every query's web hits, in order, each URL once, at most ``limit``."""
    seen: dict[str, WebHit] = {}
    for hit in (hit for f in found for hit in f.web):
        seen.setdefault(hit.uri, hit)
    return list(seen.values())[:limit]


def _merged_images(found: Sequence[Found], limit: int) -> list[ImageHit]:
    """Every query's image hits, in order, each image URL once, at most ``limit``."""
    seen: dict[str, ImageHit] = {}
    for hit in (hit for f in found for hit in f.images):
        seen.setdefault(hit.image_uri, hit)
    return list(seen.values())[:limit]
