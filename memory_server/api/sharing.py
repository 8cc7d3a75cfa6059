"""Sharing a namespace: its owner's grants to other agents, and the trail of their access."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ..models import Grant, NamespaceAudit
from ..schemas import (
    AuditEventPublic,
    AuditEventsPublic,
    GrantCreate,
    GrantPublic,
    GrantsPublic,
)
from .deps import IdempotencyKey, PrincipalDep, RuntimeDep, error_responses, respond_once

router = APIRouter(prefix="/v1/namespaces", tags=["sharing"], responses=error_responses(404, 409))


def grant_public(grant: Grant) -> GrantPublic:
    return GrantPublic.model_validate(grant, from_attributes=True)


def _event(event: NamespaceAudit) -> AuditEventPublic:
    return AuditEventPublic.model_validate(event, from_attributes=True)


@router.post(
    "/{namespace_id}/grants",
    status_code=201,
    response_model=GrantPublic,
    responses={200: {"model": GrantPublic, "description": "The agent's grant was updated"}},
)
def create_grant(
    namespace_id: str,
    body: GrantCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Share a namespace with an agent (owner or admin): 201 new; 200 its permission changed."""

    def work() -> tuple[int, GrantPublic]:
        grant, created = runtime.sharing.grant(principal, namespace_id, body)
        return (201 if created else 200), grant_public(grant)

    return respond_once(runtime, principal, request, idempotency_key, body, work)


@router.get("/{namespace_id}/grants", response_model=GrantsPublic)
def list_grants(namespace_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> GrantsPublic:
    """The agents a namespace is shared with (owner or admin)."""
    grants = [grant_public(g) for g in runtime.sharing.list_grants(principal, namespace_id)]
    return GrantsPublic(data=grants, count=len(grants))


@router.delete("/{namespace_id}/grants/{grant_id}", response_model=GrantPublic)
def revoke_grant(
    namespace_id: str, grant_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> GrantPublic:
    """Stop sharing (owner or admin); the agent loses access on its next request."""
    return grant_public(runtime.sharing.revoke(principal, namespace_id, grant_id))


@router.get("/{namespace_id}/audit", response_model=AuditEventsPublic)
def list_audit(
    namespace_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    agent_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> AuditEventsPublic:
    """Who other than the owner read or wrote the namespace, newest first (owner or admin)."""
    events, next_cursor = runtime.audit.page(
        principal, namespace_id, limit=limit, cursor=cursor, agent_id=agent_id
    )
    return AuditEventsPublic(data=[_event(e) for e in events], next_cursor=next_cursor)
