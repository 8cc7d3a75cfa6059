"""Cost of the two context tiers read before ranking, against the size of the namespace.

    python -m bench.tiers [--memories 100000] [--users 20] [--calls 200] [--postgres URL]

One namespace of N memories (threads of 50 messages among `--users` users, every 50th memory a
keyed fact of user-0's), written straight into SQL (the tiers read no vectors). Times a thread's
recent messages and user-0's facts as `ContextService` reads them, with migration m0009's indexes
and with them dropped (the plans before it), in-process. SQLite by default; `--postgres` for a
database of its own there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from memory_server.config import Settings
from memory_server.db import Database
from memory_server.migrations import migrate
from memory_server.models import Memory, utcnow
from memory_server.schemas import AgentCreate, ContextRequest
from memory_server.services.agents import AgentService
from memory_server.services.context import ContextService

THREAD_LENGTH = 50
INDEXES = ("ix_memory_thread", "ix_memory_user_facts")


def fill(db: Database, memories: int, users: int) -> str:
    """One namespace of `memories` rows, its threads among `users` users and its keyed facts
    all user-0's; returns its id."""
    namespace = AgentService(db).create_agent(AgentCreate(name="tiers")).default_namespace_id
    assert namespace is not None
    now = utcnow()
    table = Memory.__table__  # type: ignore[attr-defined]
    rows = []
    for i in range(memories):
        at = now - timedelta(seconds=memories - i)
        fact = i % 50 == 0
        rows.append(
            {
                "id": f"mem_{i:08d}",
                "namespace_id": namespace,
                "user_id": "user-0" if fact else f"user-{i // THREAD_LENGTH % users}",
                "thread_id": None if fact else f"thread-{i // THREAD_LENGTH}",
                "kind": "fact" if fact else "message",
                "role": None if fact else "user",
                "key": f"fact-{i}" if fact else None,
                "content": f"Memory number {i} of the bench",
                "meta": {},
                "tags": [],
                "importance": (i % 10) / 10,
                "created_at": at,
                "updated_at": at,
                "access_count": 0,
                "token_count": 8,
                "content_hash": f"{i:064d}",
                "version": 1,
                "status": "active",
                "level": 0,
            }
        )
    with db.engine.begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(
                sa.insert(table), [_column_names(r) for r in rows[start : start + 5000]]
            )
    return namespace


def _column_names(row: dict[str, object]) -> dict[str, object]:
    return {("metadata" if k == "meta" else k): v for k, v in row.items()}


def timed(call: Callable[[], object], calls: int) -> float:
    """Median milliseconds of `call`."""
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(db: Database, settings: Settings, namespace: str, calls: int) -> dict[str, float]:
    service = ContextService(db, None, None, settings)  # type: ignore[arg-type]  # tiers only
    request = ContextRequest(query="q", budget_tokens=512, user_id="user-0", thread_id="thread-7")
    with db.read() as session:
        return {
            "thread": timed(lambda: service._recent_thread(session, [namespace], request), calls),
            "facts": timed(lambda: service._user_facts(session, [namespace], request), calls),
        }


def run(memories: int, users: int, calls: int, postgres: str | None) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory), database_url=postgres)
        db = Database(settings.resolved_database_url)
        try:
            migrate(db.engine)
            namespace = fill(db, memories, users)
            with db.engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
            indexed = measure(db, settings, namespace, calls)
            with db.engine.begin() as connection:
                for index in INDEXES:
                    connection.exec_driver_sql(f"DROP INDEX {index}")
                connection.exec_driver_sql("ANALYZE")
            before = measure(db, settings, namespace, calls)
        finally:
            db.dispose()
    return {"with the m0009 indexes": indexed, "without them": before}


def report(results: dict[str, dict[str, float]], memories: int, users: int, engine: str) -> str:
    lines = [
        f"One namespace of {memories:,} memories on {engine} (threads of {THREAD_LENGTH} "
        f"messages among {users} users, every 50th memory one user's keyed fact); median ms "
        "per read, in-process.",
        "",
        "| indexes | thread tier (20 newest messages) | facts tier (up to 100) |",
        "| --- | --- | --- |",
    ]
    for name, times in results.items():
        lines.append(f"| {name} | {times['thread']:.3f} | {times['facts']:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20, help="whose threads fill the namespace")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="a database URL to fill (it is changed)")
    args = parser.parse_args(argv)
    results = run(args.memories, args.users, args.calls, args.postgres)
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(report(results, args.memories, args.users, engine))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
