"""`memory-server mcp`: the memory tools over MCP's stdio transport, for clients that launch a
local process. Each tool call is forwarded to a running server (`MEMORY_URL`) with an agent's key
(`MEMORY_API_KEY`) through the Python SDK, so the server applies its own rules to every call.
This process holds no memories and loads none of the server's parts."""

from __future__ import annotations

from mcp.server.stdio import stdio_server
from memory_client import AsyncMemoryClient

from .remote import SdkBackend
from .tools import build_server


async def serve_stdio(client: AsyncMemoryClient) -> None:
    """Answer MCP on stdin/stdout until the client closes stdin, through `client`."""
    backend = SdkBackend(client)
    server = build_server(lambda _ctx: backend)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
