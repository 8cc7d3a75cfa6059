"""Search: the hybrid ranking over the caller's readable scope, top `k`."""

from __future__ import annotations

from concurrent.futures import Future

from .. import metrics
from ..access import scope_namespace_ids
from ..auth import Principal
from ..db import Database
from ..models import utcnow
from ..ranking import Ranked, for_query, rank
from ..schemas import MemoryStatus, SearchRequest
from .retrieval import Retriever
from .usage import AccessRecorder


def requested_statuses(
    statuses: list[MemoryStatus] | None, include_archived: bool
) -> list[MemoryStatus]:
    """Active only, unless archived ones are asked for or statuses are named."""
    if statuses:
        return statuses
    if include_archived:
        return [MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED]
    return [MemoryStatus.ACTIVE]


class SearchService:
    def __init__(self, db: Database, retriever: Retriever, recorder: AccessRecorder):
        self._db = db
        self._retriever = retriever
        self._recorder = recorder

    def search(
        self,
        principal: Principal,
        request: SearchRequest,
        query_embedding: Future[list[float]] | None = None,
    ) -> list[Ranked]:
        """The `k` best memories for the query within scope and filters, best first.
        `query_embedding`: the query's embedding, if the caller already asked for it."""
        metrics.begin("search")
        if query_embedding is None:
            query_embedding = self._retriever.embed_soon(request.query)  # while SQL runs
        with self._db.snapshot() as session:
            namespace_ids = scope_namespace_ids(session, principal, request.namespace_ids)
            metrics.lap("sql")
            if not namespace_ids:
                return []
            statuses = requested_statuses(request.statuses, request.include_archived)
            pool = max(request.k * 3, 30)
            retrieved = self._retriever.retrieve(
                session,
                request.query,
                namespace_ids,
                request,
                statuses,
                pool,
                query_embedding=query_embedding,
            )
        candidates = retrieved.candidates
        if request.min_similarity is not None:
            candidates = [c for c in candidates if c.dense >= request.min_similarity]
        ranked, _ = rank(
            candidates, for_query(request.query, request.ranking), utcnow(), limit=request.k
        )
        metrics.lap("ranking")
        self._recorder.record(r.memory.id for r in ranked)
        return ranked
