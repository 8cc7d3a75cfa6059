"""Memory filters as SQL conditions and as a vector-index `where`: one definition of scope.

Listing, search and context all narrow memories the same way: the namespaces the caller may read,
statuses (active by default), not expired, and the optional user, thread, kind, tag and time
filters. SQL is always applied last, so whatever the index returns is re-checked against SQL.

A scope is a shape (which optional filters it sets) and the values of its parameters. The
conditions of a shape are built once, with named parameters (`scope_conditions`), so that the
statements of the read paths that run on every call are built once per shape too: SQLAlchemy then
neither builds them nor computes their cache key again (that key is memoized on the statement),
which was about a tenth of the GIL a context call holds at 8 concurrent clients
(docs/benchmarks.md, "Latency of `POST /v1/context`").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .models import MemoryLink, MemoryTag, utcnow
from .records import MEMORY_TABLE
from .schemas import MemoryFilters, MemoryStatus
from .vectors import Where

DEFAULT_STATUSES = (MemoryStatus.ACTIVE,)
_TAGS = MemoryTag.__table__  # type: ignore[attr-defined]
_LINKS = MemoryLink.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ScopeShape:
    """Which of the optional filters a scope sets (and how many tags it requires)."""

    user: bool = False
    thread: bool = False
    kinds: bool = False
    created_after: bool = False
    created_before: bool = False
    tags: int = 0
    summarized: bool = False  # also the archived sources of summaries of the scope's statuses


@dataclass(frozen=True)
class Scope:
    """The memories a read may return: its shape, and the values of the shape's parameters."""

    shape: ScopeShape
    parameters: Mapping[str, Any]

    @classmethod
    def of(
        cls,
        namespace_ids: Sequence[str],
        filters: MemoryFilters,
        statuses: Sequence[MemoryStatus] | None = None,
        *,
        summarized: bool = False,
    ) -> Scope:
        """The scope of a read. `summarized`: an archived memory is in it too when it is a
        source of a summary whose status is one of `statuses` (and it meets the other filters),
        so that a context call finds a summary's sources by their own relevance."""
        parameters: dict[str, Any] = {
            "scope_namespace_ids": list(namespace_ids),
            "scope_statuses": [s.value for s in statuses or DEFAULT_STATUSES],
            "scope_now": utcnow(),
        }
        optional = {
            "scope_user_id": filters.user_id,
            "scope_thread_id": filters.thread_id,
            "scope_kinds": list(filters.kinds) if filters.kinds else None,
            "scope_created_after": filters.created_after,
            "scope_created_before": filters.created_before,
        }
        parameters |= {name: value for name, value in optional.items() if value is not None}
        tags = filters.tags or []
        parameters |= {f"scope_tag_{i}": tag for i, tag in enumerate(tags)}
        if summarized:
            wider = [*parameters["scope_statuses"], MemoryStatus.ARCHIVED.value]
            parameters["scope_summarized_statuses"] = list(dict.fromkeys(wider))
        shape = ScopeShape(
            user=filters.user_id is not None,
            thread=filters.thread_id is not None,
            kinds=bool(filters.kinds),
            created_after=filters.created_after is not None,
            created_before=filters.created_before is not None,
            tags=len(tags),
            summarized=summarized,
        )
        return cls(shape, parameters)

    @property
    def namespace_ids(self) -> list[str]:
        return list(self.parameters["scope_namespace_ids"])

    @property
    def conditions(self) -> tuple[ColumnElement[bool], ...]:
        """This scope's conditions, with parameters: execute with `parameters`."""
        return scope_conditions(self.shape)


