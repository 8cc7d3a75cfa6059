"""Memory filters as SQL conditions and as a vector-index `where`: one definition of scope.

Listing, search and context all narrow memories the same way: the namespaces the caller may read,
statuses (active by default), not expired, and the optional user, thread, kind, tag and time
filters. SQL is always applied last, so whatever the index returns is re-checked against SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from .models import Memory, MemoryTag, utcnow
from .schemas import MemoryFilters, MemoryStatus
from .vectors import Where

DEFAULT_STATUSES = (MemoryStatus.ACTIVE,)


def memory_conditions(
    namespace_ids: Sequence[str],
    filters: MemoryFilters,
    statuses: Sequence[MemoryStatus] | None = None,
) -> list[ColumnElement[bool]]:
    """SQL conditions on `memory` for the scope and filters."""
    statuses = statuses or DEFAULT_STATUSES
    conditions: list[ColumnElement[bool]] = [
        col(Memory.namespace_id).in_(list(namespace_ids)),
        col(Memory.status).in_([s.value for s in statuses]),
        or_(col(Memory.expires_at).is_(None), col(Memory.expires_at) > utcnow()),
    ]
    if filters.user_id is not None:
        conditions.append(col(Memory.user_id) == filters.user_id)
    if filters.thread_id is not None:
        conditions.append(col(Memory.thread_id) == filters.thread_id)
    if filters.kinds:
        conditions.append(col(Memory.kind).in_(filters.kinds))
    if filters.created_after is not None:
        conditions.append(col(Memory.created_at) >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(col(Memory.created_at) < filters.created_before)
    for tag in filters.tags or []:
        tagged = select(MemoryTag.memory_id).where(MemoryTag.tag == tag)
        conditions.append(col(Memory.id).in_(tagged))
    return conditions


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
