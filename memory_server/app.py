"""The FastAPI application: `create_app(settings)` wires routers, errors and the runtime."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from . import __version__
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
from .config import Settings
from .errors import install_error_handlers
from .runtime import Runtime, build_runtime

REQUEST_ID_HEADER = "X-Request-ID"


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
        response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = rid
        return response

    routers = (
        *(health, agents, namespaces, sharing, memories, search, context, summaries, users),
        *(events, transfer),
    )
    for module in routers:
        app.include_router(module.router)
    return app
