"""The SQL engine and sessions, for SQLite (embedded default) and PostgreSQL (at scale)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from . import full_text


def make_engine(url: str) -> Engine:
    """Build an engine tuned for concurrent request handling on the given database URL."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=16,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # called by the triggers that keep the full-text index (full_text.py, migration m0010)
    dbapi_connection.create_function(
        full_text.SQL_FUNCTION, 2, full_text.namespaced_terms, deterministic=True
    )


class Database:
    """The engine plus the two ways to use it: `read()` sessions and `write()` transactions.

    SQLite allows one writer at a time and fails (rather than waits) when two deferred transactions
    both try to upgrade to writing, so on SQLite this process serialises its write transactions.
    PostgreSQL needs no such gate.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        self._write_gate = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; anything it changes is committed on success."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """A session for reads that all see one state of the database while others commit.

        SQLite: one deferred transaction; in WAL mode its first read fixes the state every later
        read sees. PostgreSQL: one REPEATABLE READ transaction. Never write in it: on SQLite a
        snapshot that another writer has moved past cannot be upgraded to a write.
        """
        with self.read() as session:
            if self.is_sqlite:
                session.connection().exec_driver_sql("BEGIN")
            else:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        with self._write_gate or nullcontext(), self.read() as session:
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
