"""Agents and API keys: the admin's endpoints, plus `GET /v1/me` for any caller."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..models import Agent, ApiKey
from ..schemas import (
    AgentCreate,
    AgentPublic,
    AgentsPublic,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    WhoAmI,
)
from .deps import (
    AdminDep,
    IdempotencyKey,
    PrincipalDep,
    RuntimeDep,
    error_responses,
    respond_once,
)

router = APIRouter(prefix="/v1", tags=["agents"], responses=error_responses(404, 409))


def _agent(agent: Agent) -> AgentPublic:
    return AgentPublic.model_validate(agent, from_attributes=True)


def _key(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic.model_validate(key, from_attributes=True)


@router.post("/agents", status_code=201, response_model=AgentPublic)
def create_agent(
    body: AgentCreate,
    request: Request,
    runtime: RuntimeDep,
    admin: AdminDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create an agent and its private default namespace (admin)."""
    return respond_once(
        runtime,
        admin,
        request,
        idempotency_key,
        body,
        lambda: runtime.agents.create_agent(body),
        lambda agent: (201, _agent(agent)),
    )


@router.get("/agents", response_model=AgentsPublic)
def list_agents(runtime: RuntimeDep, _: AdminDep) -> AgentsPublic:
    """Every agent (admin)."""
    agents = [_agent(a) for a in runtime.agents.list_agents()]
    return AgentsPublic(data=agents, count=len(agents))


@router.get("/agents/{agent_id}", response_model=AgentPublic)
def get_agent(agent_id: str, runtime: RuntimeDep, _: AdminDep) -> AgentPublic:
    """One agent (admin)."""
    return _agent(runtime.agents.get_agent(agent_id))


@router.post("/agents/{agent_id}/keys", status_code=201, response_model=ApiKeyCreated)
def create_key(
    agent_id: str,
    body: ApiKeyCreate,
    request: Request,
    runtime: RuntimeDep,
    admin: AdminDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Make an API key for an agent; the secret is in this response only (admin)."""

    def render(created: tuple[ApiKey, str]) -> tuple[int, ApiKeyCreated]:
        key, secret = created
        return 201, ApiKeyCreated(**_key(key).model_dump(), key=secret)

    return respond_once(
        runtime,
        admin,
        request,
        idempotency_key,
        body,
        lambda: runtime.agents.create_key(agent_id, body),
        render,
    )


@router.get("/agents/{agent_id}/keys", response_model=ApiKeysPublic)
def list_keys(agent_id: str, runtime: RuntimeDep, _: AdminDep) -> ApiKeysPublic:
    """An agent's keys, without their secrets (admin)."""
    keys = [_key(k) for k in runtime.agents.list_keys(agent_id)]
    return ApiKeysPublic(data=keys, count=len(keys))


@router.delete("/keys/{key_id}", response_model=ApiKeyPublic)
def revoke_key(key_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> ApiKeyPublic:
    """Revoke a key at once: the admin any key, an agent its own."""
    return _key(runtime.agents.revoke_key(principal, key_id))


@router.get("/me", response_model=WhoAmI)
def who_am_i(principal: PrincipalDep) -> WhoAmI:
    """The caller as the server sees it."""
    return WhoAmI(
        agent_id=principal.agent_id,
        key_id=principal.key_id,
        is_admin=principal.is_admin,
        read_only=principal.read_only,
        namespace_ids=sorted(principal.namespace_ids)
        if principal.namespace_ids is not None
        else None,
    )
