"""The event log: an append-only record of what happened to memories, tasks and grants, and its
readers.

Writers call `append_events` inside the transaction of the change an event records, so a rolled
back change leaves no event and a committed one always has its event. Events carry ids, kinds, keys
and versions, never content: a deleted or forgotten memory leaves nothing of what it said here.

The event id is the cursor agents sync from, so ids must become visible in increasing order: a
reader that has seen id 7 must never later find a newly committed id 6. SQLite has one writer at a
time, which gives that for free. On PostgreSQL two transactions could draw ids 6 and 7 and commit 7
first, so every writer takes one transaction-scoped advisory lock just before it inserts its events
(the last statement before its commit): ids are then drawn and committed in the same order. The
lock is held only from that insert to the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, text
from sqlmodel import Session, col, select

from ..access import scope_namespace_ids
from ..auth import Principal
from ..db import Database
from ..errors import BadRequest, Unauthorized
from ..models import ApiKey, MemoryEvent, utcnow

EVENT_LOCK_ID = 724521902
MAX_CURSOR_DIGITS = 19


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SUPERSEDED = "superseded"
    ARCHIVED = "archived"
    SUMMARIZED = "summarized"
    DELETED = "deleted"
    SHARED = "shared"
    REVOKED = "revoked"
    TASK_CREATED = "task_created"
    TASK_UPDATED = "task_updated"
    TASK_STARTED = "task_started"
    TASK_PAUSED = "task_paused"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"
    TASK_REOPENED = "task_reopened"
    TASK_DELETED = "task_deleted"


@dataclass(frozen=True)
class Actor:
    """Who caused an event: an agent through one of its keys, the admin, or the system."""

    name: str
    agent_id: str | None = None
    key_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.id, principal.agent_id, principal.key_id)


SYSTEM = Actor("system")


@dataclass(frozen=True)
class PendingEvent:
    """An event to append with the transaction that makes it true."""

    type: EventType
    namespace_id: str
    memory_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None


def append_events(session: Session, actor: Actor, events: Sequence[PendingEvent]) -> None:
    """Insert `events` in order, in the caller's transaction; call it last, just before commit."""
    if not events:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": EVENT_LOCK_ID})
    now = utcnow()
    rows = [
        {
            "type": event.type.value,
            "namespace_id": event.namespace_id,
            "memory_id": event.memory_id,
            "task_id": event.task_id,
            "actor": actor.name,
            "agent_id": actor.agent_id,
            "key_id": actor.key_id,
            "details": event.details,
            "created_at": now,
        }
        for event in events
    ]
    if connection.dialect.name == "sqlite":
        connection.execute(insert(MemoryEvent), rows)  # executemany: runs the rows in order
        return
    for row in rows:  # one statement per row: ids are drawn in this order
        connection.execute(insert(MemoryEvent), row)


def parse_cursor(value: str | None, *, name: str = "after") -> int | None:
    """An event id given as a cursor; None when not given. Anything else is a 400."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > MAX_CURSOR_DIGITS:
        raise BadRequest(
            f"{name} must be an event id this server issued (a non-negative integer).",
            code="invalid_cursor",
        )
    return int(value)


@dataclass(frozen=True)
class EventPage:
    events: list[MemoryEvent]
    next_cursor: str
    has_more: bool


class EventService:
    """Reads the log for a caller: only events of namespaces it may read at the time of asking."""

    def __init__(self, db: Database):
        self._db = db

    def page(
        self,
        principal: Principal,
        *,
        after: int | None,
        namespace_ids: Sequence[str] | None,
        limit: int,
        recheck_key: bool = False,
    ) -> EventPage:
        """Events after the cursor, oldest first, in the caller's readable (or given) namespaces.

        `recheck_key` re-reads the caller's API key first (long-lived streams): a key revoked or
        expired since the stream opened is refused with 401.
        """
        start = after or 0
        with self._db.read() as session:
            if recheck_key:
                _check_key(session, principal)
            scope = scope_namespace_ids(session, principal, namespace_ids)
            rows: list[MemoryEvent] = []
            if scope:
                query = (
                    select(MemoryEvent)
                    .where(col(MemoryEvent.id) > start)
                    .order_by(col(MemoryEvent.id))
                    .limit(limit + 1)
                )
                if not principal.is_admin or namespace_ids is not None:
                    query = query.where(col(MemoryEvent.namespace_id).in_(scope))
                rows = list(session.exec(query).all())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = str(rows[-1].id) if rows else str(start)
        return EventPage(rows, next_cursor, has_more)

    def check_scope(self, principal: Principal, namespace_ids: Sequence[str] | None) -> None:
        """Raise NotFound unless the caller may read every namespace in `namespace_ids`."""
        with self._db.read() as session:
            scope_namespace_ids(session, principal, namespace_ids)

    def latest_id(self) -> int:
        """The newest event id (0 when the log is empty): where a stream opened 'now' starts."""
        with self._db.read() as session:
            latest = session.exec(select(func.max(MemoryEvent.id))).one()
        return int(latest or 0)


def _check_key(session: Session, principal: Principal) -> None:
    if principal.key_id is None:
        return
    key = session.get(ApiKey, principal.key_id)
    if key is None or key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.", code="api_key_revoked")
    if key.expires_at is not None and key.expires_at <= datetime.now(UTC):
        raise Unauthorized("This API key has expired.", code="api_key_expired")
