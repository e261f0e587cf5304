"""Plantain: a self-hosted image generation and editing server with open-weight models.

``from plantain import Client`` is the Python client for a running server; importing the
package loads only it (httpx, pydantic), never torch or the engines.
"""

__version__ = "0.1.0"  # before the imports below: client.py reads it for its User-Agent

from plantain.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client", "__version__"]
