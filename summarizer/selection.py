"""Which memories to condense: old, active entries of the configured kinds, in groups that each
lie in one namespace and one user/thread scope, in time order, under a source-token cap."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from memory_server.models import Memory, utcnow
from memory_server.schemas import MemoryStatus


@dataclass(frozen=True)
class Source:
    """One memory as the summarizer reads it; `version` guards against changes before archiving."""

    id: str
    version: int
    kind: str
    role: str | None
    content: str
    created_at: datetime
    token_count: int

    @classmethod
    def of(cls, memory: Memory) -> Source:
        return cls(
            id=memory.id,
            version=memory.version,
            kind=memory.kind,
            role=memory.role,
            content=memory.content,
            created_at=memory.covers_to or memory.created_at,
            token_count=memory.token_count,
        )


@dataclass(frozen=True)
class Group:
    """Memories one summary will condense: one namespace, one user/thread scope, oldest first."""

    namespace_id: str
    user_id: str | None
    thread_id: str | None
    sources: tuple[Source, ...]

    @property
    def source_ids(self) -> list[str]:
        return [s.id for s in self.sources]

    @property
    def source_tokens(self) -> int:
        return sum(s.token_count for s in self.sources)


@dataclass(frozen=True)
class SelectionRules:
    kinds: Sequence[str]
    min_age: timedelta
    min_group_size: int
    max_source_tokens: int


def eligible(
    session: Session, namespace_ids: Sequence[str] | None, rules: SelectionRules
) -> list[Memory]:
    """Active, unexpired, unkeyed memories of the eligible kinds older than the minimum age."""
    now = utcnow()
    query = select(Memory).where(
        col(Memory.status) == MemoryStatus.ACTIVE.value,
        col(Memory.kind).in_(list(rules.kinds)),
        col(Memory.key).is_(None),
        col(Memory.created_at) < now - rules.min_age,
        or_(col(Memory.expires_at).is_(None), col(Memory.expires_at) > now),
    )
    if namespace_ids is not None:
        query = query.where(col(Memory.namespace_id).in_(list(namespace_ids)))
    # NULL scopes sort the same way on SQLite and PostgreSQL: after every non-NULL one.
    order = (
        col(Memory.namespace_id),
        col(Memory.user_id).is_(None),
        col(Memory.user_id),
        col(Memory.thread_id).is_(None),
        col(Memory.thread_id),
        col(Memory.created_at),
        col(Memory.id),
    )
    return list(session.exec(query.order_by(*order)).all())


def group_memories(memories: Iterable[Memory], rules: SelectionRules) -> list[Group]:
    """Split memories (sorted by scope, then time) into groups; leftovers wait for a later run.

    A group closes when its scope changes or the next memory would pass the token cap; a group
    smaller than `min_group_size` is not condensed, and a memory over the cap on its own is skipped.
    """
    groups: list[Group] = []
    current: list[Memory] = []
    tokens = 0

    def close() -> None:
        if len(current) >= rules.min_group_size:
            first = current[0]
            groups.append(
                Group(
                    first.namespace_id,
                    first.user_id,
                    first.thread_id,
                    tuple(Source.of(m) for m in current),
                )
            )
        current.clear()

    for memory in memories:
        if current and _scope(current[0]) != _scope(memory):
            close()
            tokens = 0
        if memory.token_count > rules.max_source_tokens:
            continue
        if tokens + memory.token_count > rules.max_source_tokens:
            close()
            tokens = 0
        current.append(memory)
        tokens += memory.token_count
    close()
    return groups


def select_groups(
    session: Session, namespace_ids: Sequence[str] | None, rules: SelectionRules
) -> list[Group]:
    """The groups a run would condense now, in `namespace_ids` (None: every namespace)."""
    return group_memories(eligible(session, namespace_ids, rules), rules)


def _scope(memory: Memory) -> tuple[str, str | None, str | None]:
    return (memory.namespace_id, memory.user_id, memory.thread_id)
