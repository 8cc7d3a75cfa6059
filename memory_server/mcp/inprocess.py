"""The tools' backend inside the server: each operation calls the services its REST route calls,
as the request's principal, and records the same audit trail. Access is decided there, by
`access.py`, exactly as for the route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
from pydantic import BaseModel, ValidationError

from ..api.memories import deleted_public, write_result
from ..api.namespaces import namespace_public
from ..api.search import search_hit
from ..api.sharing import grant_public
from ..auth import Principal
from ..errors import MemoryServerError
from ..runtime import Runtime
from ..schemas import (
    ContextRequest,
    GrantCreate,
    GrantsPublic,
    MemoryCreate,
    NamespacesPublic,
    SearchRequest,
    SearchResponse,
)
from ..services.audit import AuditTrail
from .tools import JSON, ToolFailure, describe


class ServiceBackend:
    """The REST operations of the tools, answered by this process's services as `principal`.

    Work that reads or writes the database runs in a worker thread, as the routes' does; search
    and context take one of the server's read slots (`read_slots`), as `run_read` does for
    theirs.
    """

    def __init__(
        self,
        runtime: Runtime,
        principal: Principal,
        read_slots: anyio.CapacityLimiter,
        request_id: str | None = None,
    ):
        self._runtime = runtime
        self._principal = principal
        self._read_slots = read_slots
        self._audit = AuditTrail(runtime.audit, principal, request_id)

    async def create_memory(self, body: JSON) -> JSON:
        with _refusals():
            request = MemoryCreate.model_validate(body)

        def work() -> BaseModel:
            (outcome,) = self._runtime.memories.create_many(self._principal, [request])
            self._audit.wrote("create", [outcome.memory.namespace_id])
            return write_result(outcome)

        return await self._run(work)

    async def search(self, body: JSON) -> JSON:
        with _refusals():
            request = SearchRequest.model_validate(body)
        with self._runtime.queries.embedding(request.query) as query_embedding:

            def work() -> BaseModel:
                ranked = self._runtime.search.search(self._principal, request, query_embedding)
                self._audit.read("search", [r.memory.namespace_id for r in ranked])
                return SearchResponse(query=request.query, results=[search_hit(r) for r in ranked])

            return await self._run(work, self._read_slots)

    async def context(self, body: JSON) -> JSON:
        with _refusals():
            request = ContextRequest.model_validate(body)
        with self._runtime.queries.embedding(request.query) as query_embedding:

            def work() -> BaseModel:
                packed = self._runtime.context.build(self._principal, request, query_embedding)
                self._audit.read("context", [item.namespace_id for item in packed.items])
                return packed

            return await self._run(work, self._read_slots)

    async def delete_memory(self, memory_id: str) -> JSON:
        def work() -> BaseModel:
            outcome = self._runtime.memories.delete(self._principal, memory_id)
            self._audit.wrote("delete", [outcome.tombstone.namespace_id])
            return deleted_public(outcome)

        return await self._run(work)

    async def list_namespaces(self) -> JSON:
        def work() -> BaseModel:
            readable = self._runtime.namespaces.list_readable(self._principal)
            data = [namespace_public(namespace, permission) for namespace, permission in readable]
            return NamespacesPublic(data=data, count=len(data))

        return await self._run(work)

    async def create_grant(self, namespace_id: str, body: JSON) -> JSON:
        with _refusals():
            request = GrantCreate.model_validate(body)

        def work() -> BaseModel:
            grant, _created = self._runtime.sharing.grant(self._principal, namespace_id, request)
            return grant_public(grant)

        return await self._run(work)

    async def list_grants(self, namespace_id: str) -> JSON:
        def work() -> BaseModel:
            grants = self._runtime.sharing.list_grants(self._principal, namespace_id)
            data = [grant_public(grant) for grant in grants]
            return GrantsPublic(data=data, count=len(data))

        return await self._run(work)

    async def revoke_grant(self, namespace_id: str, grant_id: str) -> JSON:
        def work() -> BaseModel:
            grant = self._runtime.sharing.revoke(self._principal, namespace_id, grant_id)
            return grant_public(grant)

        return await self._run(work)

    async def _run(
        self, work: Callable[[], BaseModel], limiter: anyio.CapacityLimiter | None = None
    ) -> JSON:
        """`work()` in a worker thread, its answer as the route's JSON body; a domain error as
        the ToolFailure with its code and detail."""
        with _refusals():
            answer = await anyio.to_thread.run_sync(work, limiter=limiter)
        return answer.model_dump(mode="json", by_alias=True)


@contextmanager
def _refusals() -> Iterator[None]:
    """Domain errors and invalid request shapes, as the tool failures the REST API would answer."""
    try:
        yield
    except MemoryServerError as exc:
        raise ToolFailure(exc.code, exc.detail) from exc
    except ValidationError as exc:
        raise ToolFailure("validation_error", describe(exc)) from exc
