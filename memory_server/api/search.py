"""Semantic search over the memories the caller may read."""

from __future__ import annotations

from fastapi import APIRouter

from ..schemas import SearchHit, SearchRequest, SearchResponse
from .deps import PrincipalDep, RuntimeDep
from .memories import memory_public

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse)
def search(body: SearchRequest, runtime: RuntimeDep, principal: PrincipalDep) -> SearchResponse:
    """The `k` memories most similar to `query`, within the filters, best first."""
    hits = runtime.memories.search(principal, body)
    return SearchResponse(
        query=body.query,
        results=[SearchHit(memory=memory_public(h.memory), similarity=h.similarity) for h in hits],
    )
