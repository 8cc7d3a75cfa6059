"""The tools' backend in `memory-server mcp`: each operation is a request to a running server
through the Python SDK, so the server decides everything, for the key the SDK sends."""

from __future__ import annotations

from collections.abc import Awaitable

from memory_client import APIConnectionError, APIStatusError, AsyncMemoryClient
from pydantic import BaseModel

from .tools import JSON, ToolFailure


class SdkBackend:
    """The REST operations of the tools, sent to the server `client` talks to."""

    def __init__(self, client: AsyncMemoryClient):
        self._client = client

    async def create_memory(self, body: JSON) -> JSON:
        return await self._answer(self._client.create_memory(**body))

    async def search(self, body: JSON) -> JSON:
        return await self._answer(self._client.search(**body))

    async def context(self, body: JSON) -> JSON:
        return await self._answer(self._client.context(**body))

    async def delete_memory(self, memory_id: str) -> JSON:
        return await self._answer(self._client.delete_memory(memory_id))

    async def list_namespaces(self) -> JSON:
        return await self._answer(self._client.list_namespaces())

    async def create_grant(self, namespace_id: str, body: JSON) -> JSON:
        return await self._answer(self._client.create_grant(namespace_id, **body))

    async def list_grants(self, namespace_id: str) -> JSON:
        return await self._answer(self._client.list_grants(namespace_id))

    async def revoke_grant(self, namespace_id: str, grant_id: str) -> JSON:
        return await self._answer(self._client.revoke_grant(namespace_id, grant_id))

    async def _answer(self, request: Awaitable[BaseModel]) -> JSON:
        """The response body; the server's error code and detail as a ToolFailure."""
        try:
            response = await request
        except APIStatusError as exc:
            code = exc.code or f"http_{exc.status_code}"
            raise ToolFailure(code, exc.detail or str(exc)) from exc
        except APIConnectionError as exc:
            raise ToolFailure(
                "server_unreachable",
                f"No answer from the memory server at {self._client.base_url}: {exc}",
            ) from exc
        return response.model_dump(mode="json")
