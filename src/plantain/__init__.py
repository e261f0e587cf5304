"""Plantain: a self-hosted image generation and editing server with open-weight models.

``from plantain import Client`` is the Python client for a running server; it loads only
:mod:`plantain.client` (httpx, pydantic), never torch or the engines.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # a literal: setuptools reads it without importing (pyproject.toml)

if TYPE_CHECKING:
    from plantain.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use, not at the top: the client reads __version__ from this package, and
    # importing it from a half-run __init__ was a cycle that held only while __version__ came first.
    if name in ("AsyncClient", "Client"):
        from plantain import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
