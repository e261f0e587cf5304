"""Each provider kind's engine class, imported only when a provider of that kind is configured."""

from __future__ import annotations

import importlib

from plantain.providers.base import RemoteEngine

# kind -> "module:Class"
KINDS: dict[str, str] = {
    "gemini": "plantain.providers.gemini:GeminiEngine",
    "openai": "plantain.providers.openai:OpenAIEngine",
    "replicate": "plantain.providers.replicate:ReplicateEngine",
}


def engine_class(kind: str) -> type[RemoteEngine]:
    module, _, name = KINDS[kind].partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, RemoteEngine)):
        raise TypeError(f"{KINDS[kind]} is not a RemoteEngine")
    return found
