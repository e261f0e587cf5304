"""A real Plantain server in this process: ``create_app(settings)`` served by uvicorn on a free
port of 127.0.0.1, so in-process figures include HTTP, the queue and post-processing.

It keeps its task database and output files in a temporary data directory (a user's own server
may hold the lock on theirs) and serves the one engine under test from the same weights.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from plantain.settings import Settings

if TYPE_CHECKING:
    from plantain.engines.base import Engine

READY_TIMEOUT = 900.0  # seconds for the engine to load (a full-size checkpoint from disk)


@contextmanager
def serve_engine(settings: Settings, engine: Engine) -> Iterator[str]:
    """Serve ``engine`` (its checkpoint resolved, so a built one is not built again) until the
    block ends; yields the server's URL once its engine has loaded."""
    from plantain.server.app import create_app
    from plantain.testing import LiveServer

    engine.source.resolve()
    weights = dict(settings.weights)
    if engine.source.local_dir is not None:
        weights[engine.name] = engine.source.local_dir
    with tempfile.TemporaryDirectory(prefix="plantain-bench-") as scratch:
        served = settings.model_copy(
            update={
                "data_dir": Path(scratch),
                "default_engine": engine.name,
                "serve_engines": [engine.name],
                "weights": weights,
                "api_keys": [],  # loopback only, and the key would only be ours
            }
        )
        with LiveServer(create_app(served)) as server:
            yield server.wait_ready(timeout=READY_TIMEOUT)
