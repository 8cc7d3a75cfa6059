"""Memories as plain read-only values, for the read paths that handle dozens of them per call.

Search and context read 40 to 120 memories per call and change none. An ORM `Memory` costs far
more to build than the row it comes from (identity map, attribute instrumentation, the model's own
machinery): at 8 concurrent clients, reading the candidates as ORM objects was the largest single
holder of the GIL in a context call, about half of it building the objects (docs/benchmarks.md).
Those paths read `MemoryRecord`s instead: the same fields, from a Core select of the same table,
decoded by the same column types (UTC datetimes, JSON).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from .driver_reads import rows
from .models import Memory


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One row of the memory table; the fields are `Memory`'s, in the table's column order."""

    id: str
    namespace_id: str
    author_agent_id: str | None
    user_id: str | None
    thread_id: str | None
    kind: str
    role: str | None
    content: str
    meta: dict[str, Any]
    tags: list[str]
    importance: float
    key: str | None
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    access_count: int
    token_count: int
    content_hash: str
    version: int
    status: str
    expires_at: datetime | None
    superseded_by: str | None
    level: int
    covers_from: datetime | None
    covers_to: datetime | None

    @classmethod
    def of(cls, memory: Memory) -> MemoryRecord:
        """The record of an ORM memory (one already loaded or built in memory)."""
        return cls(*(getattr(memory, name) for name in FIELD_NAMES))

    def public_fields(self) -> dict[str, Any]:
        """Every field by name, as `Memory.model_dump()` gives them (`meta` included)."""
        return {name: getattr(self, name) for name in FIELD_NAMES}


FIELD_NAMES = tuple(field.name for field in fields(MemoryRecord))
MEMORY_TABLE: sa.Table = Memory.__table__  # type: ignore[attr-defined]
# The record is built positionally from a row: its fields must follow the table's columns.
_ATTRIBUTE = {"metadata": "meta"}  # the column `metadata` is the attribute `meta`
if tuple(_ATTRIBUTE.get(c.name, c.name) for c in MEMORY_TABLE.columns) != FIELD_NAMES:
    raise RuntimeError("MemoryRecord's fields no longer match the memory table's columns")


def select_records(*extra: ColumnElement[Any]) -> sa.Select[Any]:
    """A Core select of every memory column (then `extra` columns) for `read_records`."""
    return sa.select(*MEMORY_TABLE.columns, *extra)


def to_record(row: Sequence[Any]) -> MemoryRecord:
    """The record of a row from `select_records` (extra columns after the memory's ignored)."""
    return MemoryRecord(*row[: len(FIELD_NAMES)])


def read_records(
    session: Session, statement: sa.Select[Any], parameters: Mapping[str, Any] | None = None
) -> list[MemoryRecord]:
    """The records a `select_records` statement returns (run with `parameters`), in its order."""
    return [to_record(row) for row in rows(session, statement, parameters or {})]
