"""The settings of search grounding (plantain.search): before the engine draws, a grounded request
is looked up with a web search provider; web results become facts for the prompt rewrite and the
best-matching image results become reference images. A base of
:class:`~plantain.settings.model.Settings`, so they are ordinary ``PLANTAIN_*`` settings."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from plantain.errors import ConfigurationError

BRAVE_URL = "https://api.search.brave.com"


class SearchSettings(BaseSettings):
    search_provider: Literal["none", "searxng", "brave"] = Field(
        default="none",
        description="Web search API that grounded requests are looked up with: searxng (a "
        "self-hosted SearXNG with its JSON format on, at search_url), brave (the Brave Search "
        "API, with search_api_key), or none (grounding off).",
    )
    search_url: str | None = Field(
        default=None,
        description="Base URL of the search provider, e.g. http://localhost:8888 for SearXNG "
        "(required); Brave defaults to https://api.search.brave.com. Its host may be private: "
        "the operator chose it.",
    )
    search_api_key: SecretStr | None = Field(
        default=None,
        description="The search provider's API key (Brave's X-Subscription-Token); sent only to "
        "search_url's own origin.",
    )
    search_api_key_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding the search API key, read at each "
        "search (instead of search_api_key).",
    )
    search_results: int = Field(
        default=5, ge=1, le=20, description="Web results kept per grounded request, as facts."
    )
    search_images: int = Field(
        default=8,
        ge=0,
        le=32,
        description="Image results fetched and reranked per grounded request; 0: no image search.",
    )
    grounding_references: int = Field(
        default=1,
        ge=0,
        le=10,
        description="Most reranked image results given to the engine as reference images (the "
        "engine's own input limit also caps it); 0: facts only.",
    )
    grounding_reranker: str = Field(
        default="openai/clip-vit-base-patch32",
        description="Image-text similarity (CLIP) checkpoint that ranks image results against "
        "the prompt: a hub id in the hub cache (never downloaded by the server), a local "
        "directory, or tiny (random weights, built on first use, for tests).",
    )
    grounding_device: str = Field(
        default="auto", description="Torch device of the grounding reranker (auto: as device picks)."
    )

    @model_validator(mode="after")
    def _search_is_usable(self) -> Self:
        check_search_settings(self)
        return self


def check_search_settings(settings: SearchSettings) -> None:
    """ConfigurationError naming the setting when the chosen provider cannot be reached: SearXNG
    without ``search_url``, Brave without a key (the variable ``search_api_key_env`` names is
    read at use, so only its name is checked here)."""
    provider = settings.search_provider
    if provider == "searxng" and not settings.search_url:
        raise ConfigurationError(
            "setting search_url (PLANTAIN_SEARCH_URL): search_provider searxng needs the URL of "
            "a SearXNG instance, e.g. http://localhost:8888"
        )
    if provider == "brave" and settings.search_api_key is None and not settings.search_api_key_env:
        raise ConfigurationError(
            "setting search_api_key (PLANTAIN_SEARCH_API_KEY): search_provider brave needs an API "
            "key; set search_api_key, or search_api_key_env to the variable that holds it"
        )
