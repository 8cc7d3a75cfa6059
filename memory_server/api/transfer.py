"""Export a namespace (JSONL or Markdown, streamed) and import a JSONL export."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..schemas import ImportConflict, ImportResult
from .deps import (
    AuditDep,
    IdempotencyKey,
    PrincipalDep,
    RuntimeDep,
    error_responses,
    respond_once,
    streamed_error_responses,
)

router = APIRouter(prefix="/v1", tags=["export"])


class _ImportFingerprint(BaseModel):
    """What makes two imports the same request, for Idempotency-Key replays."""

    namespace_id: str
    body_sha256: str


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "JSONL (`application/x-ndjson`): a header, one record per memory and "
            "per provenance link, a trailer; or Markdown (`text/markdown`): `memory.md`.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
        },
        **streamed_error_responses(404),
    },
)
def export_namespace(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    namespace_id: Annotated[str, Query(min_length=1)],
    format: Literal["jsonl", "markdown"] = "jsonl",
    include_embeddings: bool = False,
) -> StreamingResponse:
    """Stream a namespace the caller may read: every memory in every state, keyed-fact history,
    summaries and their provenance links (JSONL, re-importable), or a readable Markdown page."""
    namespace = runtime.transfer.open_export(principal, namespace_id)
    audit.read("export", [namespace.id])
    if format == "markdown":
        return StreamingResponse(
            runtime.transfer.markdown(namespace),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="memory.md"'},
        )
    return StreamingResponse(
        runtime.transfer.jsonl(namespace, include_embeddings=include_embeddings),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="{namespace.name}.jsonl"'},
    )


@router.post(
    "/import",
    response_model=ImportResult,
    responses=error_responses(400, 404, 409, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A JSONL export (`GET /v1/export?format=jsonl`).",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def import_namespace(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    namespace_id: Annotated[str, Query(min_length=1)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Restore a JSONL export into a namespace the caller may write, empty or not.

    Ids, versions, states and timestamps are kept. Idempotent: memories already stored identically
    are skipped, different ones are reported in `conflicts` and left alone. A malformed line is a
    400 naming it, and nothing is stored; so is any failure while storing.
    """
    body = await request.body()
    fingerprint = _ImportFingerprint(
        namespace_id=namespace_id, body_sha256=hashlib.sha256(body).hexdigest()
    )

    def work() -> tuple[int, ImportResult]:
        outcome = runtime.transfer.import_jsonl(principal, namespace_id, body)
        audit.wrote("import", [namespace_id] * outcome.created)
        return 200, ImportResult(
            namespace_id=outcome.namespace_id,
            created=outcome.created,
            skipped=outcome.skipped,
            links_created=outcome.links_created,
            links_skipped=outcome.links_skipped,
            tasks_created=outcome.tasks_created,
            tasks_skipped=outcome.tasks_skipped,
            conflicts=[
                ImportConflict(line=c.line, record=c.record, id=c.id, reason=c.reason)
                for c in outcome.conflicts
            ],
        )

    return await run_in_threadpool(
        respond_once, runtime, principal, request, idempotency_key, fingerprint, work
    )
