"""Namespaces the caller owns or may read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from ..models import Memory, Namespace
from ..schemas import (
    EmbeddingsPublic,
    ErrorBody,
    Kind,
    MemoryEmbedding,
    MemoryFilters,
    MemoryStatus,
    NamespaceCreate,
    NamespacePublic,
    NamespacesPublic,
    QueryEmbedding,
)
from ..services.search import requested_statuses
from .deps import AuditDep, IdempotencyKey, PrincipalDep, RuntimeDep, error_responses, respond_once

router = APIRouter(
    prefix="/v1/namespaces", tags=["namespaces"], responses=error_responses(404, 409)
)


def namespace_public(namespace: Namespace, permission: str) -> NamespacePublic:
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
        lambda: runtime.namespaces.create(principal, body),
        lambda namespace: (201, namespace_public(namespace, "owner")),
    )


@router.get("", response_model=NamespacesPublic)
def list_namespaces(runtime: RuntimeDep, principal: PrincipalDep) -> NamespacesPublic:
    """Every namespace the caller may read, with its permission in each."""
    data = [namespace_public(ns, perm) for ns, perm in runtime.namespaces.list_readable(principal)]
    return NamespacesPublic(data=data, count=len(data))


@router.get("/{namespace_id}", response_model=NamespacePublic)
def get_namespace(
    namespace_id: str, runtime: RuntimeDep, principal: PrincipalDep
) -> NamespacePublic:
    """One namespace the caller may read."""
    return namespace_public(*runtime.namespaces.get(principal, namespace_id))


PREVIEW_CHARS = 160


def _preview(content: str) -> str:
    text = " ".join(content.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _embedding_public(memory: Memory, embedding: Sequence[float]) -> MemoryEmbedding:
    return MemoryEmbedding(
        **memory.model_dump(include=set(MemoryEmbedding.model_fields) - {"preview", "embedding"}),
        preview=_preview(memory.content),
        embedding=[float(x) for x in embedding],
    )


@router.get(
    "/{namespace_id}/embeddings",
    response_model=EmbeddingsPublic,
    responses={503: {"model": ErrorBody}},
)
def list_embeddings(
    namespace_id: str,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    kind: Annotated[list[Kind] | None, Query()] = None,
    status: Annotated[list[MemoryStatus] | None, Query()] = None,
    include_archived: bool = False,
    user_id: str | None = None,
    thread_id: str | None = None,
    query: Annotated[str | None, Query(min_length=1, max_length=8000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    cursor: str | None = None,
) -> EmbeddingsPublic:
    """The namespace's memories with their stored embeddings, newest first, for plotting a map.

    Same scope and filters as listing (active only unless `status` or `include_archived` says
    otherwise); `query` adds that text's embedding, to place it among them.
    """
    filters = MemoryFilters(
        namespace_ids=[namespace_id],
        user_id=user_id,
        thread_id=thread_id,
        kinds=kind,
        statuses=requested_statuses(status, include_archived),
    )
    page = runtime.embeddings.page(principal, filters, limit=limit, cursor=cursor, query=query)
    audit.read("embeddings", [m.namespace_id for m, _ in page.memories])
    return EmbeddingsPublic(
        namespace_id=namespace_id,
        model=runtime.embeddings.model,
        dimensions=runtime.embeddings.dimension,
        data=[_embedding_public(m, e) for m, e in page.memories],
        next_cursor=page.next_cursor,
        query=QueryEmbedding(text=page.query[0], embedding=page.query[1]) if page.query else None,
    )
