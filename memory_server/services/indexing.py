"""Keeping the vector index in step with SQL: what a memory looks like in the index, and repair.

The reconciler compares every memory in SQL with its index record: present, at the same version,
with the same filter fields and the same content (a short content hash kept in the index). It runs
at startup and, with `MEMORY_RECONCILE_INTERVAL_MINUTES`, on a schedule, while other requests (and
other server processes) keep writing. A write puts its index records in place just before its SQL
transaction commits, so for a moment a live write looks like drift; the reconciler therefore looks
twice, a short settle time apart, and repairs only what is still out of step the second time.
One process at a time reconciles: they share a database lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select as select_columns
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from .. import metrics
from ..db import Database
from ..embeddings import Embedder
from ..models import Memory
from ..records import MemoryRecord
from ..stored_embeddings import memories_with_vectors, store_embeddings
from ..vectors import Scalar, VectorRecord, VectorStore
from .leases import Lease, holding

log = logging.getLogger(__name__)

REINDEX_BATCH = 256  # memories embedded per batch
WRITE_BATCH = 2000  # index records per metadata update or delete (under Chroma's batch limit)
LEASE_NAME = "reconciler"
LEASE_TTL = timedelta(seconds=60)
CONTENT_FIELD = "content"  # metadata key of the short content hash in the index


class Indexed(Protocol):
    """The columns of a memory that its index record carries (a Memory, or a row of them)."""

    @property
    def id(self) -> str: ...
    @property
    def namespace_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def thread_id(self) -> str | None: ...
    @property
    def content_hash(self) -> str: ...


INDEXED_COLUMNS = [
    col(column)
    for column in (
        Memory.id,
        Memory.namespace_id,
        Memory.kind,
        Memory.status,
        Memory.version,
        Memory.created_at,
        Memory.user_id,
        Memory.thread_id,
        Memory.content_hash,
    )
]


def vector_metadata(memory: Indexed) -> dict[str, Scalar]:
    """The scalar fields the index filters on, and a short hash of the content it embeds."""
    metadata: dict[str, Scalar] = {
        "namespace_id": memory.namespace_id,
        "kind": memory.kind,
        "status": memory.status,
        "version": memory.version,
        "created_at": memory.created_at.timestamp(),
        CONTENT_FIELD: memory.content_hash[:16],
    }
    if memory.user_id is not None:
        metadata["user_id"] = memory.user_id
    if memory.thread_id is not None:
        metadata["thread_id"] = memory.thread_id
    return metadata


def vector_record(memory: Indexed, embedding: list[float]) -> VectorRecord:
    return VectorRecord(id=memory.id, embedding=embedding, metadata=vector_metadata(memory))


@dataclass(frozen=True)
class ReconcileReport:
    rebuilt: bool
    sql_count: int
    index_count: int
    added: int  # in SQL, not in the index: embedded
    refreshed: int  # content changed (or unknown at an old version): embedded again
    removed: int  # in the index, not in SQL: deleted from the index
    relabeled: int = 0  # same content, other filter fields or version: metadata rewritten
    skipped: bool = False  # another process held the reconciler lease
    embedded: int = 0  # of those written to the index, run through the model (the rest: stored)

    @property
    def repaired(self) -> int:
        return self.added + self.refreshed + self.removed + self.relabeled


@dataclass
class _Drift:
    missing: list[str]
    stale: list[str]
    relabel: list[str]
    orphans: list[str]

    @property
    def ids(self) -> list[str]:
        return self.missing + self.stale + self.relabel + self.orphans


def _compare(
    expected: dict[str, dict[str, Scalar]], actual: dict[str, dict[str, Scalar]], ids: Iterable[str]
) -> _Drift:
    """What differs between SQL's view (`expected`) and the index (`actual`) among `ids`."""
    drift = _Drift([], [], [], [])
    for memory_id in ids:
        want, have = expected.get(memory_id), actual.get(memory_id)
        if want is None and have is None:
            continue
        if want is None:
            drift.orphans.append(memory_id)
        elif have is None:
            drift.missing.append(memory_id)
        elif want != have:
            content = have.get(CONTENT_FIELD)
            same_content = (
                content == want[CONTENT_FIELD]
                if content is not None
                else have.get("version") == want["version"]  # a record from before the hash
            )
            # metadata updates merge keys, so a record with keys SQL lacks is written anew
            relabel = same_content and have.keys() - {CONTENT_FIELD} <= want.keys()
            (drift.relabel if relabel else drift.stale).append(memory_id)
    return drift


