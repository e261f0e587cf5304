"""The settings of remote providers and routes (docs/providers.md): other services that make
images as engines of this server, and ordered lists of engines tried in turn. A base of
:class:`~plantain.settings.model.Settings`, so they are ordinary ``PLANTAIN_*`` settings (JSON)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

ProviderKind = Literal["gemini", "openai", "replicate"]

# Where each kind's hosted API lives: a provider's ``base_url`` defaults to it.
DEFAULT_BASE_URLS: dict[str, str] = {
    "gemini": "https://generativelanguage.googleapis.com",
    "openai": "https://api.openai.com/v1",
    "replicate": "https://api.replicate.com",
}


class ProviderConfig(BaseModel):
    """One remote provider, served as an engine named by its key in ``providers``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProviderKind
    model: str = Field(min_length=1)  # the provider's own model id, e.g. gemini-2.5-flash-image
    base_url: str = ""  # empty: the kind's hosted API (DEFAULT_BASE_URLS)
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # or: the environment variable that holds the key
    timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    retries: int = Field(default=2, ge=0, le=10)  # on 429, 5xx or a timeout, before giving up
    backoff_seconds: float = Field(default=0.5, ge=0, le=60)  # the first retry's wait ceiling
    max_backoff_seconds: float = Field(default=8.0, ge=0, le=600)  # Retry-After is capped by it too
    price_per_image: float = Field(default=0.0, ge=0)  # in price_currency: the provider's price
    max_input_images: int | None = Field(default=None, ge=0, le=64)  # None: the kind's own limit

    @model_validator(mode="after")
    def _fill_base_url(self) -> ProviderConfig:
        if not self.base_url:
            object.__setattr__(self, "base_url", DEFAULT_BASE_URLS[self.kind])
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url {self.base_url!r} must start with http:// or https://")
        return self

    def key(self) -> str | None:
        """The API key: ``api_key``, else the variable ``api_key_env`` names (None: no key)."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        return None


class ProviderSettings(BaseSettings):
    providers: dict[str, ProviderConfig] = Field(
        default_factory=dict,
        description='Remote providers served as engines, by engine name, e.g. {"gemini-cloud": '
        '{"kind": "gemini", "model": "gemini-2.5-flash-image", "api_key_env": '
        '"GEMINI_API_KEY", "price_per_image": 0.039}}; kind is gemini, openai or replicate '
        "(docs/providers.md lists every field).",
    )
    routes: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Engines tried in order under one engine name, e.g. {"banana": '
        '["flux2-klein-4b", "gemini-cloud"]}: the next serves when one refuses, fails, is '
        "rate-limited or times out. Map a vendor model name to a route with models.",
    )
