"""Search over the memories the caller may read, with the same hybrid ranking as context."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..ranking import Ranked
from ..schemas import ScoreComponents, SearchHit, SearchRequest, SearchResponse
from .deps import AuditDep, PrincipalDep, RuntimeDep, error_responses, json_response, run_read
from .memories import memory_public

router = APIRouter(prefix="/v1", tags=["search"], responses=error_responses(404, 503))


def search_hit(ranked: Ranked) -> SearchHit:
    return SearchHit(
        memory=memory_public(ranked.memory),
        similarity=ranked.components.dense,
        score=ranked.score,
        components=ScoreComponents(**ranked.components.as_dict()),
    )


@router.post("/search", response_model=SearchResponse)
async def search(
    body: SearchRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> Response:
    """The `k` best memories for `query` within the filters: dense + keyword + recency + ..."""
    # embedded while this call reads SQL; the call is at work until it answers
    with runtime.queries.embedding(body.query) as query_embedding:

        def work() -> Response:
            ranked = runtime.search.search(principal, body, query_embedding)
            audit.read("search", [r.memory.namespace_id for r in ranked])
            return json_response(
                SearchResponse(query=body.query, results=[search_hit(r) for r in ranked])
            )

        return await run_read(request, work)
