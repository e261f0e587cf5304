"""Search grounding's sources as each API shows them (search/, docs/grounding.md): Gemini's
``groundingMetadata``, the ``url_citation`` annotations OpenRouter's web search puts on a chat
message, and one neutral ``grounding`` object for the APIs that have no field of their own (the
task API, OpenAI images, inference.sh). Pure functions of a :class:`~plantain.types.GroundingResult`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from plantain.types import GroundingResult


def grounding_object(grounding: GroundingResult) -> dict[str, Any]:
    """Everything grounding did, as the task API and the extensions report it: the provider, the
    queries, the pages (``sources``), the images ranked (``references``, ``used`` marking those
    the engine got), its seconds and the number of searches."""
    return grounding.model_dump(mode="json")


def gemini_metadata(grounding: GroundingResult, text: str | None, text_part: int) -> dict[str, Any]:
    """A candidate's ``groundingMetadata``: the queries, one chunk per page (``web``) and per image
    the engine got (``image``), and, when the answer has a text part (``text`` at ``text_part``),
    one support saying that text was written from the pages. Indices are UTF-8 byte offsets, as
    Gemini's are. No confidence scores: nothing here measures one."""
    pages = [{"web": _web(source.uri, source.title)} for source in grounding.sources]
    images = [
        {"image": {**_image(reference.image_uri, reference.source_uri), "title": reference.title}}
        for reference in grounding.references
        if reference.used
    ]
    metadata: dict[str, Any] = {
        "webSearchQueries": list(grounding.queries),
        "groundingChunks": [*pages, *images],
    }
    if images:
        metadata["imageSearchQueries"] = list(grounding.queries)
    if text and pages:
        segment = {"partIndex": text_part, "startIndex": 0, "endIndex": len(text.encode()), "text": text}
        metadata["groundingSupports"] = [
            {"segment": segment, "groundingChunkIndices": list(range(len(pages)))}
        ]
    return metadata


def url_citations(grounding: GroundingResult, content: str) -> list[dict[str, Any]]:
    """A chat message's ``annotations``: one ``url_citation`` per page, spanning the message's
    text (character offsets, as OpenRouter's are), with the page's snippet as ``content``."""
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "url": source.uri,
                "title": source.title,
                "content": source.snippet,
                "start_index": 0,
                "end_index": len(content),
            },
        }
        for source in grounding.sources
    ]


def _web(uri: str, title: str) -> dict[str, str]:
    return {"uri": uri, "title": title, "domain": _domain(uri)}


def _image(image_uri: str, source_uri: str) -> dict[str, str]:
    return {"imageUri": image_uri, "sourceUri": source_uri, "domain": _domain(source_uri or image_uri)}


def _domain(uri: str) -> str:
    return (urlsplit(uri).hostname or "").lower()