@lru_cache(maxsize=512)
def scope_conditions(shape: ScopeShape) -> tuple[ColumnElement[bool], ...]:
    """SQL conditions on `memory` for scopes of `shape`, with named parameters (`Scope.of`)."""
    memory = MEMORY_TABLE.c
    conditions: list[ColumnElement[bool]] = [
        memory.namespace_id.in_(sa.bindparam("scope_namespace_ids", expanding=True)),
        *_status_conditions(shape.summarized),
        sa.or_(memory.expires_at.is_(None), memory.expires_at > sa.bindparam("scope_now")),
    ]
    if shape.user:
        conditions.append(memory.user_id == sa.bindparam("scope_user_id"))
    if shape.thread:
        conditions.append(memory.thread_id == sa.bindparam("scope_thread_id"))
    if shape.kinds:
        conditions.append(memory.kind.in_(sa.bindparam("scope_kinds", expanding=True)))
    if shape.created_after:
        conditions.append(memory.created_at >= sa.bindparam("scope_created_after"))
    if shape.created_before:
        conditions.append(memory.created_at < sa.bindparam("scope_created_before"))
    for index in range(shape.tags):
        tagged = sa.select(_TAGS.c.memory_id).where(
            _TAGS.c.tag == sa.bindparam(f"scope_tag_{index}")
        )
        conditions.append(memory.id.in_(tagged))
    return tuple(conditions)


def _status_conditions(summarized: bool) -> list[ColumnElement[bool]]:
    """The status is one of the scope's; or, `summarized`, the memory is a source of a summary
    whose status is. Written as a range of statuses the indexes can read (`ix_memory_scope`:
    the scope's statuses and archived) and a check of the archived rows in it: one lookup in
    `ix_memory_link_source_id` and one by the summary's primary key per archived row, so the check
    costs what the read returns. (`OFFSET 0` keeps PostgreSQL from hashing the links of every
    summary in the database instead, a cost that grows with the whole table.) A summary lies in
    its sources' namespace, user and thread (`store_summary` refuses any other), so the source's
    own conditions cover who may see its summary."""
    memory = MEMORY_TABLE.c
    in_scope = memory.status.in_(sa.bindparam("scope_statuses", expanding=True))
    if not summarized:
        return [in_scope]
    summary = MEMORY_TABLE.alias("summary")
    linked = (
        sa.select(sa.literal(1))
        .select_from(_LINKS.join(summary, summary.c.id == _LINKS.c.summary_id))
        .where(
            _LINKS.c.source_id == memory.id,
            summary.c.status.in_(sa.bindparam("scope_statuses", expanding=True)),
        )
        .correlate(MEMORY_TABLE)
        .offset(0)
    )
    return [
        memory.status.in_(sa.bindparam("scope_summarized_statuses", expanding=True)),
        sa.or_(in_scope, linked.exists()),
    ]


def memory_conditions(
    namespace_ids: Sequence[str],
    filters: MemoryFilters,
    statuses: Sequence[MemoryStatus] | None = None,
) -> list[ColumnElement[bool]]:
    """SQL conditions on `memory` for the scope and filters, their values bound: for statements
    built per call (listing); the per-call read paths use `Scope` and prebuilt statements."""
    scope = Scope.of(namespace_ids, filters, statuses)
    return [condition.params(scope.parameters) for condition in scope.conditions]


def vector_where(filters: MemoryFilters, statuses: Sequence[MemoryStatus] | None = None) -> Where:
    """The same scope as a Chroma `where`, within the namespaces queried (tags and expiry are
    checked in SQL afterwards)."""
    statuses = statuses or DEFAULT_STATUSES
    clauses: list[Where] = [{"status": {"$in": [s.value for s in statuses]}}]
    if filters.user_id is not None:
        clauses.append({"user_id": filters.user_id})
    if filters.thread_id is not None:
        clauses.append({"thread_id": filters.thread_id})
    if filters.kinds:
        clauses.append({"kind": {"$in": list(filters.kinds)}})
    if filters.created_after is not None:
        clauses.append({"created_at": {"$gte": filters.created_after.timestamp()}})
    if filters.created_before is not None:
        clauses.append({"created_at": {"$lt": filters.created_before.timestamp()}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
