"""One definition of scope, two uses: conditions with their values bound (listing) and prebuilt
statements run with a scope's parameters (the reads of every search and context call). Both must
select the same memories, on both databases, whatever the filters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memory_server.db import Database
from memory_server.driver_reads import recorded
from memory_server.filters import Scope, memory_conditions, scope_conditions
from memory_server.keyword import keyword_search
from memory_server.models import Memory, MemoryLink, MemoryTag, utcnow
from memory_server.records import read_records, select_records
from memory_server.schemas import AgentCreate, MemoryFilters, MemoryStatus
from memory_server.services.agents import AgentService
from memory_server.stored_embeddings import memories_in_scope

NOW = utcnow()
# id: (namespace index, user, thread, kind, status, age in days, expired, tags)
MEMORIES = {
    "mem_a": (0, "ana", "t1", "message", "active", 1, False, ["work"]),
    "mem_b": (0, "ana", "t2", "fact", "active", 10, False, ["work", "travel"]),
    "mem_c": (0, "bo", "t1", "message", "archived", 3, False, []),
    "mem_d": (0, "bo", None, "note", "active", 30, True, ["travel"]),
    "mem_e": (1, "ana", "t1", "message", "active", 2, False, ["work"]),
    "mem_f": (0, None, None, "preference", "superseded", 5, False, []),
    "mem_g": (0, "bo", "t2", "note", "active", 4, False, []),
}
# Each filter's case excludes something the unfiltered scope holds, so a dropped filter fails.
CASES = [
    (MemoryFilters(), None, {"mem_a", "mem_b", "mem_g"}),
    (MemoryFilters(user_id="ana"), None, {"mem_a", "mem_b"}),
    (MemoryFilters(user_id="bo"), [MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED], {"mem_c", "mem_g"}),
    (
        MemoryFilters(thread_id="t1"),
        [MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED],
        {"mem_a", "mem_c"},
    ),
    (MemoryFilters(kinds=["fact", "note"]), None, {"mem_b", "mem_g"}),  # mem_d has expired
    (MemoryFilters(created_after=NOW - timedelta(days=5)), None, {"mem_a", "mem_g"}),
    (MemoryFilters(created_before=NOW - timedelta(days=5)), None, {"mem_b"}),
    (MemoryFilters(tags=["work"]), None, {"mem_a", "mem_b"}),
    (MemoryFilters(tags=["work", "travel"]), None, {"mem_b"}),
    (MemoryFilters(tags=["travel"]), None, {"mem_b"}),  # mem_d has expired
    (MemoryFilters(), [MemoryStatus.SUPERSEDED], {"mem_f"}),
]


@pytest.fixture
def namespaces(migrated_db: Database) -> list[str]:
    agents = AgentService(migrated_db)
    ids = []
    for name in ("scope-a", "scope-b"):
        namespace_id = agents.create_agent(AgentCreate(name=name)).default_namespace_id
        assert namespace_id is not None
        ids.append(namespace_id)
    with migrated_db.write() as session:
        for memory_id, (ns, user, thread, kind, status, age, expired, tags) in MEMORIES.items():
            created = NOW - timedelta(days=age)
            session.add(
                Memory(
                    id=memory_id,
                    namespace_id=ids[ns],
                    user_id=user,
                    thread_id=thread,
                    kind=kind,
                    status=status,
                    content=f"content of {memory_id}",
                    content_hash=memory_id,
                    created_at=created,
                    updated_at=created,
                    expires_at=NOW - timedelta(hours=1) if expired else None,
                    tags=tags,
                )
            )
            session.add_all(MemoryTag(memory_id=memory_id, tag=tag) for tag in tags)
    return ids


@pytest.mark.parametrize(("filters", "statuses", "expected"), CASES)
def test_bound_conditions_and_prebuilt_statements_select_the_same_memories(
    migrated_db: Database,
    namespaces: list[str],
    filters: MemoryFilters,
    statuses: list[MemoryStatus] | None,
    expected: set[str],
) -> None:
    mine = namespaces[:1]
    with migrated_db.read() as session:
        bound = read_records(
            session, select_records().where(*memory_conditions(mine, filters, statuses))
        )
        scope = Scope.of(mine, filters, statuses)
        prebuilt, _ = memories_in_scope(session, list(MEMORIES), scope, "any-model")
    assert {m.id for m in bound} == expected
    assert {m.id for m in prebuilt} == expected


def test_scopes_of_one_shape_share_their_conditions_but_not_their_values(
    migrated_db: Database, namespaces: list[str]
) -> None:
    ana = Scope.of(namespaces, MemoryFilters(user_id="ana"))
    bo = Scope.of(namespaces, MemoryFilters(user_id="bo"), [MemoryStatus.ARCHIVED])
    assert ana.shape == bo.shape
    assert scope_conditions(ana.shape) is scope_conditions(bo.shape)  # built once
    with migrated_db.read() as session:
        found = {
            name: {m.id for m in memories_in_scope(session, list(MEMORIES), scope, "m")[0]}
            for name, scope in (("ana", ana), ("bo", bo))
        }
        one_namespace = Scope.of(namespaces[1:], MemoryFilters(user_id="ana"))
        only_b = {m.id for m in memories_in_scope(session, list(MEMORIES), one_namespace, "m")[0]}
    assert found == {"ana": {"mem_a", "mem_b", "mem_e"}, "bo": {"mem_c"}}
    assert only_b == {"mem_e"}


# id: (namespace index, kind, status, the summary it is a source of)
CONDENSED = {
    "mem_s1": (0, "summary", "active", None),
    "mem_s1a": (0, "message", "archived", "mem_s1"),
    "mem_s1b": (0, "message", "archived", "mem_s1"),
    "mem_top": (0, "summary", "active", None),
    "mem_s2": (0, "summary", "archived", "mem_top"),
    "mem_s2a": (0, "message", "archived", "mem_s2"),
    "mem_t1": (1, "summary", "active", None),
    "mem_t1a": (1, "message", "archived", "mem_t1"),
}


@pytest.fixture
def condensed(migrated_db: Database, namespaces: list[str]) -> list[str]:
    """`CONDENSED` beside `MEMORIES`: summaries linked to their sources, one rolled up."""
    with migrated_db.write() as session:
        for memory_id, (ns, kind, status, _) in CONDENSED.items():
            session.add(
                Memory(
                    id=memory_id,
                    namespace_id=namespaces[ns],
                    kind=kind,
                    status=status,
                    content=f"condensed content of {memory_id}",
                    content_hash=memory_id,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        session.flush()
        session.add_all(
            MemoryLink(summary_id=summary, source_id=memory_id)
            for memory_id, (*_, summary) in CONDENSED.items()
            if summary is not None
        )
    return [*MEMORIES, *CONDENSED]


def test_a_summarized_scope_holds_the_archived_sources_of_its_summaries_only(
    migrated_db: Database, namespaces: list[str], condensed: list[str]
) -> None:
    """`summarized`: an archived memory is in scope when a summary of the scope's statuses
    condenses it, in the memory's own namespace and filters; not when it was archived by hand,
    nor when its summary was condensed in turn (then that summary is the source in scope)."""
    active = {"mem_a", "mem_b", "mem_g", "mem_s1", "mem_top"}
    cases = [
        (MemoryFilters(), None, active | {"mem_s1a", "mem_s1b", "mem_s2"}),
        (MemoryFilters(kinds=["summary"]), None, {"mem_s1", "mem_top", "mem_s2"}),
        (MemoryFilters(user_id="ana"), None, {"mem_a", "mem_b"}),
        # archived memories asked for: every one of them, condensed or not
        (
            MemoryFilters(),
            [MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED],
            active | {"mem_c", "mem_s1a", "mem_s1b", "mem_s2", "mem_s2a"},
        ),
    ]
    with migrated_db.read() as session:
        for filters, statuses, expected in cases:
            scope = Scope.of(namespaces[:1], filters, statuses, summarized=True)
            found, _ = memories_in_scope(session, condensed, scope, "any-model")
            assert {m.id for m in found} == expected, filters
            matched = keyword_search(session, "condensed", scope, 50)
            assert {i for i, _ in matched} == expected & set(CONDENSED), filters
    plain = Scope.of(namespaces[:1], MemoryFilters())
    assert plain.shape != Scope.of(namespaces[:1], MemoryFilters(), summarized=True).shape


def test_a_summarized_scope_looks_up_the_links_of_the_rows_it_reads_only(
    migrated_db: Database, namespaces: list[str], condensed: list[str]
) -> None:
    """Each archived row read is checked by its own links (an index lookup), so the check costs
    what the read returns: PostgreSQL must not hash every summary's links in the database."""
    scope = Scope.of(namespaces[:1], MemoryFilters(), summarized=True)
    with migrated_db.read() as session, recorded() as statements:
        memories_in_scope(session, condensed, scope, "any-model")
        keyword_search(session, "condensed", scope, 50)
    assert len(statements) == 2
    with migrated_db.engine.connect() as connection:
        if not migrated_db.is_sqlite:
            connection.exec_driver_sql("SET enable_seqscan = off")  # plan as for a big table
        for sql, parameters in statements:
            explain = "EXPLAIN QUERY PLAN " if migrated_db.is_sqlite else "EXPLAIN "
            rows = connection.exec_driver_sql(explain + sql, parameters)
            plan = "\n".join(str(row[-1] if migrated_db.is_sqlite else row[0]) for row in rows)
            assert "ix_memory_link_source_id" in plan, plan
            assert "hashed" not in plan.lower() and "seq scan on memory_link" not in plan.lower()
