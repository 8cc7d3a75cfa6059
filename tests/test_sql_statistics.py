"""SQLite's query-planner statistics: taken when the memory table is big enough and has none or has
changed size, after which the read that checks a call's neighbours looks their ids up by primary
key instead of reading the whole namespace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import SQLAlchemyError

from memory_server.config import Settings
from memory_server.db import Database
from memory_server.driver_reads import recorded
from memory_server.filters import Scope
from memory_server.migrations import migrate
from memory_server.models import Memory, utcnow
from memory_server.runtime import build_runtime
from memory_server.schemas import AgentCreate, MemoryFilters, MemoryStatus
from memory_server.services.agents import AgentService
from memory_server.sql_statistics import (
    analyzed_rows,
    refresh_statistics,
    try_refresh_statistics,
)
from memory_server.stored_embeddings import memories_in_scope


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database(Settings(data_dir=tmp_path).resolved_database_url)
    migrate(db.engine)
    return db


def _namespaces(db: Database, count: int) -> list[str]:
    agents = AgentService(db)
    created = [agents.create_agent(AgentCreate(name=f"agent-{i}")) for i in range(count)]
    return [str(agent.default_namespace_id) for agent in created]


def _fill(db: Database, namespaces: list[str], per_namespace: int, start: int = 0) -> None:
    now = utcnow()
    with db.write() as session:
        for namespace in namespaces:
            for i in range(start, start + per_namespace):
                at = now - timedelta(minutes=i)
                session.add(
                    Memory(
                        id=f"{namespace}-{i:05d}",
                        namespace_id=namespace,
                        kind="fact",
                        content=f"memory number {i} of {namespace}",
                        content_hash=f"{namespace}-{i}",
                        created_at=at,
                        updated_at=at,
                    )
                )


def _statistics(db: Database) -> int | None:
    with db.read() as session:
        return analyzed_rows(session.connection())


def _neighbours_read(db: Database, namespace: str, ids: list[str]) -> tuple[list[str], str]:
    """The ids the neighbours' read finds in scope, and the plan of the statement it ran, on a
    connection opened now (a connection loads the statistics when it opens)."""
    scope = Scope.of([namespace], MemoryFilters(), [MemoryStatus.ACTIVE])
    with db.read() as session, recorded() as captured:
        found, _ = memories_in_scope(session, ids, scope, "model", in_memory={})
    ((statement, parameters),) = captured
    with db.engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return sorted(m.id for m in found), "\n".join(str(row[-1]) for row in plan)


def test_with_statistics_the_neighbours_read_looks_its_ids_up(sqlite_db: Database) -> None:
    namespaces = _namespaces(sqlite_db, 3)
    _fill(sqlite_db, namespaces, 400)  # 1,200 memories: MIN_ROWS
    wanted = [f"{namespaces[0]}-{i:05d}" for i in range(0, 400, 10)]
    wanted += [f"{namespaces[1]}-00001"]  # another namespace's: out of scope
    found, plan = _neighbours_read(sqlite_db, namespaces[0], wanted)
    assert found == sorted(wanted[:-1])
    assert "ix_memory_scope" in plan  # the planner's guess: the whole namespace, 400 rows

    assert refresh_statistics(sqlite_db) is True
    assert _statistics(sqlite_db) is not None
    found_after, plan_after = _neighbours_read(sqlite_db, namespaces[0], wanted)
    assert found_after == found
    assert "(id=?)" in plan_after and "ix_memory_scope" not in plan_after


def test_statistics_are_taken_again_only_when_the_table_has_changed_size(
    sqlite_db: Database,
) -> None:
    namespaces = _namespaces(sqlite_db, 3)
    _fill(sqlite_db, namespaces, 40)  # 120 memories
    assert refresh_statistics(sqlite_db, min_rows=200) is False  # small: the defaults serve
    assert _statistics(sqlite_db) is None
    assert refresh_statistics(sqlite_db, min_rows=100) is True
    first = _statistics(sqlite_db)
    assert first is not None
    _fill(sqlite_db, namespaces, 40, start=40)  # twice the size: within REFRESH_FACTOR
    assert refresh_statistics(sqlite_db, min_rows=100) is False
    assert _statistics(sqlite_db) == first
    _fill(sqlite_db, namespaces, 400, start=80)  # 1,440 memories: 12 times the first count
    assert refresh_statistics(sqlite_db, min_rows=100) is True
    assert (_statistics(sqlite_db) or 0) > first


def test_postgresql_keeps_its_own_statistics(migrated_db: Database) -> None:
    if migrated_db.is_sqlite:
        pytest.skip("PostgreSQL only")
    _fill(migrated_db, _namespaces(migrated_db, 1), 20)
    assert refresh_statistics(migrated_db, min_rows=1) is False


@pytest.mark.parametrize("minutes", [60.0, 0.0])
def test_the_server_takes_them_at_startup_unless_disabled(tmp_path: Path, minutes: float) -> None:
    settings = Settings(data_dir=tmp_path, sql_statistics_minutes=minutes)
    db = Database(settings.resolved_database_url)
    migrate(db.engine)
    _fill(db, _namespaces(db, 2), 600)
    db.dispose()
    runtime = build_runtime(settings, reconcile=False)
    try:
        assert (_statistics(runtime.db) is not None) is (minutes > 0)
        runtime.start_jobs()  # and checks them again on its schedule
        assert runtime.scheduler is not None
        job = runtime.scheduler.get_job("statistics")
        assert (job is not None) is (minutes > 0)
        if job is not None:
            assert job.trigger.interval.total_seconds() == minutes * 60
    finally:
        runtime.close()


def test_a_failure_to_take_them_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'missing' / 'memory.db'}")  # its directory does not exist
    try:
        with pytest.raises(SQLAlchemyError):
            refresh_statistics(db)
        assert try_refresh_statistics(db) is False
    finally:
        db.dispose()
    assert "could not take the query-planner statistics" in caplog.text
