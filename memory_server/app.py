"""The FastAPI application: `create_app(settings)` wires routers, errors and the runtime."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

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
    transfer,
    users,
)
from .api import metrics as metrics_api
from .config import Settings
from .errors import error_body, install_error_handlers
from .logs import ACCESS_LOGGER, REQUEST_ID
from .runtime import Runtime, build_runtime

REQUEST_ID_HEADER = "X-Request-ID"

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The runtime (stores, model, schedule) is built at startup unless given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = runtime is None
        app.state.runtime = runtime or build_runtime(settings)
        if owned:
            app.state.runtime.start_jobs()
        try:
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

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if 0 < len(incoming) <= 128 else f"req_{secrets.token_hex(8)}"
        request.state.request_id = rid
        REQUEST_ID.set(rid)  # this request's task (and the threads it hands work to) only
        stages = metrics.track_stages()
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("unhandled error")
            response = JSONResponse(
                error_body("internal_error", "The server hit an unexpected error."),
                status_code=500,
            )
        seconds = time.perf_counter() - started
        response.headers[REQUEST_ID_HEADER] = rid
        _record(request, response.status_code, seconds, stages)
        return response

    routers = (
        *(health, agents, namespaces, sharing, memories, search, context, summaries, users),
        *(events, transfer),
    )
    for module in routers:
        app.include_router(module.router)
    if settings.metrics_enabled:
        app.include_router(metrics_api.router)
    return app


def _record(request: Request, status: int, seconds: float, stages: metrics.StageTimes) -> None:
    """The request's metrics and its access-log line."""
    route = getattr(request.scope.get("route"), "path", None) or metrics.UNMATCHED_ROUTE
    metrics.observe_request(request.method, route, status, seconds)
    metrics.observe_stages(stages)
    if not access_log.isEnabledFor(logging.INFO):
        return
    agent_id = getattr(request.state, "agent_id", None)
    access_log.info(
        "%s %s %d %.1f ms",
        request.method,
        request.url.path,
        status,
        seconds * 1000,
        extra={
            "method": request.method,
            "route": route,
            "path": request.url.path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            **({"agent_id": agent_id} if agent_id else {}),
        },
    )
