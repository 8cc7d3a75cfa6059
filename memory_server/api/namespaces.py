"""Namespaces the caller owns or may read."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..models import Namespace
from ..schemas import NamespaceCreate, NamespacePublic, NamespacesPublic
from .deps import IdempotencyKey, PrincipalDep, RuntimeDep, error_responses, respond_once

router = APIRouter(
    prefix="/v1/namespaces", tags=["namespaces"], responses=error_responses(404, 409)
)


def _public(namespace: Namespace, permission: str) -> NamespacePublic:
    return NamespacePublic(**namespace.model_dump(), permission=permission)


@router.post("", status_code=201, response_model=NamespacePublic)
def create_namespace(
    body: NamespaceCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a namespace owned by the calling agent."""
    return respond_once(
        runtime,
        principal,
        request,
        idempotency_key,
        body,
        lambda: (201, _public(runtime.namespaces.create(principal, body), "owner")),
    )


@router.get("", response_model=NamespacesPublic)
def list_namespaces(runtime: RuntimeDep, principal: PrincipalDep) -> NamespacesPublic:
    """Every namespace the caller may read, with its permission in each."""
    data = [_public(ns, perm) for ns, perm in runtime.namespaces.list_readable(principal)]
    return NamespacesPublic(data=data, count=len(data))


@router.get("/{namespace_id}", response_model=NamespacePublic)
def get_namespace(
    namespace_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> NamespacePublic:
    """One namespace the caller may read."""
    return _public(*runtime.namespaces.get(principal, namespace_id))
