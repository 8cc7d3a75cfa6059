"""SQL tables, the source of truth. Wire shapes live in `schemas.py`, separate on purpose.

The schema itself is created by `migrations.py`; these classes describe it to the ORM, and a test
checks that the two agree.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, LargeBinary, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from .safe_json import ReadableJSON


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier such as `mem_3f9c...`; the prefix tells what it names."""
    return f"{prefix}_{secrets.token_hex(12)}"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC; always returns timezone-aware UTC datetimes, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Agent(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=128, unique=True)
    default_namespace_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    name: str | None = Field(default=None, max_length=128)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    read_only: bool = False
    namespace_ids: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class Namespace(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=128)
    owner_agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    description: str | None = Field(default=None, max_length=1000)
    is_default: bool = False
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Grant(SQLModel, table=True):
    """Another agent's permission on a namespace: `read`, or `write` (which includes read)."""

    __tablename__ = "namespace_grant"

    id: str = Field(primary_key=True, max_length=40)
    namespace_id: str = Field(foreign_key="namespace.id", index=True, max_length=40)
    agent_id: str = Field(foreign_key="agent.id", index=True, max_length=40)
    permission: str = Field(max_length=8)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Memory(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    namespace_id: str = Field(foreign_key="namespace.id", max_length=40)
    author_agent_id: str | None = Field(default=None, max_length=40)
    user_id: str | None = Field(default=None, max_length=128)
    thread_id: str | None = Field(default=None, max_length=128)
    kind: str = Field(max_length=32)
    role: str | None = Field(default=None, max_length=16)
    content: str = Field(sa_column=Column(Text, nullable=False))
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", ReadableJSON, nullable=False)
    )
    tags: list[str] = Field(default_factory=list, sa_column=Column(ReadableJSON, nullable=False))
    importance: float = 0.5
    key: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    last_accessed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    access_count: int = 0
    token_count: int = 0
    content_hash: str = Field(max_length=64)
    version: int = 1
    status: str = Field(default="active", max_length=16)
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    superseded_by: str | None = Field(default=None, max_length=40)
    level: int = 0  # 0 for an original entry; 1 + the highest of its sources' for a summary
    covers_from: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    covers_to: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))


class MemoryTag(SQLModel, table=True):
    """One row per (memory, tag): portable tag filtering on SQLite and PostgreSQL alike."""

    __tablename__ = "memory_tag"

    memory_id: str = Field(foreign_key="memory.id", primary_key=True, max_length=40)
    tag: str = Field(primary_key=True, max_length=64)


class MemoryEmbedding(SQLModel, table=True):
    """A memory's embedding under `model`, as float32 bytes: the index's input, kept in SQL."""

    __tablename__ = "memory_embedding"

    memory_id: str = Field(
        foreign_key="memory.id", ondelete="CASCADE", primary_key=True, max_length=40
    )
    model: str = Field(max_length=200)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class MemoryDeletion(SQLModel, table=True):
    """The record that a memory existed and was deleted: who, when, where. Never the content."""

    __tablename__ = "memory_deletion"

    memory_id: str = Field(primary_key=True, max_length=40)
    namespace_id: str = Field(index=True, max_length=40)
    kind: str = Field(max_length=32)
    deleted_by_agent_id: str | None = Field(default=None, max_length=40)
    deleted_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST carrying an `Idempotency-Key`, replayed to its retries."""

    __tablename__ = "idempotency_record"

    principal: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=255)
    request_hash: str = Field(max_length=64)
    # the request holding a pending key; the response is stored only by its holder
    claim_token: str | None = Field(default=None, max_length=32)
    status_code: int | None = None
    response_body: Any = Field(default=None, sa_column=Column(ReadableJSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class NamespaceAudit(SQLModel, table=True):
    """One access to a namespace by someone other than its owner: who, how, when, through which key.

    Append-only; one row per request per namespace touched (never per memory, never the content).
    """

    __tablename__ = "namespace_audit"

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    namespace_id: str = Field(max_length=40)
    agent_id: str | None = Field(default=None, max_length=40)
    key_id: str | None = Field(default=None, max_length=40)
    action: str = Field(max_length=8)
    operation: str = Field(max_length=32)
    memory_count: int = 0
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MemoryLink(SQLModel, table=True):
    """Provenance: summary `summary_id` was condensed from memory `source_id`."""

    __tablename__ = "memory_link"

    summary_id: str = Field(primary_key=True, max_length=40)
    source_id: str = Field(primary_key=True, index=True, max_length=40)


class SummaryRun(SQLModel, table=True):
    """One run of the summarizer: what it condensed (or, dry, would condense), and at what cost."""

    __tablename__ = "summary_run"

    id: str = Field(primary_key=True, max_length=40)
    namespace_id: str | None = Field(default=None, index=True, max_length=40)
    status: str = Field(max_length=16)
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    dry_run: bool = False
    groups: int = 0
    sources: int = 0
    tokens_before: int = 0
    tokens_after: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    failures: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    triggered_by: str | None = Field(default=None, max_length=40)


class JobLease(SQLModel, table=True):
    """Who runs job `name` until `expires_at`: one holder at a time across server processes."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class MemoryEvent(SQLModel, table=True):
    """One thing that happened to a memory, a task or a namespace: append-only, never the content.

    `id` is the cursor agents sync from: it grows in commit order (see `services/events.py`).
    """

    __tablename__ = "memory_event"

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    type: str = Field(max_length=16)
    namespace_id: str = Field(max_length=40)
    memory_id: str | None = Field(default=None, max_length=40)
    task_id: str | None = Field(default=None, max_length=40)
    actor: str = Field(max_length=40)  # the agent id, "admin", or "system" for scheduled jobs
    agent_id: str | None = Field(default=None, max_length=40)
    key_id: str | None = Field(default=None, max_length=40)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# JSON on SQLite, JSONB on PostgreSQL (indexable, compact, keys de-duplicated).
TaskJSON = JSON().with_variant(JSONB(), "postgresql")


class Task(SQLModel, table=True):
    """What an agent is doing or will do: the workflow state beside its memories.

    At most one task per (namespace, agent, thread) is `in_progress`; the partial unique index
    `uq_task_in_progress` (migration m0012) enforces it, so concurrent starts cannot both win.
    """

    id: str = Field(primary_key=True, max_length=40)
    namespace_id: str = Field(foreign_key="namespace.id", max_length=40)
    agent_id: str = Field(max_length=40)  # whose task: its in-progress slot is this agent's
    author_agent_id: str | None = Field(default=None, max_length=40)
    user_id: str | None = Field(default=None, max_length=128)
    thread_id: str | None = Field(default=None, max_length=128)
    parent_task_id: str | None = Field(default=None, foreign_key="task.id", max_length=40)
    title: str = Field(max_length=500)
    description: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    context: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(TaskJSON, nullable=False)
    )
    priority: int = 0
    status: str = Field(default="pending", max_length=16)
    result: Any = Field(default=None, sa_column=Column(TaskJSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    version: int = 1
