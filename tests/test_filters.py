"""One definition of scope, two uses: conditions with their values bound (listing) and prebuilt
statements run with a scope's parameters (the reads of every search and context call). Both must
select the same memories, on both databases, whatever the filters."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memory_server.db import Database
from memory_server.filters import Scope, memory_conditions, scope_conditions
from memory_server.models import Memory, MemoryTag, utcnow
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
