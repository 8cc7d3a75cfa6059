"""SQLite's query-planner statistics (`ANALYZE`), kept in step with the size of the memory table.

Without statistics SQLite guesses how many rows each index condition matches, and for the read
that checks a call's neighbours (`id IN (<40 ids>) AND namespace_id IN (...) AND status IN
(...)`) it guesses wrong: it takes the namespace index and reads every memory of the namespace,
where 40 primary-key lookups would do. On bench.latency's store (namespaces of 1,000 memories) the
read took 1.6 ms in-process, 1.1 ms with statistics. PostgreSQL keeps its own statistics
(autovacuum); this is SQLite's part.

The statistics are refreshed when the memory table holds at least `MIN_ROWS` (below that every
plan is fast and the planner's defaults serve) and has no statistics yet, or has grown or shrunk
`REFRESH_FACTOR` times since they were taken. `PRAGMA analysis_limit` samples each index, so an
`ANALYZE` costs milliseconds whatever the size (7 ms at 100,000 memories).

A connection loads the statistics when it opens: after an `ANALYZE` the pool is emptied, so that
the connections opened next plan with them (one in use finishes on the old plans, then closes).
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from .db import Database

log = logging.getLogger(__name__)

MIN_ROWS = 1_000
REFRESH_FACTOR = 4.0  # the sampled row counts in sqlite_stat1 are estimates: a coarse trigger
ANALYSIS_LIMIT = 1_000  # rows sampled per index (SQLite suggests a few hundred for `optimize`)


def refresh_statistics(db: Database, *, min_rows: int = MIN_ROWS) -> bool:
    """Take the planner's statistics on SQLite if the memory table's size calls for it (see
    the module's docstring); whether they were taken. A no-op on PostgreSQL."""
    if not db.is_sqlite:
        return False
    with db.read() as session:
        connection = session.connection()
        rows = int(connection.exec_driver_sql("SELECT count(*) FROM memory").scalar_one())
        analyzed = analyzed_rows(connection)
    if rows < min_rows:
        return False
    if analyzed and 1 / REFRESH_FACTOR <= rows / analyzed <= REFRESH_FACTOR:
        return False
    with db.write() as session:
        connection = session.connection()
        connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        connection.exec_driver_sql("ANALYZE")
    db.engine.dispose()  # the next connections load the new statistics
    log.info("query-planner statistics taken at %d memories (were at %s)", rows, analyzed)
    return True


def try_refresh_statistics(db: Database) -> bool:
    """`refresh_statistics` for the server's start and schedule: a failure (the database busy
    beyond its timeout, say) is logged and not raised, since statistics only make plans better."""
    try:
        return refresh_statistics(db)
    except SQLAlchemyError:
        log.warning("could not take the query-planner statistics", exc_info=True)
        return False


def analyzed_rows(connection: Connection) -> int | None:
    """The memory table's row count as its statistics estimate it; None without statistics."""
    has_table = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
    ).first()
    if has_table is None:
        return None
    stats = connection.exec_driver_sql(
        "SELECT stat FROM sqlite_stat1 WHERE tbl = 'memory'"
    ).scalars()
    counts = [int(str(stat).split()[0]) for stat in stats]
    return max(counts) if counts else None
