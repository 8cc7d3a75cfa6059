"""Context under a token budget: the call an agent makes before every LLM turn."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..schemas import ContextRequest, ContextResponse
from .deps import AuditDep, PrincipalDep, RuntimeDep, error_responses, json_response, run_read

router = APIRouter(prefix="/v1", tags=["context"], responses=error_responses(404, 503))


@router.post("/context", response_model=ContextResponse)
async def build_context(
    body: ContextRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> Response:
    """What to know for `query` in at most `budget_tokens` tokens of `model`, with scores and
    what was left out and why."""
    # embedded while this call reads SQL; the call is at work until it answers
    with runtime.queries.embedding(body.query) as query_embedding:

        def work() -> Response:
            response = runtime.context.build(principal, body, query_embedding)
            audit.read("context", [item.namespace_id for item in response.items])
            return json_response(response)

        return await run_read(request, work)
