"""A live server with an API key, and ``plantain ARGS`` run against it as a user types it: for the
CLI commands that talk to a server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from plantain.cli.main import cli
from plantain.server.app import create_app
from plantain.settings import Settings
from plantain.testing import LiveServer

KEY = "cli-test-key"  # the server's one API key
Plantain = Callable[..., Result]


@pytest.fixture(scope="module")
def base(server_settings: Callable[..., Settings]) -> Iterator[str]:
    """A live server that takes :data:`KEY`, one per test module."""
    with LiveServer(create_app(server_settings(api_keys=[KEY]))) as server:
        yield server.wait_ready()


@pytest.fixture
def plantain(base: str, tmp_path: Path) -> Plantain:
    """``plantain ARGS`` with the server and key in the environment, as a user would set them."""

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        environment = {"PLANTAIN_SERVER": base, "PLANTAIN_API_KEY": KEY, **(env or {})}
        return CliRunner(env=environment).invoke(cli, ["--data-dir", str(tmp_path / "data"), *args])

    return invoke
