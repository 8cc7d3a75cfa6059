"""Keeping the vector index in step with SQL: what a memory looks like in the index, and repair."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from .. import metrics
from ..db import Database
from ..embeddings import Embedder
from ..models import Memory
from ..vectors import Scalar, VectorRecord, VectorStore

log = logging.getLogger(__name__)

REINDEX_BATCH = 256


def vector_metadata(memory: Memory) -> dict[str, Scalar]:
    """The scalar fields the index filters on; everything else stays in SQL."""
    metadata: dict[str, Scalar] = {
        "namespace_id": memory.namespace_id,
        "kind": memory.kind,
        "status": memory.status,
        "version": memory.version,
        "created_at": memory.created_at.timestamp(),
    }
    if memory.user_id is not None:
        metadata["user_id"] = memory.user_id
    if memory.thread_id is not None:
        metadata["thread_id"] = memory.thread_id
    return metadata


def vector_record(memory: Memory, embedding: list[float]) -> VectorRecord:
    return VectorRecord(id=memory.id, embedding=embedding, metadata=vector_metadata(memory))


@dataclass(frozen=True)
class ReconcileReport:
    rebuilt: bool
    sql_count: int
    index_count: int
    added: int
    refreshed: int
    removed: int

    @property
    def repaired(self) -> int:
        return self.added + self.refreshed + self.removed


class IndexService:
    """Compares SQL with the vector index and repairs the index; SQL always wins."""

    def __init__(self, db: Database, vectors: VectorStore, embedder: Embedder):
        self._db = db
        self._vectors = vectors
        self._embedder = embedder

    def reconcile(self) -> ReconcileReport:
        """Re-embed what the index lacks or holds at an old version; drop what SQL no longer has."""
        if self._vectors.embedding_model() != self._embedder.name:
            return self.rebuild()
        with self._db.read() as session:
            sql_versions = dict(session.exec(select(Memory.id, Memory.version)).all())
        index_versions = dict(self._vectors.versions())
        missing = [i for i in sql_versions if i not in index_versions]
        stale = [
            i for i, v in sql_versions.items() if i in index_versions and index_versions[i] != v
        ]
        orphans = [i for i in index_versions if i not in sql_versions]
        self._reembed(missing + stale)
        self._vectors.delete(orphans)
        report = ReconcileReport(
            rebuilt=False,
            sql_count=len(sql_versions),
            index_count=len(index_versions),
            added=len(missing),
            refreshed=len(stale),
            removed=len(orphans),
        )
        metrics.record_reconcile(len(missing), len(stale), len(orphans))
        if report.repaired:
            log.warning("vector index was out of step with SQL; repaired: %s", report)
        return report

    def rebuild(self) -> ReconcileReport:
        """Drop the index and embed every memory in SQL again."""
        log.warning("rebuilding the vector index for model %s", self._embedder.name)
        self._vectors.reset(self._embedder.name)
        with self._db.read() as session:
            ids = list(session.exec(select(Memory.id)).all())
        self._reembed(ids)
        metrics.record_reconcile(missing=0, stale=len(ids), orphaned=0)
        return ReconcileReport(
            rebuilt=True,
            sql_count=len(ids),
            index_count=0,
            added=len(ids),
            refreshed=0,
            removed=0,
        )

    def _reembed(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), REINDEX_BATCH):
            chunk = ids[start : start + REINDEX_BATCH]
            with self._db.read() as session:
                memories = session.exec(select(Memory).where(col(Memory.id).in_(chunk))).all()
            embeddings = self._embedder.embed([m.content for m in memories])
            self._vectors.upsert(
                [vector_record(m, e) for m, e in zip(memories, embeddings, strict=True)]
            )
