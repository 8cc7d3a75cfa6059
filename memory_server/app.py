"""The FastAPI application: `create_app(settings)` wires routers, errors and the runtime."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, metrics
from .api import (
    agents,
    context,
    events,
    health,
    memories,
    namespaces,
    search,
    sharing,
    summaries,
    tasks,
    transfer,
    users,
)
from .api import metrics as metrics_api
from .config import Settings
from .errors import error_body, install_error_handlers
from .logs import ACCESS_LOGGER, REQUEST_ID
from .mcp.http import McpEndpoint
from .request_limits import RequestLimits
from .runtime import Runtime, build_runtime

REQUEST_ID_HEADER = "X-Request-ID"

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The runtime (stores, model, schedule) is built at startup unless given.
    The MCP endpoint (`/mcp`) serves for as long as the app does: its lifespan is entered here."""
    mcp_endpoint = McpEndpoint()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or build_runtime(settings)
        read_concurrency = app.state.runtime.settings.resolved_read_concurrency
        app.state.read_slots = anyio.CapacityLimiter(read_concurrency)
        if owned:
            app.state.runtime.start_jobs()
        try:
            async with mcp_endpoint.serving(app.state.runtime, app.state.read_slots):
                yield
        finally:
            if owned:
                app.state.runtime.close()

    app = FastAPI(
        title="memory-server",
        version=__version__,
        description="Long-term memory for AI agents.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Set when the server begins to stop (see serving.py): open event streams end at once.
    app.state.stopping = asyncio.Event()

    app.add_middleware(
        RequestLimits,
        max_bytes=settings.max_request_bytes,
        max_import_bytes=settings.max_import_bytes,
    )
    app.add_middleware(RequestContext)  # outermost: every answer carries the request id

    routers = (
        *(health, agents, namespaces, sharing, memories, search, context, summaries, users),
        *(events, transfer, tasks),
    )
    for module in routers:
        app.include_router(module.router)
    app.router.routes.append(mcp_endpoint.route)
    if settings.metrics_enabled:
        app.include_router(metrics_api.router)
    return app


class RequestContext:
    """Pure ASGI middleware: the request id (taken from `X-Request-ID` or made, and echoed), the
    per-request stage timer, the latency metrics and the access-log line. (Starlette's
    `BaseHTTPMiddleware` would run each request through an extra task and memory stream.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        rid = incoming if 0 < len(incoming) <= 128 else f"req_{secrets.token_hex(8)}"
        scope.setdefault("state", {})["request_id"] = rid
        REQUEST_ID.set(rid)  # this request's task (and the threads it hands work to) only
        stages = metrics.track_stages()
        started = time.perf_counter()
        status: int | None = None  # set when the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error")
            if status is not None:  # the response had begun: nothing more can be sent
                raise
            response = JSONResponse(
                error_body("internal_error", "The server hit an unexpected error."),
                status_code=500,
            )
            await response(scope, receive, send_with_id)
        _record(scope, status or 500, time.perf_counter() - started, stages)


def _record(scope: Scope, status: int, seconds: float, stages: metrics.StageTimes) -> None:
    """The request's metrics and its access-log line."""
    route = getattr(scope.get("route"), "path", None) or metrics.UNMATCHED_ROUTE
    method = scope["method"]
    metrics.observe_request(method, route, status, seconds)
    metrics.observe_stages(stages)
    if not access_log.isEnabledFor(logging.INFO):
        return
    agent_id = scope.get("state", {}).get("agent_id")
    path = scope["path"]
    access_log.info(
        "%s %s %d %.1f ms",
        method,
        path,
        status,
        seconds * 1000,
        extra={
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            **({"agent_id": agent_id} if agent_id else {}),
        },
    )