class IndexService:
    """Compares SQL with the vector index and repairs the index; SQL always wins."""

    def __init__(
        self,
        db: Database,
        vectors: VectorStore,
        embedder: Embedder,
        *,
        settle_seconds: float = 2.0,
    ):
        self._db = db
        self._vectors = vectors
        self._embedder = embedder
        self._settle_seconds = settle_seconds
        self._lease = Lease(db, LEASE_NAME, ttl=LEASE_TTL)

    def reconcile_exclusive(self) -> ReconcileReport:
        """`reconcile` under the reconciler lease; skipped when another process holds it."""
        with holding(self._lease) as held:
            if not held:
                log.info("another process is reconciling the vector index; skipped")
                return ReconcileReport(False, 0, 0, 0, 0, 0, skipped=True)
            return self.reconcile()

    def reconcile_scheduled(self) -> None:
        """The periodic check (an apscheduler job): log what was repaired."""
        report = self.reconcile_exclusive()
        if not report.skipped and not report.repaired:
            log.debug("vector index in step with SQL (%d memories)", report.sql_count)

    def reconcile(self) -> ReconcileReport:
        """Embed what the index lacks or holds with other content, rewrite stale metadata, drop
        what SQL no longer has; rebuild the whole index when it was built by another model."""
        if self._vectors.embedding_model() != self._embedder.name:
            return self.rebuild()
        expected = self._expected(None)
        actual = dict(self._vectors.entries())
        sql_count, index_count = len(expected), len(actual)
        drift = _compare(expected, actual, expected.keys() | actual.keys())
        if drift.ids and self._settle_seconds > 0:
            # Writes in flight show as drift for a moment: look again at the suspects only.
            time.sleep(self._settle_seconds)
            ids = drift.ids
            drift = _compare(self._expected(ids), dict(self._vectors.entries(ids)), ids)
        embedded = self._reembed(drift.missing + drift.stale)
        self._relabel(drift.relabel)
        for start in range(0, len(drift.orphans), WRITE_BATCH):
            self._vectors.delete(drift.orphans[start : start + WRITE_BATCH])
        report = ReconcileReport(
            rebuilt=False,
            sql_count=sql_count,
            index_count=index_count,
            added=len(drift.missing),
            refreshed=len(drift.stale),
            removed=len(drift.orphans),
            relabeled=len(drift.relabel),
            embedded=embedded,
        )
        metrics.record_reconcile(
            len(drift.missing), len(drift.stale) + len(drift.relabel), len(drift.orphans)
        )
        if report.repaired:
            log.warning("vector index was out of step with SQL; repaired: %s", report)
        return report

    def rebuild(self) -> ReconcileReport:
        """Drop the index and fill it again from SQL: each memory's stored vector, or (for one
        without a vector from this model) its embedding now."""
        log.warning("rebuilding the vector index for model %s", self._embedder.name)
        self._vectors.reset(self._embedder.name)
        with self._db.read() as session:
            ids = list(session.exec(select(Memory.id)).all())
        embedded = self._reembed(ids)
        metrics.record_reconcile(missing=0, stale=len(ids), orphaned=0)
        return ReconcileReport(
            rebuilt=True,
            sql_count=len(ids),
            index_count=0,
            added=len(ids),
            refreshed=0,
            removed=0,
            embedded=embedded,
        )

    def _expected(self, ids: Sequence[str] | None) -> dict[str, dict[str, Scalar]]:
        """What the index should hold for every memory in SQL (or for those of `ids`)."""
        expected: dict[str, dict[str, Scalar]] = {}
        chunks = [None] if ids is None else [ids[i : i + 5000] for i in range(0, len(ids), 5000)]
        with self._db.read() as session:
            for chunk in chunks:
                query = select_columns(*INDEXED_COLUMNS)  # rows, not Memory objects: cheaper
                if chunk is not None:
                    query = query.where(col(Memory.id).in_(chunk))
                for row in session.execute(query):
                    expected[row.id] = vector_metadata(row)
        return expected

    def _reembed(self, ids: Sequence[str]) -> int:
        """Index `ids` again: from the vectors SQL keeps for this model, embedding only the
        memories without one (and keeping what it embeds). Returns how many were embedded."""
        model = self._embedder.name
        embedded = 0
        for start in range(0, len(ids), REINDEX_BATCH):
            chunk = ids[start : start + REINDEX_BATCH]
            with self._db.read() as session:
                memories, stored = memories_with_vectors(
                    session, [col(Memory.id).in_(chunk)], model
                )
            missing = [m for m in memories if m.id not in stored]
            vectors = self._embedder.embed([m.content for m in missing]) if missing else []
            fresh = [vector_record(m, e) for m, e in zip(missing, vectors, strict=True)]
            if fresh:
                self._keep(list(zip(missing, fresh, strict=True)), model)
                embedded += len(fresh)
            self._vectors.upsert(
                fresh
                + [vector_record(m, stored[m.id].tolist()) for m in memories if m.id in stored]
            )
        return embedded

    def _keep(self, embedded: Sequence[tuple[MemoryRecord, VectorRecord]], model: str) -> None:
        """Store vectors the reindex computed, for memories still there with the content that was
        embedded (their rows locked meanwhile, so a concurrent update's own vector is never
        overwritten); a failure only costs a later rebuild an embedding."""
        try:
            with self._db.write() as session:
                ids = [memory.id for memory, _ in embedded]
                current = dict(
                    session.exec(
                        select(Memory.id, Memory.content_hash)
                        .where(col(Memory.id).in_(ids))
                        .with_for_update()
                    ).all()
                )
                unchanged = [r for m, r in embedded if current.get(m.id) == m.content_hash]
                store_embeddings(session, unchanged, model)
        except SQLAlchemyError:
            log.warning("could not keep %d embeddings in SQL", len(embedded), exc_info=True)

    def _relabel(self, ids: Sequence[str]) -> None:
        items = list(self._expected(ids).items())
        for start in range(0, len(items), WRITE_BATCH):
            self._vectors.update_metadata(items[start : start + WRITE_BATCH])
