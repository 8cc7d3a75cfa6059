"""Reads on the driver give exactly what SQLAlchemy's execution gives: every column of the memory
table decoded alike (aware UTC datetimes, JSON, None), parameters bound alike (a datetime, lists
expanded, an empty one too), on SQLite and PostgreSQL; and a driver error is SQLAlchemy's."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from memory_server.db import Database
from memory_server.driver_reads import rows
from memory_server.filters import Scope
from memory_server.keyword import keyword_matches
from memory_server.models import Memory, utcnow
from memory_server.records import MEMORY_TABLE, read_records, select_records, to_record
from memory_server.schemas import AgentCreate, MemoryFilters, MemoryStatus
from memory_server.services.agents import AgentService
from memory_server.stored_embeddings import memories_in_scope, store_embeddings
from memory_server.vectors import VectorRecord

MODEL = "test-model"


def _store(db: Database) -> str:
    namespace = AgentService(db).create_agent(AgentCreate(name="reader")).default_namespace_id
    assert namespace is not None
    now = utcnow()
    with db.write() as session:
        session.add(
            Memory(
                id="mem_full",
                namespace_id=namespace,
                author_agent_id="agt_x",
                user_id="user-1",
                thread_id="thread-1",
                kind="fact",
                role=None,
                content="The billing service moved to the EU region in May.",
                meta={"source": "chat", "nested": {"n": [1, 2.5, None]}, "ünï": "côdé"},
                tags=["billing", "eu"],
                importance=0.875,
                key="billing.region",
                created_at=now - timedelta(days=3, microseconds=7),
                updated_at=now - timedelta(days=1),
                last_accessed_at=now - timedelta(hours=2),
                access_count=4,
                token_count=12,
                content_hash="h1",
                version=3,
                expires_at=now + timedelta(days=30),
                level=1,
                covers_from=now - timedelta(days=9),
                covers_to=now - timedelta(days=4),
            )
        )
        session.add(
            Memory(
                id="mem_bare",
                namespace_id=namespace,
                kind="message",
                role="user",
                content="Billing questions go to Priya.",
                content_hash="h2",
                created_at=now,
                updated_at=now,
            )
        )
        session.add(
            Memory(
                id="mem_expired",
                namespace_id=namespace,
                kind="note",
                content="Billing was frozen last week.",
                content_hash="h3",
                created_at=now,
                updated_at=now,
                expires_at=now - timedelta(seconds=1),
            )
        )
        session.flush()
        store_embeddings(session, [VectorRecord("mem_full", [0.25, -0.5, 1.0], {})], MODEL)
    return namespace


def _through_sqlalchemy(
    session: Session, statement: sa.Select[object], parameters: dict[str, object]
) -> list[list[object]]:
    return [list(row) for row in session.connection().execute(statement, parameters)]


def test_every_column_reads_as_sqlalchemy_reads_it(migrated_db: Database) -> None:
    namespace = _store(migrated_db)
    by_id = select_records().where(
        MEMORY_TABLE.c.id.in_(sa.bindparam("ids", expanding=True)),
        MEMORY_TABLE.c.created_at <= sa.bindparam("now"),
    )
    parameters: dict[str, object] = {"ids": ["mem_full", "mem_bare", "nope"], "now": utcnow()}
    with migrated_db.snapshot() as session:
        expected = _through_sqlalchemy(session, by_id, parameters)
        got = rows(session, by_id, parameters)
        records = read_records(session, by_id.order_by(MEMORY_TABLE.c.id), parameters)
        empty = rows(session, by_id, {"ids": [], "now": utcnow()})
    assert len(expected) == 2 and sorted(got) == sorted(expected)
    for row in got:
        assert all(
            type(a) is type(b)
            for a, b in zip(row, next(e for e in expected if e[0] == row[0]), strict=True)
        )
    full = next(record for record in records if record.id == "mem_full")
    assert full.created_at.tzinfo is not None and full.created_at.utcoffset() == timedelta(0)
    assert full.meta["nested"] == {"n": [1, 2.5, None]} and full.tags == ["billing", "eu"]
    assert [record.id for record in records] == ["mem_bare", "mem_full"]
    assert all(record.namespace_id == namespace for record in records)
    assert empty == []


def test_the_scope_read_binds_its_datetime_and_reads_the_vectors(migrated_db: Database) -> None:
    namespace = _store(migrated_db)
    scope = Scope.of([namespace], MemoryFilters(), [MemoryStatus.ACTIVE])
    ids = ["mem_full", "mem_bare", "mem_expired"]
    with migrated_db.snapshot() as session:
        records, vectors = memories_in_scope(session, ids, scope, MODEL)
        statement = select_records().where(MEMORY_TABLE.c.id.in_(ids))
        everything = {row[0]: to_record(row) for row in _through_sqlalchemy(session, statement, {})}
    assert sorted(record.id for record in records) == ["mem_bare", "mem_full"]  # not the expired
    assert all(record == everything[record.id] for record in records)
    assert list(vectors) == ["mem_full"]
    assert np.array_equal(vectors["mem_full"], np.array([0.25, -0.5, 1.0], dtype=np.float32))


def test_keyword_matches_read_their_rows_on_the_driver(migrated_db: Database) -> None:
    namespace = _store(migrated_db)
    scope = Scope.of([namespace], MemoryFilters(), [MemoryStatus.ACTIVE])
    with migrated_db.snapshot() as session:
        matches = keyword_matches(session, "billing", scope, 10)
        statement = select_records().where(MEMORY_TABLE.c.id.in_(["mem_full", "mem_bare"]))
        everything = {row[0]: to_record(row) for row in _through_sqlalchemy(session, statement, {})}
    assert sorted(memory.id for memory, _ in matches) == ["mem_bare", "mem_full"]
    assert all(memory == everything[memory.id] and score > 0 for memory, score in matches)


def test_a_driver_error_is_raised_as_sqlalchemys(migrated_db: Database) -> None:
    missing = sa.select(sa.table("no_such_table", sa.column("id")).c.id)
    with pytest.raises(sa.exc.DBAPIError) as raised, migrated_db.read() as session:
        rows(session, missing, {})
    assert "no_such_table" in str(raised.value)
