"""Context under a token budget: the call an agent makes before every LLM turn."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from ..schemas import ContextRequest, ContextResponse
from .deps import AuditDep, PrincipalDep, RuntimeDep, error_responses, json_response

router = APIRouter(prefix="/v1", tags=["context"], responses=error_responses(404, 503))


@router.post("/context", response_model=ContextResponse)
def build_context(
    body: ContextRequest, runtime: RuntimeDep, principal: PrincipalDep, audit: AuditDep
) -> Response:
    """What to know for `query` in at most `budget_tokens` tokens of `model`, with scores and
    what was left out and why."""
    response = runtime.context.build(principal, body)
    audit.read("context", [item.namespace_id for item in response.items])
    return json_response(response)
