"""The task database, whichever engine holds it: SQLite in the data directory (the embedded
default, ``sqlite.py``) or PostgreSQL shared by many processes (``database_url``, ``postgres.py``).

Why one hand-written layer rather than an ORM or a query builder: the store's SQL is a few dozen
short statements that both engines already speak (``ON CONFLICT``, ``RETURNING``, row values), so
what differs is small and lives here and in the two dialect modules: the placeholder (``?`` is
written everywhere and PostgreSQL's driver gets ``%s``), how a write transaction begins, the
column types and triggers of each numbered migration, and one clause of the claim (``FOR UPDATE
SKIP LOCKED``). The same storage tests run against both engines (``tests/storage``).

Every write is one transaction that holds the database's single write lock: ``BEGIN IMMEDIATE`` on
SQLite, a transaction-scoped advisory lock on PostgreSQL. The store's rules (a task's events are
numbered without gaps, an idempotency key makes one task, a quota admits exactly its allowance)
were written for SQLite's one writer at a time, and the lock keeps them true across processes. A
write is a few rows, well under a millisecond of lock time, so the lock costs nothing at the rate
GPUs finish tasks (``bench/scaling.py`` measures the claim).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

from plantain.errors import ConfigurationError

Dialect = Literal["sqlite", "postgresql"]


class Row(Protocol):
    """A result row, by column position or name (``sqlite3.Row`` and ``postgres.PgRow``)."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the store's modules run their SQL on (``?`` placeholders on either engine)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


class Database(ABC):
    """One connection to the task database, shared by the threads of a process under a lock."""

    dialect: Dialect
    skip_locked: str = ""  # appended to the claim's inner SELECT where the engine has row locks

    def __init__(self, description: str) -> None:
        self.description = description  # for messages: a path or a URL without its password
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction holding the database's write lock, rolled back on any exception."""
        with self._lock:
            connection = self._connection()
            self._begin(connection)
            try:
                yield connection
            except BaseException:
                self._rollback(connection)
                raise
            connection.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """The connection for reads outside a transaction (each statement sees committed rows)."""
        with self._lock:
            yield self._connection()

    @property
    @abstractmethod
    def version(self) -> int:
        """The number of the newest migration applied (0: none)."""

    @abstractmethod
    def _connection(self) -> Connection: ...

    @abstractmethod
    def _begin(self, connection: Connection) -> None: ...

    def _rollback(self, connection: Connection) -> None:
        connection.execute("ROLLBACK")

    @abstractmethod
    def close(self) -> None: ...


def open_database(data_dir: Path, database_url: str | None = None) -> Database:
    """The task database: ``database_url`` (``postgresql://…``) when given, else SQLite at
    ``<data_dir>/plantain.db``; migrated to the newest schema either way."""
    if database_url:
        return open_postgres(database_url)
    from plantain.storage.sqlite import SqliteDatabase

    return SqliteDatabase(data_dir / "plantain.db")


def open_postgres(database_url: str) -> Database:
    """The PostgreSQL task database at ``database_url``, migrated (the cluster extra's psycopg)."""
    try:
        from plantain.storage.postgres import PostgresDatabase  # only when a setting asks for it
    except ImportError as exc:
        raise ConfigurationError(
            f"database_url: PostgreSQL needs the psycopg package ({exc}); install the cluster "
            "extra: pip install 'plantain[cluster]'"
        ) from exc
    return PostgresDatabase(database_url)
