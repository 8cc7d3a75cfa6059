"""Keyword search in SQL on both databases: matches in scope, best first, following edits; and on
PostgreSQL, a query that reads each row's stored search vector instead of computing it."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import col

from memory_server.db import Database
from memory_server.driver_reads import recorded
from memory_server.filters import Scope
from memory_server.keyword import keyword_search
from memory_server.models import Memory, utcnow
from memory_server.schemas import AgentCreate, MemoryFilters, MemoryStatus
from memory_server.services.agents import AgentService

CONTENTS = {
    "billing": "The billing service moved to the EU region; billing invoices go out on Fridays.",
    "lisbon": "I moved to Lisbon in May and I am still looking for a flat.",
    "audit": "The security audit is blocked by the Postgres upgrade.",
    "passing": "Someone mentioned billing once in the standup.",
}


def _add(db: Database, namespace_id: str, contents: dict[str, str], kind: str = "note") -> None:
    now = utcnow()
    with db.write() as session:
        for memory_id, content in contents.items():
            session.add(
                Memory(
                    id=memory_id,
                    namespace_id=namespace_id,
                    kind=kind,
                    content=content,
                    content_hash=memory_id,
                    created_at=now,
                    updated_at=now,
                )
            )


def _store(db: Database) -> tuple[str, str]:
    """Two agents' namespaces; the first holds `CONTENTS`, the second one billing memory."""
    agents = AgentService(db)
    mine = agents.create_agent(AgentCreate(name="keyword-owner")).default_namespace_id
    other = agents.create_agent(AgentCreate(name="keyword-other")).default_namespace_id
    assert mine is not None and other is not None
    _add(db, mine, {f"mem_{name}": content for name, content in CONTENTS.items()}, "message")
    _add(db, other, {"mem_elsewhere": "Billing, billing, billing: the billing service."}, "message")
    return mine, other


def _search(db: Database, query: str, namespace: str) -> list[str]:
    scope = Scope.of([namespace], MemoryFilters(), [MemoryStatus.ACTIVE])
    with db.read() as session:
        matches = keyword_search(session, query, scope, 10)
    return [memory_id for memory_id, _ in matches]


def test_keyword_matches_are_in_scope_best_first_and_follow_edits(
    migrated_db: Database,
) -> None:
    db = migrated_db
    mine, other = _store(db)
    assert _search(db, "what happened to billing?", mine) == ["mem_billing", "mem_passing"]
    assert _search(db, "billing", other) == ["mem_elsewhere"]
    assert _search(db, "Where is the flat I moved into?", mine)[0] == "mem_lisbon"
    assert _search(db, "what did I tell you?", mine) == []  # filler words only
    with db.write() as session:
        session.execute(
            update(Memory)
            .where(col(Memory.id) == "mem_audit")
            .values(content="The billing audit finished.")
        )
    assert "mem_audit" in _search(db, "billing", mine)
    assert _search(db, "postgres upgrade", mine) == []


def test_a_words_weight_does_not_depend_on_other_namespaces(migrated_db: Database) -> None:
    """SQLite weighs a query word by how many memories of the namespace hold it (full_text.py):
    what another agent writes does not move one word against another here. With one index of
    plain words, "apple", common elsewhere, weighed less than "banana"."""
    db = migrated_db
    if not db.is_sqlite:
        pytest.skip("SQLite only: PostgreSQL's ts_rank_cd weighs no word by its frequency")
    agents = AgentService(db)
    mine = agents.create_agent(AgentCreate(name="fruit-owner")).default_namespace_id
    other = agents.create_agent(AgentCreate(name="fruit-other")).default_namespace_id
    assert mine is not None and other is not None
    _add(db, mine, {"mem_apple": "Apple pie recipe.", "mem_banana": "Banana bread recipe."})
    _add(db, other, {f"mem_other_{i}": f"Apple harvest number {i}." for i in range(30)})
    with db.read() as session:
        scores = dict(
            keyword_search(session, "apple banana", Scope.of([mine], MemoryFilters()), 10)
        )
    assert set(scores) == {"mem_apple", "mem_banana"}
    assert scores["mem_apple"] == pytest.approx(scores["mem_banana"], rel=1e-9)
    with db.read() as session:
        across = dict(
            keyword_search(session, "apple", Scope.of([mine, other], MemoryFilters()), 50)
        )
    assert len(across) == 31  # a scope of two namespaces asks for the word in each


def test_postgres_keyword_query_reads_stored_search_vectors(
    migrated_db: Database,
) -> None:
    """The scope's rows are read through the namespace index and each is tested against the
    query; with an index on the expression instead of a stored vector, PostgreSQL computed
    `to_tsvector` for every row in scope on every call."""
    db = migrated_db
    if db.is_sqlite:
        pytest.skip("PostgreSQL only: SQLite answers from its FTS5 index")
    mine, _ = _store(db)
    with recorded() as statements:
        assert _search(db, "billing invoices", mine)[0] == "mem_billing"
    [(statement, parameters)] = statements
    with db.engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")  # plan as for a big table
        plan = "\n".join(
            row[0]
            for row in connection.exec_driver_sql(
                "EXPLAIN (VERBOSE) " + statement,
                parameters,  # type: ignore[arg-type]
            )
        )
    assert "content_tsv" in plan and "to_tsvector" not in plan, plan
