from __future__ import annotations

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlmodel import SQLModel

import memory_server.models  # noqa: F401  (registers the tables)
from memory_server.db import Database
from memory_server.filters import Scope
from memory_server.keyword import keyword_search
from memory_server.migrations import (
    MIGRATIONS,
    applied_versions,
    m0010_namespace_tagged_full_text,
    migrate,
)
from memory_server.models import Memory, utcnow
from memory_server.schemas import AgentCreate, MemoryFilters
from memory_server.services.agents import AgentService


def test_migrations_build_the_schema_the_models_describe(database_url, tmp_path) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        applied = migrate(db.engine)
        assert applied == [m.__name__ for m in MIGRATIONS]
        assert migrate(db.engine) == []  # a second start applies nothing
        inspector = sa.inspect(db.engine)
        # columns the database derives and keeps itself, outside the models
        derived = {} if db.is_sqlite else {"memory": {"content_tsv"}}
        for table in SQLModel.metadata.sorted_tables:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            expected = {c.name for c in table.columns} | derived.get(table.name, set())
            assert set(columns) == expected, table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (
                    table.name,
                    column.name,
                )
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index'"
            if db.is_sqlite
            else "SELECT indexname FROM pg_indexes WHERE tablename IN ('memory', 'task')"
        )
        with db.engine.connect() as connection:
            indexes = set(connection.execute(sa.text(catalog)).scalars())
        assert {"uq_memory_active_key", "uq_memory_active_content", "uq_task_in_progress"} <= (
            indexes
        )
    finally:
        db.dispose()


def test_the_namespace_tagged_full_text_index_is_built_from_existing_memories(
    tmp_path,
) -> None:
    """A database written before m0010 gets its full-text index rebuilt with tagged words: every
    memory stays findable by keyword, in its own namespace only, and edits keep the index."""
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        before = MIGRATIONS.index(m0010_namespace_tagged_full_text)
        with db.engine.begin() as connection:
            for migration in MIGRATIONS[:before]:
                migration(Operations(MigrationContext.configure(connection)))
            applied_versions(connection)  # creates the table of applied versions
            connection.execute(
                sa.text("INSERT INTO schema_migration VALUES (:version, :name, :at)"),
                [
                    {"version": number, "name": m.__name__, "at": "2026-11-01 00:00:00"}
                    for number, m in enumerate(MIGRATIONS[:before], start=1)
                ],
            )
        agents = AgentService(db)
        first = agents.create_agent(AgentCreate(name="a")).default_namespace_id
        second = agents.create_agent(AgentCreate(name="b")).default_namespace_id
        assert first is not None and second is not None
        now = utcnow()
        with db.write() as session:
            for memory_id, namespace_id in (("mem_1", first), ("mem_2", second)):
                session.add(
                    Memory(
                        id=memory_id,
                        namespace_id=namespace_id,
                        kind="note",
                        content="The quarterly invoices were sent.",
                        content_hash=memory_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
        assert migrate(db.engine) == [m.__name__ for m in MIGRATIONS[before:]]

        def found(namespace_id: str, query: str) -> list[str]:
            with db.read() as session:
                scope = Scope.of([namespace_id], MemoryFilters())
                return [m for m, _ in keyword_search(session, query, scope, 10)]

        assert found(first, "invoices") == ["mem_1"]
        assert found(second, "invoice") == ["mem_2"]  # stemmed as before the tags
        with db.write() as session:
            session.execute(
                sa.update(Memory).where(Memory.id == "mem_1").values(content="Payroll ran.")
            )
            session.execute(sa.delete(Memory).where(Memory.id == "mem_2"))
        assert found(first, "invoices") == [] and found(first, "payroll") == ["mem_1"]
        assert found(second, "invoices") == []
    finally:
        db.dispose()
