"""The reads that run on every search and context call, executed on the database driver itself.

SQLAlchemy builds these statements (filters.py, keyword.py) and compiles them once per dialect;
what it costs per execution is the rest: an execution context, a result object, a row object per
row, the processing of every value through a chain of calls. Reading 42 memories by id in scope
took 2.9 ms that way and 1.5 ms on the driver, with SQLite's own work (~1.2 ms) the same in both
(docs/benchmarks.md, "Latency of `POST /v1/context`"). A call makes two or three such reads.

`rows` runs a statement on the session's own DBAPI connection, in its transaction (the call's
snapshot holds), with the parameters bound by SQLAlchemy's bind processors and every value of a
row decoded by SQLAlchemy's result processor for its column: the same values as
`session.connection().execute(statement, parameters)` gives (tests/test_driver_reads.py checks
every column of the memory table on SQLite and PostgreSQL). `recorded` shows what ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Session

Processor = Callable[[Any], Any]


class _Prepared:
    """A statement compiled for one dialect, and which result columns need decoding and how
    (known once the first execution's cursor says what types the driver returns)."""

    def __init__(self, statement: sa.Select[Any], dialect: Dialect):
        self.compiled: SQLCompiler = statement.compile(dialect=dialect)
        self.types = [column.type for column in statement.selected_columns]
        self.decoders: list[tuple[int, Processor]] | None = None

    def result_decoders(
        self, dialect: Dialect, description: Sequence[Any]
    ) -> list[tuple[int, Processor]]:
        """(column index, SQLAlchemy's result processor) for the columns that have one."""
        if self.decoders is None:
            decoders: list[tuple[int, Processor]] = []
            for index, (type_, column) in enumerate(zip(self.types, description, strict=True)):
                process = type_.dialect_impl(dialect).result_processor(dialect, column[1])
                if process is not None:
                    decoders.append((index, process))
            self.decoders = decoders
        return self.decoders


_recordings: list[list[tuple[str, Any]]] = []


@contextmanager
def recorded() -> Iterator[list[tuple[str, Any]]]:
    """The statements `rows` runs while the block is open (from any thread), each as the driver
    gets it: SQL text and bound parameters (to read their plans, say). SQLAlchemy's cursor events
    do not fire for these reads: their listeners expect an execution context, which there is not."""
    recording: list[tuple[str, Any]] = []
    _recordings.append(recording)
    try:
        yield recording
    finally:
        _recordings.remove(recording)


@lru_cache(maxsize=1024)
def _prepared(statement: sa.Select[Any], dialect: Dialect) -> _Prepared:
    """Compiled once per statement: the read paths build each of theirs once per scope shape."""
    return _Prepared(statement, dialect)


def rows(
    session: Session, statement: sa.Select[Any], parameters: Mapping[str, Any]
) -> list[list[Any]]:
    """Every row `statement` returns with `parameters`, each a list of its decoded values.

    For statements built once and run many times (compiled once each, kept by identity): one
    built per call would be compiled per call, where SQLAlchemy's cache would find it."""
    connection = session.connection()
    dialect = connection.dialect
    prepared = _prepared(statement, dialect)
    state = prepared.compiled.construct_expanded_state(parameters)
    bind = state.processors
    values: tuple[Any, ...] | dict[str, Any]
    if state.positiontup is not None:  # SQLite's qmark style
        ordered = [state.parameters[name] for name in state.positiontup]
        for position, name in enumerate(state.positiontup):
            if (process := bind.get(name)) is not None:
                ordered[position] = process(ordered[position])
        values = tuple(ordered)
    else:  # psycopg's named style
        values = dict(state.parameters)
        for name, bind_process in bind.items():
            if name in values and bind_process is not None:
                values[name] = bind_process(values[name])
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    for recording in _recordings:
        recording.append((state.statement, values))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(state.statement, values)
        fetched = cursor.fetchall()
        description = cursor.description
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(state.statement, values, exc, dbapi_error) from exc
    finally:
        cursor.close()
    decoders = prepared.result_decoders(dialect, description)
    decoded = []
    for row in fetched:
        row_values = list(row)
        for index, decode in decoders:
            row_values[index] = decode(row_values[index])
        decoded.append(row_values)
    return decoded
