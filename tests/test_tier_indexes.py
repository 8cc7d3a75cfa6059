"""The context tiers read before ranking (a thread's recent messages, a user's keyed facts and
preferences) are found through indexes that hold exactly their rows, on SQLite and PostgreSQL, so
their cost follows what they return rather than the size of the namespace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from memory_server.config import Settings
from memory_server.db import Database
from memory_server.driver_reads import recorded
from memory_server.models import Memory, utcnow
from memory_server.schemas import AgentCreate, ContextRequest
from memory_server.services.agents import AgentService
from memory_server.services.context import ContextService


def _plan(db: Database, statement: str, parameters: Any) -> str:
    with db.engine.connect() as connection:
        if db.is_sqlite:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return "\n".join(str(row[-1]) for row in rows)
        connection.exec_driver_sql("SET enable_seqscan = off")  # plan as for a big table
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(str(row[0]) for row in rows)


def test_thread_and_fact_tiers_are_read_through_their_own_indexes(
    migrated_db: Database, tmp_path: Path
) -> None:
    db = migrated_db
    namespace = AgentService(db).create_agent(AgentCreate(name="tiers")).default_namespace_id
    assert namespace is not None
    now = utcnow()
    with db.write() as session:
        for i in range(30):
            kind, key = ("message", None) if i % 3 else ("fact", f"k{i}")
            at = now - timedelta(minutes=i)
            session.add(
                Memory(
                    id=f"mem_{i:03d}",
                    namespace_id=namespace,
                    kind=kind,
                    key=key,
                    content=f"memory {i}",
                    content_hash=f"h{i}",
                    user_id=f"user-{i % 2}",
                    thread_id=f"thread-{i % 4}",
                    created_at=at,
                    updated_at=at,
                )
            )
    service = ContextService(db, None, None, Settings(data_dir=tmp_path))  # type: ignore[arg-type]  # tiers only
    request = ContextRequest(query="q", budget_tokens=100, user_id="user-0", thread_id="thread-1")
    with db.read() as session, recorded() as captured:
        thread = service._recent_thread(session, [namespace], request)
        facts = service._user_facts(session, [namespace], request)
    assert [m.id for m in thread] == [f"mem_{i:03d}" for i in (1, 5, 13, 17, 25, 29)]
    assert {m.id for m in facts} == {f"mem_{i:03d}" for i in range(0, 30, 6)}
    (thread_sql, thread_parameters), (facts_sql, facts_parameters) = captured
    assert "ix_memory_thread" in _plan(db, thread_sql, thread_parameters)
    assert "ix_memory_user_facts" in _plan(db, facts_sql, facts_parameters)
