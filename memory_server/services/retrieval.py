"""Candidate generation for search and context: dense neighbours and keyword matches, in scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlmodel import col, select

from .. import metrics
from ..db import Database
from ..embeddings import QueryEmbedder
from ..errors import StoreUnavailable
from ..filters import memory_conditions, vector_where
from ..keyword import keyword_search
from ..models import Memory
from ..ranking import Candidate
from ..schemas import MemoryFilters, MemoryStatus
from ..vectors import VectorStore


@dataclass(frozen=True)
class Retrieved:
    candidates: list[Candidate]
    query_embedding: list[float]


class Retriever:
    """Finds what might be relevant; `ranking.rank` decides what is."""

    def __init__(self, db: Database, vectors: VectorStore, queries: QueryEmbedder):
        self._db = db
        self._vectors = vectors
        self._queries = queries

    def retrieve(
        self,
        query: str,
        namespace_ids: Sequence[str],
        filters: MemoryFilters,
        statuses: Sequence[MemoryStatus],
        pool: int,
    ) -> Retrieved:
        """Up to `pool` dense and `pool` keyword candidates (merged), each checked against SQL."""
        embedding = self._queries.embed(query)
        metrics.lap("embedding")
        dense_pool = pool * 4 if filters.tags else pool  # tags are only checked in SQL
        try:
            hits = self._vectors.query(
                embedding,
                dense_pool,
                vector_where(namespace_ids, filters, statuses),
                with_embeddings=True,
            )
        except Exception as exc:
            raise StoreUnavailable("The vector index is unavailable; retry later.") from exc
        metrics.lap("vector_query")
        conditions = memory_conditions(namespace_ids, filters, statuses)
        with self._db.read() as session:
            keyword = dict(keyword_search(session, query, conditions, pool))
            wanted = list(dict.fromkeys([hit.id for hit in hits] + list(keyword)))
            rows = session.exec(select(Memory).where(col(Memory.id).in_(wanted), *conditions)).all()
        metrics.lap("sql")
        by_hit = {hit.id: hit for hit in hits}
        missing = [m.id for m in rows if m.id not in by_hit]
        extra = self._vectors.embeddings(missing) if missing else {}
        metrics.lap("vector_query")
        query_vector = np.asarray(embedding)
        candidates = []
        for memory in rows:
            hit = by_hit.get(memory.id)
            vector = hit.embedding if hit is not None else extra.get(memory.id)
            if hit is not None:
                dense = hit.similarity
            elif vector is not None:
                dense = float(np.dot(query_vector, np.asarray(vector)))
            else:
                dense = 0.0
            candidates.append(
                Candidate(
                    memory=memory,
                    embedding=vector,
                    dense=dense,
                    keyword_raw=keyword.get(memory.id, 0.0),
                )
            )
        return Retrieved(candidates=candidates, query_embedding=embedding)
