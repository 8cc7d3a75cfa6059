"""Memories: write, read, list, update (optimistic), delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from ..models import Memory
from ..records import MemoryRecord
from ..schemas import (
    MemoriesPublic,
    MemoryBatchCreate,
    MemoryBatchResult,
    MemoryCreate,
    MemoryDeleted,
    MemoryFilters,
    MemoryPublic,
    MemoryStatus,
    MemoryUpdate,
    MemoryWriteResult,
    ProvenancePublic,
)
from ..services.memories import DeleteOutcome, ProvenanceNode, WriteOutcome
from .deps import (
    AuditDep,
    IdempotencyKey,
    PrincipalDep,
    RuntimeDep,
    error_responses,
    expected_version,
    respond_once,
)

router = APIRouter(
    prefix="/v1/memories",
    tags=["memories"],
    responses=error_responses(404, 409, 412, 413, 428, 503),
)


def memory_public(memory: Memory | MemoryRecord) -> MemoryPublic:
    fields = memory.public_fields() if isinstance(memory, MemoryRecord) else memory.model_dump()
    metadata = fields.pop("meta")  # the API calls it `metadata`
    return MemoryPublic(**fields, metadata=metadata)


def write_result(outcome: WriteOutcome) -> MemoryWriteResult:
    return MemoryWriteResult(
        memory=memory_public(outcome.memory),
        created=outcome.created,
        superseded_id=outcome.superseded_id,
    )


def deleted_public(outcome: DeleteOutcome) -> MemoryDeleted:
    tombstone = outcome.tombstone
    return MemoryDeleted(
        id=tombstone.memory_id,
        namespace_id=tombstone.namespace_id,
        deleted_at=tombstone.deleted_at,
        deleted_by=tombstone.deleted_by_agent_id,
        also_deleted=outcome.also_deleted,
    )


def _etag(memory: Memory) -> dict[str, str]:
    return {"ETag": f'"{memory.version}"'}


@router.post(
    "",
    status_code=201,
    response_model=MemoryWriteResult,
    responses={200: {"model": MemoryWriteResult, "description": "An identical memory existed"}},
)
def create_memory(
    body: MemoryCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Store one memory; it is in SQL and searchable when this returns.

    201 when it was stored; 200 when an identical fact/note/preference already existed in the same
    scope (that one is returned). A `key` supersedes the key's previous value.
    """

    def work() -> list[WriteOutcome]:
        outcomes = runtime.memories.create_many(principal, [body])
        audit.wrote("create", [outcomes[0].memory.namespace_id])
        return outcomes

    def render(outcomes: list[WriteOutcome]) -> tuple[int, MemoryWriteResult]:
        (outcome,) = outcomes
        return (201 if outcome.created else 200), write_result(outcome)

    return respond_once(runtime, principal, request, idempotency_key, body, work, render)


@router.post("/batch", status_code=201, response_model=MemoryBatchResult)
def create_memories(
    body: MemoryBatchCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Store up to `MEMORY_MAX_BATCH_SIZE` memories in one transaction: all of them or none."""

    def work() -> list[WriteOutcome]:
        outcomes = runtime.memories.create_many(principal, body.memories)
        audit.wrote("create", [o.memory.namespace_id for o in outcomes])
        return outcomes

    def render(outcomes: list[WriteOutcome]) -> tuple[int, MemoryBatchResult]:
        created = sum(1 for o in outcomes if o.created)
        return 201, MemoryBatchResult(
            results=[write_result(o) for o in outcomes],
            created=created,
            deduplicated=len(outcomes) - created,
        )

    return respond_once(runtime, principal, request, idempotency_key, body, work, render)


@router.get("", response_model=MemoriesPublic)
def list_memories(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    namespace_id: Annotated[list[str] | None, Query()] = None,
    user_id: str | None = None,
    thread_id: str | None = None,
    kind: Annotated[list[str] | None, Query()] = None,
    tag: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[MemoryStatus] | None, Query()] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> MemoriesPublic:
    """Memories the caller may read, newest first, filtered; follow `next_cursor` for more."""
    filters = MemoryFilters(
        namespace_ids=namespace_id,
        user_id=user_id,
        thread_id=thread_id,
        kinds=kind,
        tags=tag,
        statuses=status,
        created_after=created_after,
        created_before=created_before,
    )
    rows, next_cursor = runtime.memories.list_page(principal, filters, limit=limit, cursor=cursor)
    audit.read("list", [m.namespace_id for m in rows])
    return MemoriesPublic(data=[memory_public(m) for m in rows], next_cursor=next_cursor)


@router.get("/{memory_id}", response_model=MemoryPublic)
def get_memory(
    memory_id: str,
    response: Response,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> MemoryPublic:
    """One memory; its `ETag` is the version that `PATCH` expects in `If-Match`."""
    memory = runtime.memories.get(principal, memory_id)
    audit.read("get", [memory.namespace_id])
    response.headers.update(_etag(memory))
    return memory_public(memory)


@router.patch("/{memory_id}", response_model=MemoryPublic)
def update_memory(
    memory_id: str,
    body: MemoryUpdate,
    response: Response,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> MemoryPublic:
    """Change a memory if it is still at the version in `If-Match` (412 if not)."""
    memory = runtime.memories.update(
        principal, memory_id, body, expected_version(if_match, "memory")
    )
    audit.wrote("update", [memory.namespace_id])
    response.headers.update(_etag(memory))
    return memory_public(memory)


@router.delete("/{memory_id}", response_model=MemoryDeleted)
def delete_memory(
    memory_id: str, runtime: RuntimeDep, principal: PrincipalDep, audit: AuditDep
) -> MemoryDeleted:
    """Delete a memory's content from SQL and the index for good; the deletion itself is kept.

    Summaries condensed from it are deleted too, and listed in `also_deleted`.
    """
    outcome = runtime.memories.delete(principal, memory_id)
    audit.wrote("delete", [outcome.tombstone.namespace_id])
    return deleted_public(outcome)


def _provenance_public(node: ProvenanceNode) -> ProvenancePublic:
    return ProvenancePublic(
        memory=memory_public(node.memory),
        sources=[_provenance_public(child) for child in node.sources],
        hidden_sources=node.hidden_sources,
    )


def _tree_namespaces(node: ProvenanceNode) -> list[str]:
    return [node.memory.namespace_id, *(n for c in node.sources for n in _tree_namespaces(c))]


@router.get("/{memory_id}/provenance", response_model=ProvenancePublic)
def get_provenance(
    memory_id: str, runtime: RuntimeDep, principal: PrincipalDep, audit: AuditDep
) -> ProvenancePublic:
    """A summary and the tree of entries it was condensed from, down to the originals."""
    tree = runtime.memories.provenance(principal, memory_id)
    audit.read("provenance", _tree_namespaces(tree))
    return _provenance_public(tree)
