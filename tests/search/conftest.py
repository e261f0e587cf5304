"""The local search API and web (search_server.py) that the grounding tests run against."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.search.search_server import SearchServer


@pytest.fixture(scope="module")
def running() -> Iterator[SearchServer]:
    """One search server per test module (stopping one waits for its half-second poll)."""
    with SearchServer() as started:
        yield started


@pytest.fixture
def server(running: SearchServer) -> SearchServer:
    """The module's search server, its record of requests and its misbehaviour reset."""
    running.reset()
    return running
