"""`/mcp`: the memory tools over MCP's streamable HTTP transport, served by the server process.

Every HTTP request is authenticated before MCP sees it, by the function every REST route uses
(`resolve_principal`: the bearer key, its rate limit); an unknown, revoked or expired key gets the
API's 401 error body. The tools then run as that key's principal through `ServiceBackend`, the
services the REST routes call.

The transport is stateless: each POST carries its whole exchange and is answered with JSON, so
nothing is kept between requests (any server process behind a load balancer can answer any of
them), and every request is checked against the key's current state. There is no event stream
to open (GET) and no session to end (DELETE): both get 405, as the transport's spec allows.
DNS-rebinding protection is left off: it guards servers that trust whoever can reach them, and
this one trusts only a bearer key, which a rebinding web page does not have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..api.deps import resolve_principal
from ..auth import Principal
from ..errors import MemoryServerError, error_body
from ..logs import REQUEST_ID
from ..runtime import Runtime
from .inprocess import ServiceBackend
from .tools import build_server

MCP_PATH = "/mcp"
PRINCIPAL_STATE = "principal"  # where the endpoint leaves the caller in the request's state


@dataclass(frozen=True)
class _Serving:
    manager: StreamableHTTPSessionManager
    runtime: Runtime
    read_slots: anyio.CapacityLimiter


class McpEndpoint:
    """The ASGI app at `/mcp`. It answers while `serving()` is entered (the app's lifespan):
    that runs the MCP session manager, whose task group the tool calls run in."""

    def __init__(self) -> None:
        self._server = build_server(self._backend)
        self._serving: _Serving | None = None
        # an ASGI app as the endpoint, so every method reaches it (all but POST get 405 here)
        self.route = Route(MCP_PATH, self, include_in_schema=False)

    @asynccontextmanager
    async def serving(
        self, runtime: Runtime, read_slots: anyio.CapacityLimiter
    ) -> AsyncIterator[None]:
        """Answer MCP requests with `runtime`'s services until the block ends; a session manager
        runs once, so each lifespan gets its own."""
        manager = StreamableHTTPSessionManager(self._server, stateless=True, json_response=True)
        async with manager.run():
            self._serving = _Serving(manager, runtime, read_slots)
            try:
                yield
            finally:
                self._serving = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route  # as FastAPI does for its own routes: for metrics and logs
        serving = self._serving
        if serving is None:
            await _refuse(scope, receive, send, 503, "not_ready", "The server is not serving yet.")
            return
        if scope["method"] != "POST":
            # No standalone event stream (GET) and no session to end (DELETE) when stateless:
            # the transport would hold a GET open, unanswered, until shutdown.
            detail = "The MCP endpoint is stateless: send every message as a POST."
            allow = {"Allow": "POST"}
            await _refuse(scope, receive, send, 405, "method_not_allowed", detail, allow)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        authorization = Headers(scope=scope).get("authorization")
        try:
            principal = await anyio.to_thread.run_sync(
                resolve_principal, serving.runtime, authorization, state
            )
        except MemoryServerError as exc:
            await _refuse(scope, receive, send, exc.status, exc.code, exc.detail, exc.headers)
            return
        state[PRINCIPAL_STATE] = principal
        await serving.manager.handle_request(scope, receive, send)

    def _backend(self, ctx: ServerRequestContext[Any, Any]) -> ServiceBackend:
        """The backend for one tool call: the services, as the caller of the HTTP request that
        carried it."""
        serving = self._serving
        request = ctx.request
        if serving is None or not isinstance(request, Request):
            raise RuntimeError("an MCP tool call reached the server outside an HTTP request")
        principal: Principal = request.scope["state"][PRINCIPAL_STATE]
        request_id: str | None = request.scope["state"].get("request_id")
        REQUEST_ID.set(request_id)  # the call runs in the session manager's task: log lines too
        return ServiceBackend(serving.runtime, principal, serving.read_slots, request_id)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    response = JSONResponse(error_body(code, detail), status_code=status, headers=headers)
    await response(scope, receive, send)
