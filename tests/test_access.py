"""The permission rule's read paths: `readable_namespace_ids` (what search and context scope to,
without loading the namespaces) lists exactly the namespaces `readable_namespaces` lists, for
every kind of caller, on SQLite and PostgreSQL; and neither scans the namespace table."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event

from memory_server.access import readable_namespace_ids, readable_namespaces
from memory_server.auth import ADMIN, Principal
from memory_server.config import Settings
from memory_server.db import Database
from memory_server.migrations import migrate
from memory_server.schemas import AgentCreate, GrantCreate, NamespaceCreate
from memory_server.services.agents import AgentService
from memory_server.services.namespaces import NamespaceService
from memory_server.services.sharing import SharingService


def test_readable_namespace_ids_are_the_readable_namespaces(
    migrated_db: Database,
) -> None:
    db = migrated_db
    agents, namespaces, sharing = AgentService(db), NamespaceService(db), SharingService(db)
    owner, reader, writer, stranger = (
        agents.create_agent(AgentCreate(name=name))
        for name in ("owner", "reader", "writer", "stranger")
    )
    as_owner = Principal(agent_id=owner.id, key_id=None)
    shared = [namespaces.create(as_owner, NamespaceCreate(name=f"shared-{i}")) for i in range(3)]
    sharing.grant(as_owner, shared[0].id, GrantCreate(agent_id=reader.id, permission="read"))
    sharing.grant(as_owner, shared[1].id, GrantCreate(agent_id=reader.id, permission="write"))
    sharing.grant(as_owner, shared[1].id, GrantCreate(agent_id=writer.id, permission="write"))
    revoked, _ = sharing.grant(
        as_owner, shared[2].id, GrantCreate(agent_id=stranger.id, permission="read")
    )
    sharing.revoke(as_owner, shared[2].id, revoked.id)
    default = {a.id: a.default_namespace_id for a in (owner, reader, writer, stranger)}
    every = sorted(str(ns_id) for ns_id in default.values()) + [ns.id for ns in shared]

    cases = {
        "owner": (as_owner, [default[owner.id], *(ns.id for ns in shared)]),
        "owner, read-only key": (
            Principal(agent_id=owner.id, key_id=None, read_only=True),
            [default[owner.id], *(ns.id for ns in shared)],
        ),
        "owner, key for one namespace": (
            Principal(agent_id=owner.id, key_id=None, namespace_ids=frozenset({shared[2].id})),
            [shared[2].id],
        ),
        "reader": (
            Principal(agent_id=reader.id, key_id=None),
            [default[reader.id], shared[0].id, shared[1].id],
        ),
        "reader, key for one shared namespace": (
            Principal(agent_id=reader.id, key_id=None, namespace_ids=frozenset({shared[1].id})),
            [shared[1].id],
        ),
        "writer": (
            Principal(agent_id=writer.id, key_id=None),
            [default[writer.id], shared[1].id],
        ),
        "stranger, grant revoked": (
            Principal(agent_id=stranger.id, key_id=None),
            [default[stranger.id]],
        ),
        "admin": (ADMIN, every),
    }
    for name, (principal, expected) in cases.items():
        with db.read() as session:
            ids = readable_namespace_ids(session, principal)
            listed = [namespace.id for namespace, _ in readable_namespaces(session, principal)]
        assert ids == listed == sorted(str(i) for i in expected), name


def test_scoping_a_call_looks_namespaces_up_by_index_not_by_scanning(tmp_path: Path) -> None:
    """Every search and context call scopes itself, and every namespace listing: on SQLite, each
    statement that `readable_namespace_ids` and `readable_namespaces` run for an agent searches an
    index, so their cost does not grow with the number of namespaces in the store."""
    db = Database(Settings(data_dir=tmp_path).resolved_database_url)
    try:
        migrate(db.engine)
        agent = AgentService(db).create_agent(AgentCreate(name="scoped"))
        statements: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
            statements.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", capture)
        principal = Principal(agent_id=agent.id, key_id=None)
        with db.read() as session:
            ids = readable_namespace_ids(session, principal)
            listed = readable_namespaces(session, principal)
        event.remove(db.engine, "before_cursor_execute", capture)
        assert ids == [agent.default_namespace_id]
        assert [(namespace.id, label) for namespace, label in listed] == [(ids[0], "owner")]
        selects = [(s, p) for s, p in statements if s.lstrip().upper().startswith("SELECT")]
        assert selects
        with db.engine.connect() as connection:
            for statement, parameters in selects:
                plan = [
                    row[-1]
                    for row in connection.exec_driver_sql(
                        "EXPLAIN QUERY PLAN " + statement,
                        parameters,  # type: ignore[arg-type]
                    )
                ]
                assert not [step for step in plan if step.startswith("SCAN")], plan
    finally:
        db.dispose()
