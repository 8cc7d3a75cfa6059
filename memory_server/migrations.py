"""Schema migrations: numbered functions applied in order at startup, recorded in a table.

Each migration is written against the schema as it was at its number, never against the current
models, so a database created at any version upgrades the same way. Add a migration by appending a
function to `MIGRATIONS`; never edit one that has shipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from . import full_text
from .models import UTCDateTime

log = logging.getLogger(__name__)

Migration = Callable[[Operations], None]


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def m0001_initial(op: Operations) -> None:
    op.create_table(
        "agent",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("default_namespace_id", sa.String(40)),
        _ts("created_at"),
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("agent_id", sa.String(40), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("namespace_ids", sa.JSON()),
        _ts("created_at"),
        _ts("expires_at", nullable=True),
        _ts("revoked_at", nullable=True),
    )
    op.create_index("ix_api_key_agent_id", "api_key", ["agent_id"])
    op.create_table(
        "namespace",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("owner_agent_id", sa.String(40), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("description", sa.String(1000)),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("owner_agent_id", "name", name="uq_namespace_owner_name"),
    )
    op.create_index("ix_namespace_owner_agent_id", "namespace", ["owner_agent_id"])
    op.create_table(
        "namespace_grant",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("namespace_id", sa.String(40), sa.ForeignKey("namespace.id"), nullable=False),
        sa.Column("agent_id", sa.String(40), sa.ForeignKey("agent.id"), nullable=False),
        sa.Column("permission", sa.String(8), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("namespace_id", "agent_id", name="uq_grant_namespace_agent"),
    )
    op.create_index("ix_namespace_grant_namespace_id", "namespace_grant", ["namespace_id"])
    op.create_index("ix_namespace_grant_agent_id", "namespace_grant", ["agent_id"])
    op.create_table(
        "memory",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("namespace_id", sa.String(40), sa.ForeignKey("namespace.id"), nullable=False),
        sa.Column("author_agent_id", sa.String(40)),
        sa.Column("user_id", sa.String(128)),
        sa.Column("thread_id", sa.String(128)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16)),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("importance", sa.Float(), nullable=False),
        sa.Column("key", sa.String(128)),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("last_accessed_at", nullable=True),
        sa.Column("access_count", sa.Integer(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("expires_at", nullable=True),
        sa.Column("superseded_by", sa.String(40)),
    )
    op.create_index("ix_memory_scope", "memory", ["namespace_id", "status", "created_at"])
    op.create_index("ix_memory_user_thread", "memory", ["namespace_id", "user_id", "thread_id"])
    op.create_index("ix_memory_expires_at", "memory", ["expires_at"])
    # One active value per keyed fact, and one active copy of a non-message memory per scope:
    # the database, not a read-then-write in Python, settles races between concurrent writers.
    active_keyed = sa.text("status = 'active' AND key IS NOT NULL")
    op.create_index(
        "uq_memory_active_key",
        "memory",
        ["namespace_id", sa.text("coalesce(user_id, '')"), "key"],
        unique=True,
        sqlite_where=active_keyed,
        postgresql_where=active_keyed,
    )
    active_non_message = sa.text("status = 'active' AND kind <> 'message'")
    op.create_index(
        "uq_memory_active_content",
        "memory",
        [
            "namespace_id",
            sa.text("coalesce(user_id, '')"),
            "kind",
            sa.text("coalesce(key, '')"),
            "content_hash",
        ],
        unique=True,
        sqlite_where=active_non_message,
        postgresql_where=active_non_message,
    )
    op.create_table(
        "memory_tag",
        sa.Column(
            "memory_id",
            sa.String(40),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_memory_tag_tag", "memory_tag", ["tag", "memory_id"])
    op.create_table(
        "memory_deletion",
        sa.Column("memory_id", sa.String(40), primary_key=True),
        sa.Column("namespace_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("deleted_by_agent_id", sa.String(40)),
        _ts("deleted_at"),
    )
    op.create_index("ix_memory_deletion_namespace_id", "memory_deletion", ["namespace_id"])
    op.create_table(
        "idempotency_record",
        sa.Column("principal", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("response_body", sa.JSON()),
        _ts("created_at"),
    )


def m0002_full_text_search(op: Operations) -> None:
    """Keyword search: SQLite FTS5 (BM25) kept in step by triggers; PostgreSQL a GIN index."""
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_memory_content_fts ON memory "
            "USING gin (to_tsvector('english', content))"
        )
        return
    op.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5("
        "content, content='memory', content_rowid='rowid', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN "
        "INSERT INTO memory_fts(rowid, content) VALUES (new.rowid, new.content); END"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, content) "
        "VALUES ('delete', old.rowid, old.content); END"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_update AFTER UPDATE OF content ON memory BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, content) "
        "VALUES ('delete', old.rowid, old.content); "
        "INSERT INTO memory_fts(rowid, content) VALUES (new.rowid, new.content); END"
    )
    op.execute("INSERT INTO memory_fts(memory_fts) VALUES ('rebuild')")


def m0003_namespace_audit(op: Operations) -> None:
    """The append-only trail of non-owner access to namespaces, paged newest first by id."""
    op.create_table(
        "namespace_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("namespace_id", sa.String(40), nullable=False),
        sa.Column("agent_id", sa.String(40)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("memory_count", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(128)),
        _ts("created_at"),
    )
    op.create_index("ix_namespace_audit_namespace_id", "namespace_audit", ["namespace_id", "id"])


def m0004_summaries(op: Operations) -> None:
    """Summaries: their level and time span, provenance links, runs, and single-holder leases."""
    op.add_column("memory", sa.Column("level", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("memory", _ts("covers_from", nullable=True))
    op.add_column("memory", _ts("covers_to", nullable=True))
    op.create_table(
        "memory_link",
        sa.Column("summary_id", sa.String(40), primary_key=True),
        sa.Column("source_id", sa.String(40), primary_key=True),
    )
    op.create_index("ix_memory_link_source_id", "memory_link", ["source_id"])
    op.create_table(
        "summary_run",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("namespace_id", sa.String(40)),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("groups", sa.Integer(), nullable=False),
        sa.Column("sources", sa.Integer(), nullable=False),
        sa.Column("tokens_before", sa.Integer(), nullable=False),
        sa.Column("tokens_after", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("triggered_by", sa.String(40)),
    )
    op.create_index("ix_summary_run_namespace_id", "summary_run", ["namespace_id"])
    op.create_table(
        "job_lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        _ts("expires_at"),
    )


def m0005_events(op: Operations) -> None:
    """The event log: what happened to memories and grants, read in id order by syncing agents."""
    op.create_table(
        "memory_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("namespace_id", sa.String(40), nullable=False),
        sa.Column("memory_id", sa.String(40)),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("agent_id", sa.String(40)),
        sa.Column("key_id", sa.String(40)),
        sa.Column("details", sa.JSON(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_memory_event_namespace_id", "memory_event", ["namespace_id", "id"])


def m0006_namespaced_full_text(op: Operations) -> None:
    """SQLite: the full-text index also indexes each memory's namespace, so a keyword query is
    answered within the namespaces asked for instead of across every namespace and then filtered
    (12 ms -> well under 1 ms at 100k memories in 100 namespaces). PostgreSQL: nothing to do."""
    if op.get_context().dialect.name == "postgresql":
        return
    for trigger in ("memory_fts_insert", "memory_fts_delete", "memory_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS memory_fts")
    op.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5(content, namespace_id, "
        "content='memory', content_rowid='rowid', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN "
        "INSERT INTO memory_fts(rowid, content, namespace_id) "
        "VALUES (new.rowid, new.content, new.namespace_id); END"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, content, namespace_id) "
        "VALUES ('delete', old.rowid, old.content, old.namespace_id); END"
    )
    op.execute(
        "CREATE TRIGGER memory_fts_update AFTER UPDATE OF content, namespace_id ON memory BEGIN "
        "INSERT INTO memory_fts(memory_fts, rowid, content, namespace_id) "
        "VALUES ('delete', old.rowid, old.content, old.namespace_id); "
        "INSERT INTO memory_fts(rowid, content, namespace_id) "
        "VALUES (new.rowid, new.content, new.namespace_id); END"
    )
    op.execute("INSERT INTO memory_fts(memory_fts) VALUES ('rebuild')")


def m0007_memory_embeddings(op: Operations) -> None:
    """Each memory's embedding in SQL, under the model that made it (`stored_embeddings.py`)."""
    op.create_table(
        "memory_embedding",
        sa.Column(
            "memory_id",
            sa.String(40),
            sa.ForeignKey("memory.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def m0008_stored_search_vector(op: Operations) -> None:
    """PostgreSQL: each memory's `tsvector` is stored (a generated column, kept by the database on
    every write) and indexed, instead of an index on the expression. A keyword query reads the
    scope's rows through the namespace index and tests each: with the expression, every row's
    `to_tsvector` was computed at query time, 7.6 ms for a namespace of 1,000 memories; the
    ranking computed it again for every match. SQLite: nothing to do (FTS5 stores its index)."""
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE memory ADD COLUMN content_tsv tsvector "
        "GENERATED ALWAYS AS (to_tsvector('english', content)) STORED"
    )
    op.execute("CREATE INDEX ix_memory_content_tsv ON memory USING gin (content_tsv)")
    op.execute("DROP INDEX IF EXISTS ix_memory_content_fts")


def m0009_thread_and_fact_indexes(op: Operations) -> None:
    """The two tiers a context call reads before ranking, each by an index that holds exactly its
    rows in order: a thread's messages newest first, and a user's keyed facts and preferences
    (a partial index) by importance. Before, a thread was found among every memory of the
    namespace, and a user's facts among all of that user's memories: both grew with the
    namespace, not with what they return."""
    op.create_index("ix_memory_thread", "memory", ["namespace_id", "thread_id", "created_at", "id"])
    op.create_index(
        "ix_memory_user_facts",
        "memory",
        ["namespace_id", "user_id", "importance", "updated_at"],
        sqlite_where=sa.text("key IS NOT NULL OR kind = 'preference'"),
        postgresql_where=sa.text("key IS NOT NULL OR kind = 'preference'"),
    )


def m0010_namespace_tagged_full_text(op: Operations) -> None:
    """SQLite: the full-text index holds each memory's words tagged with its namespace
    (`full_text.py`), so a keyword query reads and weighs one namespace's word lists instead of
    the whole table's: at 100k memories in 100 namespaces, 3.8 ms -> 1.2 ms per query. The index
    is contentless (it keeps no copy of the text) and its triggers compute the tagged words with
    the SQL function `full_text.SQL_FUNCTION`, which every connection of `db.py` has.
    PostgreSQL: nothing to do (`ts_rank_cd` reads no table-wide statistics)."""
    if op.get_context().dialect.name == "postgresql":
        return
    for trigger in ("memory_fts_insert", "memory_fts_delete", "memory_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS memory_fts")
    op.execute(
        "CREATE VIRTUAL TABLE memory_fts USING fts5(terms, content='', tokenize='porter unicode61')"
    )
    terms = f"{full_text.SQL_FUNCTION}(%(row)s.namespace_id, %(row)s.content)"
    insert = f"INSERT INTO memory_fts(rowid, terms) VALUES (new.rowid, {terms % {'row': 'new'}});"
    delete = (
        "INSERT INTO memory_fts(memory_fts, rowid, terms) "
        f"VALUES ('delete', old.rowid, {terms % {'row': 'old'}});"
    )
    op.execute(f"CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN {delete} END")
    op.execute(
        "CREATE TRIGGER memory_fts_update AFTER UPDATE OF content, namespace_id ON memory "
        f"BEGIN {delete} {insert} END"
    )
    op.execute(
        "INSERT INTO memory_fts(rowid, terms) "
        f"SELECT rowid, {terms % {'row': 'memory'}} FROM memory"
    )


def m0011_idempotency_claim_token(op: Operations) -> None:
    """The token of the request that holds a pending Idempotency-Key: its response is stored in
    its write's own transaction only while it still holds the key (services/idempotency.py)."""
    op.add_column("idempotency_record", sa.Column("claim_token", sa.String(32), nullable=True))


def m0012_tasks(op: Operations) -> None:
    """Tasks: what an agent is doing, beside what it knows. `context` and `result` are JSON (JSONB
    on PostgreSQL). The partial unique index holds the TODO rule in the database: at most one task
    `in_progress` per namespace, agent and thread (no thread counts as one lane), so of two
    concurrent starts exactly one commits. Events name the task they are about in `task_id`."""
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "task",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("namespace_id", sa.String(40), sa.ForeignKey("namespace.id"), nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("author_agent_id", sa.String(40)),
        sa.Column("user_id", sa.String(128)),
        sa.Column("thread_id", sa.String(128)),
        sa.Column("parent_task_id", sa.String(40), sa.ForeignKey("task.id")),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("context", json_type, nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", json_type),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_task_scope", "task", ["namespace_id", "agent_id", "thread_id", "status"])
    op.create_index("ix_task_listing", "task", ["namespace_id", "created_at", "id"])
    op.create_index("ix_task_parent_task_id", "task", ["parent_task_id"])
    in_progress = sa.text("status = 'in_progress'")
    op.create_index(
        "uq_task_in_progress",
        "task",
        ["namespace_id", "agent_id", sa.text("coalesce(thread_id, '')")],
        unique=True,
        sqlite_where=in_progress,
        postgresql_where=in_progress,
    )
    op.add_column("memory_event", sa.Column("task_id", sa.String(40), nullable=True))


MIGRATIONS: list[Migration] = [
    m0001_initial,
    m0002_full_text_search,
    m0003_namespace_audit,
    m0004_summaries,
    m0005_events,
    m0006_namespaced_full_text,
    m0007_memory_embeddings,
    m0008_stored_search_vector,
    m0009_thread_and_fact_indexes,
    m0010_namespace_tagged_full_text,
    m0011_idempotency_claim_token,
    m0012_tasks,
]

_migration_table = sa.Table(
    "schema_migration",
    sa.MetaData(),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)


def applied_versions(connection: Connection) -> set[int]:
    _migration_table.create(connection, checkfirst=True)
    return {row[0] for row in connection.execute(sa.select(_migration_table.c.version))}


def migrate(engine: Engine) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the names applied."""
    applied: list[str] = []
    for version, migration in enumerate(MIGRATIONS, start=1):
        with engine.begin() as connection:
            _lock_for_migration(connection)
            if version in applied_versions(connection):
                continue
            migration(Operations(MigrationContext.configure(connection)))
            connection.execute(
                _migration_table.insert().values(
                    version=version, name=migration.__name__, applied_at=datetime.now(UTC)
                )
            )
            applied.append(migration.__name__)
            log.info("applied migration %s", migration.__name__)
    return applied


def _lock_for_migration(connection: Connection) -> None:
    """Serialise concurrent migrators: two server processes starting at once on one database."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(724521901)"))
