"""Typed dependencies: the runtime, the authenticated (and rate-limited) caller, the audit trail,
and idempotent POST handling."""

from __future__ import annotations

import re
from collections.abc import Callable, MutableMapping
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..auth import Principal, authenticate, bearer_token
from ..errors import InvalidRequest, PermissionDenied, PreconditionRequired
from ..runtime import Runtime
from ..schemas import ErrorBody
from ..services.audit import AuditTrail
from ..services.idempotency import request_fingerprint

T = TypeVar("T")


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` in the thread pool, a
# hand-off per dependency per request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


# Documents the scheme in OpenAPI; the header itself is parsed by `bearer_token`, so that a
# missing or malformed header gets this API's own 401 body.
_bearer_scheme = HTTPBearer(auto_error=False, description="An agent's API key or the admin key.")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a router can answer, all in the `ErrorBody` shape.
    400: a body that is not UTF-8, which FastAPI's body reader refuses before validation."""
    return {status: {"model": ErrorBody} for status in (400, 401, 403, 422, 429, *statuses)}


def get_principal(
    runtime: RuntimeDep,
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The caller, authenticated; each API key spends one request of its rate limit here."""
    return resolve_principal(runtime, authorization, request.scope.setdefault("state", {}))


def resolve_principal(
    runtime: Runtime, authorization: str | None, state: MutableMapping[str, Any]
) -> Principal:
    """The caller of a request with this `Authorization` header (`Bearer <key>`), else
    Unauthorized. Its id goes into the request's `state` for the access log; then an API key
    spends one request of its rate limit (RateLimited when none is left). The REST routes and
    the MCP endpoint authenticate through this one function."""
    token = bearer_token(authorization)
    with runtime.db.read() as session:
        principal = authenticate(session, token, runtime.admin_key)
    state["agent_id"] = principal.id
    if principal.key_id is not None:  # the admin key is not rate-limited
        runtime.rate_limiter.take(principal.key_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise PermissionDenied("This endpoint needs the admin key.", code="admin_required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def streamed_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`error_responses` for a route whose success body is a stream: FastAPI would document the
    errors in the stream's media type; they are JSON `ErrorBody` like everywhere else."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {
        status: {"description": "Error", "content": body}
        for status in (400, 401, 403, 422, 429, *statuses)
    }


async def get_audit(runtime: RuntimeDep, principal: PrincipalDep, request: Request) -> AuditTrail:
    return AuditTrail(runtime.audit, principal, getattr(request.state, "request_id", None))


AuditDep = Annotated[AuditTrail, Depends(get_audit)]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="The version the change expects (the ETag of a GET); 412 if it moved on.",
    ),
]

_VERSION = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def expected_version(if_match: str | None, what: str) -> int:
    """The version an `If-Match` header names; 428 when it is missing, 422 when unreadable.
    `what` names the resource in the message: "memory", "task"."""
    if if_match is None:
        raise PreconditionRequired(
            f"PATCH needs an If-Match header with the {what}'s current version (its ETag).",
        )
    match = _VERSION.match(if_match)
    if match is None:
        raise InvalidRequest(
            f'If-Match must be the {what}\'s version, e.g. If-Match: "3".', code="invalid_if_match"
        )
    return int(match.group(1))


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="A retry with the same key gets the first response; nothing is written twice.",
    ),
]


async def run_read(request: Request, work: Callable[[], T]) -> T:
    """Run a search or context call's CPU work (SQL, ranking, packing) in the thread pool, at
    most `read_concurrency` at a time. The work holds the GIL most of the time: with more calls
    at once than cores, each waits longer for it and the query embeddings they wait on stall
    too (8 clients on 2 cores: p95 0.67x with 2 at a time, docs/benchmarks.md)."""
    limiter: anyio.CapacityLimiter = request.app.state.read_slots
    return await anyio.to_thread.run_sync(work, limiter=limiter)


def json_response(model: BaseModel) -> Response:
    """`model` as a 200 JSON body, encoded once by pydantic. The route's `response_model` still
    documents it; FastAPI would validate the model again (for a plain `def` route, in another
    thread-pool hand-off) before encoding it."""
    return Response(model.model_dump_json(by_alias=True), media_type="application/json")


def respond_once(
    runtime: Runtime,
    principal: Principal,
    request: Request,
    idempotency_key: str | None,
    payload: BaseModel | None,
    work: Callable[[], Any],
    render: Callable[[Any], tuple[int, BaseModel]] | None = None,
) -> JSONResponse:
    """Run a POST's `work` and answer `render(result)`, replaying the stored answer when the
    Idempotency-Key was seen before.

    With `render`, `work` returns the result that its write path hands to
    `services.idempotency.record_response`, so the answer is stored in the write's own
    transaction. Without it, `work` returns `(status, model)` itself and the answer is stored
    after the work (for work that is idempotent by nature).
    """

    def encoded(result: Any) -> tuple[int, Any]:
        status_code, model = render(result) if render is not None else result
        # pydantic's own JSON-mode dump: what jsonable_encoder returns, at a fraction of the cost
        return status_code, model.model_dump(mode="json", by_alias=True)

    if idempotency_key is None:
        status_code, body = encoded(work())
        return JSONResponse(body, status_code=status_code)
    fingerprint = request_fingerprint(
        request.method,
        request.url.path,
        payload.model_dump(mode="json") if payload is not None else None,
    )
    stored = runtime.idempotency.run(
        principal.id,
        idempotency_key,
        fingerprint,
        work,
        encoded,
        recorded_by_work=render is not None,
    )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)
