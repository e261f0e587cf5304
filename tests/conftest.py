"""Test set-up: the hub is offline and its cache is a private temporary directory.

The environment is set before anything imports huggingface_hub, which reads it at import time.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_HF_HOME = Path(tempfile.mkdtemp(prefix="plantain-test-hf-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_CACHE"] = str(_HF_HOME / "hub")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
for _name in [name for name in os.environ if name.startswith("PLANTAIN_")]:
    del os.environ[_name]

import pytest  # noqa: E402
from tests.services import ACCESS_KEY, SECRET_KEY, PostgreSQL, SeaweedFS  # noqa: E402

from plantain.engines import tiny  # noqa: E402
from plantain.engines.registry import EngineRegistry  # noqa: E402
from plantain.settings import Settings  # noqa: E402
from plantain.testing import build_once  # noqa: E402


@pytest.fixture(scope="session")
def hub_cache() -> Path:
    """The (offline) hub cache every test shares; tests install tiny checkpoints into it."""
    path = _HF_HOME / "hub"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose tiny checkpoint is built once per test session."""
    path = tmp_path_factory.mktemp("data")
    build_once(tiny.build_checkpoint, tiny.checkpoint_dir(Settings(data_dir=path)))
    return path


@pytest.fixture
def settings(data_dir: Path, hub_cache: Path) -> Settings:
    return Settings(data_dir=data_dir, hub_cache=hub_cache)


@pytest.fixture(scope="session")
def registry(data_dir: Path, hub_cache: Path) -> EngineRegistry:
    """One registry for the session, so the tiny engine loads once."""
    return EngineRegistry(Settings(data_dir=data_dir, hub_cache=hub_cache))


@pytest.fixture(scope="session")
def server_settings(
    data_dir: Path, hub_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Settings]:
    """Settings for one server: its own data directory (a task database is one process's), the
    session's tiny checkpoint, tiny as the default engine."""
    tiny_dir = tiny.checkpoint_dir(Settings(data_dir=data_dir))

    def make(**fields: Any) -> Settings:
        base: dict[str, Any] = {
            "data_dir": tmp_path_factory.mktemp("server"),
            "hub_cache": hub_cache,
            "default_engine": "tiny",
            "weights": {"tiny": tiny_dir},
        }
        return Settings(**{**base, **fields})

    return make


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """A real S3-compatible server (SeaweedFS) for the session, started on first use."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: SeaweedFS) -> str:
    """A new, empty bucket on :func:`s3`."""
    return s3.bucket(f"plantain-{secrets.token_hex(6)}")


@pytest.fixture
def s3_settings(s3: SeaweedFS, bucket: str) -> dict[str, Any]:
    """The settings that put a server's files in :func:`bucket`, under the prefix ``outputs``."""
    return {
        "storage_url": f"s3://{bucket}/outputs",
        "s3_endpoint_url": s3.endpoint,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
    }


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgreSQL]:
    """A real PostgreSQL server for the session, started on first use."""
    server = PostgreSQL().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres: PostgreSQL) -> str:
    """The URL of a new, empty database on :func:`postgres`."""
    return postgres.database(f"plantain_{secrets.token_hex(6)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest) -> Callable[[], str | None]:
    """Each engine of the task store in turn, as a maker of empty databases: None (SQLite in the
    data directory), then new PostgreSQL databases. Tests of the store take it (or
    :func:`database_url`), so every rule is checked on both."""
    if request.param == "sqlite":
        return lambda: None
    server: PostgreSQL = request.getfixturevalue("postgres")
    return lambda: server.database(f"plantain_{secrets.token_hex(6)}")


@pytest.fixture
def database_url(new_database: Callable[[], str | None]) -> str | None:
    """An empty task database of each engine in turn (:func:`new_database`)."""
    return new_database()
