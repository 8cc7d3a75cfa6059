"""The event log: a page after a cursor, and a server-sent-events stream of the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..errors import MemoryServerError
from ..models import MemoryEvent
from ..runtime import Runtime
from ..schemas import EventPublic, EventsPublic
from ..services.audit import AuditTrail
from ..services.events import parse_cursor
from .deps import (
    AuditDep,
    PrincipalDep,
    RuntimeDep,
    error_responses,
    streamed_error_responses,
)

router = APIRouter(prefix="/v1/events", tags=["events"])

STREAM_BATCH = 200
RECONNECT_MS = 2000

NamespaceFilter = Annotated[
    list[str] | None,
    Query(description="Only these namespaces (repeat it); every readable one if omitted."),
]


def event_public(event: MemoryEvent) -> EventPublic:
    return EventPublic.model_validate(event, from_attributes=True)


def _memory_namespaces(events: list[MemoryEvent]) -> list[str]:
    """One namespace id per event about a memory or a task, for the audit trail."""
    return [e.namespace_id for e in events if e.memory_id is not None or e.task_id is not None]


@router.get("", response_model=EventsPublic, responses=error_responses(400, 404))
def list_events(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    after: Annotated[
        str | None, Query(description="An event id: return what came after it (default: all).")
    ] = None,
    namespace_id: NamespaceFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventsPublic:
    """Events of the namespaces the caller may read now, oldest first, after the cursor `after`.

    Poll with `after=next_cursor` to sync; `has_more` says another page is already waiting.
    """
    page = runtime.events.page(
        principal, after=parse_cursor(after), namespace_ids=namespace_id, limit=limit
    )
    audit.read("events", _memory_namespaces(page.events))
    return EventsPublic(
        data=[event_public(e) for e in page.events],
        next_cursor=page.next_cursor,
        has_more=page.has_more,
    )


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    responses={
        200: {
            "description": "Server-sent events: one `data:` JSON EventPublic per event, `id:` its "
            "cursor; `: heartbeat` comments while quiet; an `event: error` then the end when the "
            "caller loses access.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **streamed_error_responses(400, 404),
    },
)
async def stream_events(
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    after: Annotated[
        str | None,
        Query(description="An event id to start after; default: from now on (or Last-Event-ID)."),
    ] = None,
    namespace_id: NamespaceFilter = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="Sent by reconnecting clients: resume after it."),
    ] = None,
) -> EventStreamResponse:
    """The same events as `GET /v1/events`, pushed as they are committed (server-sent events).

    The stream polls the database, so it sees writes of every server process sharing it, and
    re-checks the caller's key and permissions at every poll: events of a namespace whose grant was
    revoked stop at once; a revoked key, or a namespace asked for by id and no longer readable,
    ends the stream with an `error` event.
    """
    cursor = parse_cursor(last_event_id, name="Last-Event-ID") if last_event_id else None
    if cursor is None:
        cursor = parse_cursor(after)
    namespace_ids = list(namespace_id) if namespace_id is not None else None
    await run_in_threadpool(runtime.events.check_scope, principal, namespace_ids)
    if cursor is None:
        cursor = await run_in_threadpool(runtime.events.latest_id)
    trail = AuditTrail(runtime.audit, principal, getattr(request.state, "request_id", None))
    stopping: asyncio.Event = request.app.state.stopping
    body = _stream(runtime, principal, trail, stopping, namespace_ids, cursor)
    return EventStreamResponse(
        body, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _stream(
    runtime: Runtime,
    principal: Principal,
    trail: AuditTrail,
    stopping: asyncio.Event,
    namespace_ids: list[str] | None,
    cursor: int,
) -> AsyncIterator[str]:
    """Poll the log and send what is new; end when access is lost or the server stops (a client
    that goes away cancels this generator)."""
    poll = runtime.settings.event_stream_poll_seconds
    heartbeat = runtime.settings.event_stream_heartbeat_seconds
    yield f"retry: {RECONNECT_MS}\n: connected\n\n"
    quiet_since = time.monotonic()
    while not stopping.is_set():
        try:
            page = await run_in_threadpool(
                runtime.events.page,
                principal,
                after=cursor,
                namespace_ids=namespace_ids,
                limit=STREAM_BATCH,
                recheck_key=True,
            )
            if page.events:
                await run_in_threadpool(trail.read, "events", _memory_namespaces(page.events))
        except MemoryServerError as exc:
            error = {"status": exc.status, "code": exc.code, "detail": exc.detail}
            yield _frame(error, event="error")
            return
        for event in page.events:
            yield _frame(jsonable_encoder(event_public(event)), event_id=event.id)
        cursor = int(page.next_cursor)
        now = time.monotonic()
        if page.events:
            quiet_since = now
            if page.has_more:
                continue
        elif now - quiet_since >= heartbeat:
            yield ": heartbeat\n\n"
            quiet_since = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=poll)


def _frame(data: object, *, event: str | None = None, event_id: int | None = None) -> str:
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"
