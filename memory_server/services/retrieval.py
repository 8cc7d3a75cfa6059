"""Candidate generation for search and context: dense neighbours and keyword matches, in scope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
from sqlmodel import Session

from .. import metrics
from ..embeddings import QueryEmbedder
from ..errors import StoreUnavailable
from ..filters import Scope, vector_where
from ..keyword import keyword_matches
from ..ranking import Candidate
from ..records import MemoryRecord
from ..schemas import MemoryFilters, MemoryStatus
from ..stored_embeddings import memories_in_scope, stored_vectors
from ..vectors import VectorHit, VectorStore, Where


@dataclass(frozen=True)
class Retrieved:
    candidates: list[Candidate]
    query_embedding: list[float]


class Retriever:
    """Finds what might be relevant; `ranking.rank` decides what is."""

    def __init__(self, vectors: VectorStore, queries: QueryEmbedder, embedding_model: str):
        self._vectors = vectors
        self._queries = queries
        self._embedding_model = embedding_model  # whose stored vectors ranking may use

    def embed_soon(self, query: str) -> Future[list[float]]:
        """Start embedding `query`; hand the future to `retrieve` after other work. The forward
        pass runs without the GIL, so a request's SQL proceeds meanwhile."""
        return self._queries.submit(query)

    def retrieve(
        self,
        session: Session,
        query: str,
        namespace_ids: Sequence[str],
        filters: MemoryFilters,
        statuses: Sequence[MemoryStatus],
        pool: int,
        *,
        query_embedding: Future[list[float]] | None = None,
        summarized: bool = False,
    ) -> Retrieved:
        """Up to `pool` dense and `pool` keyword candidates (merged), each checked against SQL
        in `session` (the caller's read, which every tier of a context shares). With
        `summarized`, the archived sources of summaries in scope are candidates like any
        memory (`Scope.of`), found by their own relevance.

        The keyword search, and the reading of its matches' rows, run while the query is
        embedded. The index is then asked for twice the dense pool with no filter at all (a
        metadata filter costs Chroma far more than the search) and SQL decides what is in scope.
        Only when most neighbours turn out to be out of scope (archived, another user, a kind
        filter...) is the index asked again with the filter.
        """
        pending = query_embedding or self._queries.submit(query)
        dense_pool = pool * 4 if filters.tags else pool  # tags are only checked in SQL
        scope = Scope.of(namespace_ids, filters, statuses, summarized=summarized)
        in_memory = self._vectors.vectors_in_memory(namespace_ids)
        # keyword matches met the scope in their query: their rows need no other check
        matches = keyword_matches(session, query, scope, pool)
        keyword = {memory.id: score for memory, score in matches}
        rows = [memory for memory, _ in matches]
        stored = self._vectors_of(session, [memory.id for memory in rows], in_memory)
        metrics.lap("sql")
        embedding = pending.result()
        metrics.lap("embedding")
        hits = self._nearest(embedding, 2 * dense_pool, namespace_ids)
        metrics.lap("vector_query")
        dense_hits, more_rows, more_stored = self._hits_in_scope(
            session, hits, dense_pool, keyword, scope, in_memory
        )
        if len(dense_hits) < dense_pool and len(hits) == 2 * dense_pool:
            # the index cannot tell a summary's source: it is asked for every archived memory
            wanted = [*statuses, MemoryStatus.ARCHIVED] if summarized else statuses
            where = vector_where(filters, wanted)
            hits = self._nearest(embedding, dense_pool, namespace_ids, where)
            dense_hits, more_rows, more_stored = self._hits_in_scope(
                session, hits, dense_pool, keyword, scope, in_memory
            )
        by_hit = {hit.id: hit for hit in dense_hits}
        metrics.lap("sql")
        candidates = self._candidates(
            [*rows, *more_rows], stored | more_stored, embedding, keyword, by_hit
        )
        return Retrieved(candidates=candidates, query_embedding=embedding)

    def _hits_in_scope(
        self,
        session: Session,
        hits: Sequence[VectorHit],
        pool: int,
        keyword: dict[str, float],
        scope: Scope,
        in_memory: Mapping[str, np.ndarray] | None,
    ) -> tuple[list[VectorHit], list[MemoryRecord], dict[str, np.ndarray]]:
        """The nearest `pool` of `hits` in `scope`, with the rows and vectors of
        those not among the `keyword` matches (whose rows were read, in scope, already).

        Reading the rows is the scope check: the nearest `pool` hits are read with the scope's
        conditions in one query, and the farther ones only when some of those were out of scope."""
        chosen: list[VectorHit] = []
        rows: list[MemoryRecord] = []
        stored: dict[str, np.ndarray] = {}
        for batch in (hits[:pool], hits[pool:]):
            wanted = pool - len(chosen)
            if wanted <= 0 or not batch:
                break
            unread = [hit.id for hit in batch if hit.id not in keyword]
            found, vectors = (
                memories_in_scope(session, unread, scope, self._embedding_model, in_memory)
                if unread
                else ([], {})
            )
            in_scope = {memory.id for memory in found}
            taken = [hit for hit in batch if hit.id in keyword or hit.id in in_scope][:wanted]
            kept = {hit.id for hit in taken}
            chosen += taken
            rows += [memory for memory in found if memory.id in kept]
            stored |= {id_: vector for id_, vector in vectors.items() if id_ in kept}
        return chosen, rows, stored

    def _vectors_of(
        self, session: Session, ids: Sequence[str], in_memory: Mapping[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        """The vectors of `ids`: from memory when the process holds them, else from SQL."""
        if in_memory is not None:
            return {id_: in_memory[id_] for id_ in ids if id_ in in_memory}
        return stored_vectors(session, ids, self._embedding_model)

    def _nearest(
        self,
        embedding: list[float],
        k: int,
        namespace_ids: Sequence[str],
        where: Where | None = None,
    ) -> list[VectorHit]:
        try:
            return self._vectors.query(embedding, k, namespace_ids, where)
        except Exception as exc:
            raise StoreUnavailable("The vector index is unavailable; retry later.") from exc

    def _candidates(
        self,
        rows: Sequence[MemoryRecord],
        stored: dict[str, np.ndarray],
        query_embedding: Sequence[float],
        keyword: dict[str, float],
        by_hit: dict[str, VectorHit],
    ) -> list[Candidate]:
        """Rows as candidates, with their vectors: from SQL, else (rows written before SQL kept
        them) from the index."""
        missing = [m.id for m in rows if m.id not in stored]
        namespaces = sorted({m.namespace_id for m in rows if m.id not in stored})
        try:
            extra = self._vectors.embeddings(missing, namespaces) if missing else {}
        except Exception as exc:
            raise StoreUnavailable("The vector index is unavailable; retry later.") from exc
        metrics.lap("vector_query")
        query_vector = np.asarray(query_embedding, dtype=np.float64)
        candidates = []
        for memory in rows:
            hit = by_hit.get(memory.id)
            vector = stored.get(memory.id)
            if vector is None and memory.id in extra:
                vector = np.asarray(extra[memory.id], dtype=np.float32)
            if hit is not None:
                dense = hit.similarity
            elif vector is not None:
                dense = float(np.dot(query_vector, vector.astype(np.float64)))
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
        return candidates
