"""Search grounding, like Gemini's ``google_search`` tool: before the engine draws, a grounded
request is looked up with a web search provider (:mod:`~plantain.search.providers`); web results
become facts for the prompt rewrite, and image results are fetched as untrusted inputs, ranked
against the prompt by a CLIP model (:mod:`~plantain.search.rerank`) and the best become reference
images (:mod:`~plantain.search.grounder`). Settings: :mod:`plantain.settings.search`."""

from plantain.search.grounder import Grounder
from plantain.search.providers import (
    BraveProvider,
    Found,
    ImageHit,
    SearchProvider,
    SearxngProvider,
    WebHit,
    provider_from_settings,
)
from plantain.search.rerank import Reranker

__all__ = [
    "BraveProvider",
    "Found",
    "Grounder",
    "ImageHit",
    "Reranker",
    "SearchProvider",
    "SearxngProvider",
    "WebHit",
    "provider_from_settings",
]
