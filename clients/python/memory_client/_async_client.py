"""`AsyncMemoryClient`: the asyncio twin of `MemoryClient`, method for method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from ._base import (
    NOT_GIVEN,
    MemoryLike,
    NotGiven,
    RankingLike,
    StrOrList,
    TiersLike,
    _BaseClient,
    _Call,
    _SSEParser,
    _stream_event,
)
from ._errors import MemoryClientError, make_status_error
from ._messages import MessageLike
from ._models import (
    AgentPublic,
    AgentsPublic,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    AuditEventPublic,
    AuditEventsPublic,
    ContextResponse,
    EmbeddingsPublic,
    EventPublic,
    EventsPublic,
    GrantPermission,
    GrantPublic,
    GrantsPublic,
    Health,
    ImportResult,
    MemoriesPublic,
    MemoryBatchResult,
    MemoryDeleted,
    MemoryPublic,
    MemoryWriteResult,
    NamespacePublic,
    NamespacesPublic,
    ProvenancePublic,
    SearchResponse,
    SummaryRunPublic,
    TaskDeleted,
    TaskPublic,
    TasksPublic,
    TaskStatus,
    UserForgotten,
    WhoAmI,
)
from ._retry import DEFAULT_MAX_RETRIES

T = TypeVar("T")


class AsyncMemoryClient(_BaseClient[httpx.AsyncClient]):
    """Asynchronous client for memory-server; use `async with` or call `aclose()`."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )
        self._http = (
            http_client
            if http_client is not None
            else httpx.AsyncClient(timeout=self._http_timeout())
        )

    async def aclose(self) -> None:
        """Close the HTTP connections, unless the httpx client was passed in by the caller."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _request(self, call: _Call[T]) -> T:
        request = self._build_request(call)
        attempt = 0
        while True:
            try:
                try:
                    response = await self._http.send(request)
                except httpx.RequestError as exc:
                    raise self._connection_error(exc, request) from exc
                return self._process(call, response)
            except MemoryClientError as error:
                delay = self._retry_delay(attempt, error)
                if delay is None:
                    raise
            attempt += 1
            await asyncio.sleep(delay)

    # ---- health and identity -----------------------------------------------------------------

    async def health(self) -> Health:
        """Liveness: the server process is up (`GET /healthz`)."""
        return await self._request(self._call_health())

    async def ready(self) -> Health:
        """Readiness: SQL and the vector store answer; `status` is "unavailable" when not."""
        return await self._request(self._call_ready())

    async def me(self) -> WhoAmI:
        """The caller as the server sees it: agent, key, admin flag and namespace limits."""
        return await self._request(self._call_me())

    # ---- agents and keys (admin) -------------------------------------------------------------

    async def create_agent(self, name: str, *, idempotency_key: str | None = None) -> AgentPublic:
        """Create an agent with its private default namespace (admin key)."""
        return await self._request(self._call_create_agent(name, idempotency_key))

    async def list_agents(self) -> AgentsPublic:
        """Every agent (admin key)."""
        return await self._request(self._call_list_agents())

    async def get_agent(self, agent_id: str) -> AgentPublic:
        """One agent by id (admin key)."""
        return await self._request(self._call_get_agent(agent_id))

    async def create_key(
        self,
        agent_id: str,
        *,
        name: str | None = None,
        read_only: bool | None = None,
        namespace_ids: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> ApiKeyCreated:
        """Create an API key for an agent; the secret `key` is only in this response (admin)."""
        return await self._request(
            self._call_create_key(
                agent_id,
                name=name,
                read_only=read_only,
                namespace_ids=namespace_ids,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
            )
        )

    async def list_keys(self, agent_id: str) -> ApiKeysPublic:
        """An agent's API keys, without their secrets, with the count (admin key)."""
        return await self._request(self._call_list_keys(agent_id))

    async def revoke_key(self, key_id: str) -> ApiKeyPublic:
        """Revoke an API key now: the admin may revoke any key, an agent its own."""
        return await self._request(self._call_revoke_key(key_id))

    # ---- namespaces --------------------------------------------------------------------------

    async def create_namespace(
        self, name: str, *, description: str | None = None, idempotency_key: str | None = None
    ) -> NamespacePublic:
        """Create a namespace owned by the calling agent."""
        return await self._request(self._call_create_namespace(name, description, idempotency_key))

    async def list_namespaces(self) -> NamespacesPublic:
        """Every namespace the caller may read, with the caller's permission in each."""
        return await self._request(self._call_list_namespaces())

    async def get_namespace(self, namespace_id: str) -> NamespacePublic:
        """One namespace the caller may read."""
        return await self._request(self._call_get_namespace(namespace_id))

    async def list_embeddings(
        self,
        namespace_id: str,
        *,
        kinds: StrOrList = None,
        statuses: StrOrList = None,
        include_archived: bool | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        query: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> EmbeddingsPublic:
        """A page of the namespace's memories with their stored embeddings, newest first.

        Active memories only unless `statuses` or `include_archived` say otherwise; `query` adds
        that text's embedding (`.query`), to place it on a map of the memories.
        """
        return await self._request(
            self._call_list_embeddings(
                namespace_id,
                kinds=kinds,
                statuses=statuses,
                include_archived=include_archived,
                user_id=user_id,
                thread_id=thread_id,
                query=query,
                limit=limit,
                cursor=cursor,
            )
        )

    # ---- sharing: grants and the audit trail (namespace owner or admin) ---------------------

    async def create_grant(
        self,
        namespace_id: str,
        agent_id: str,
        permission: GrantPermission | str,
        *,
        idempotency_key: str | None = None,
    ) -> GrantPublic:
        """Share a namespace with an agent ("read" or "write"), or change its permission there."""
        return await self._request(
            self._call_create_grant(namespace_id, agent_id, permission, idempotency_key)
        )

    async def list_grants(self, namespace_id: str) -> GrantsPublic:
        """The agents a namespace is shared with and their permissions, oldest grant first."""
        return await self._request(self._call_list_grants(namespace_id))

    async def revoke_grant(self, namespace_id: str, grant_id: str) -> GrantPublic:
        """Stop sharing: the agent loses access to the namespace on its next request."""
        return await self._request(self._call_revoke_grant(namespace_id, grant_id))

    async def list_audit_events(
        self,
        namespace_id: str,
        *,
        agent_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> AuditEventsPublic:
        """One page of who else read or wrote the namespace, newest first; then `next_cursor`."""
        return await self._request(
            self._call_list_audit_events(
                namespace_id, agent_id=agent_id, limit=limit, cursor=cursor
            )
        )

    async def iter_audit_events(
        self,
        namespace_id: str,
        *,
        agent_id: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[AuditEventPublic]:
        """Every audit event of the namespace, newest first, fetching pages as iteration needs."""
        cursor: str | None = None
        while True:
            page = await self.list_audit_events(
                namespace_id, agent_id=agent_id, limit=page_size, cursor=cursor
            )
            for event in page.data:
                yield event
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # ---- memories ----------------------------------------------------------------------------

    async def create_memory(
        self,
        content: str,
        *,
        namespace_id: str | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        kind: str | None = None,
        role: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        key: str | None = None,
        created_at: datetime | None = None,
        expires_at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> MemoryWriteResult:
        """Store one memory; `created` is False when an identical one already existed."""
        return await self._request(
            self._call_create_memory(
                content,
                namespace_id=namespace_id,
                user_id=user_id,
                thread_id=thread_id,
                kind=kind,
                role=role,
                metadata=metadata,
                tags=tags,
                importance=importance,
                key=key,
                created_at=created_at,
                expires_at=expires_at,
                idempotency_key=idempotency_key,
            )
        )

    async def create_memories(
        self, memories: Sequence[MemoryLike], *, idempotency_key: str | None = None
    ) -> MemoryBatchResult:
        """Store many memories in one transaction: all of them or none."""
        return await self._request(self._call_create_memories(memories, idempotency_key))

    async def get_memory(self, memory_id: str) -> MemoryPublic:
        """One memory by id."""
        return await self._request(self._call_get_memory(memory_id))

    async def list_memories(
        self,
        *,
        namespace_ids: StrOrList = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        kinds: StrOrList = None,
        tags: StrOrList = None,
        statuses: StrOrList = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> MemoriesPublic:
        """One page of memories, newest first; pass `next_cursor` as `cursor` for the next."""
        return await self._request(
            self._call_list_memories(
                namespace_ids=namespace_ids,
                user_id=user_id,
                thread_id=thread_id,
                kinds=kinds,
                tags=tags,
                statuses=statuses,
                created_after=created_after,
                created_before=created_before,
                limit=limit,
                cursor=cursor,
            )
        )

    async def iter_memories(
        self,
        *,
        namespace_ids: StrOrList = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        kinds: StrOrList = None,
        tags: StrOrList = None,
        statuses: StrOrList = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[MemoryPublic]:
        """Every matching memory, newest first, fetching pages as the iteration reaches them."""
        cursor: str | None = None
        while True:
            page = await self.list_memories(
                namespace_ids=namespace_ids,
                user_id=user_id,
                thread_id=thread_id,
                kinds=kinds,
                tags=tags,
                statuses=statuses,
                created_after=created_after,
                created_before=created_before,
                limit=page_size,
                cursor=cursor,
            )
            for memory in page.data:
                yield memory
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def update_memory(
        self,
        memory_id: str,
        *,
        version: int,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        status: str | None = None,
        expires_at: datetime | NotGiven | None = NOT_GIVEN,
    ) -> MemoryPublic:
        """Change a memory still at `version` (else PreconditionFailedError); None clears expiry."""
        return await self._request(
            self._call_update_memory(
                memory_id,
                version=version,
                content=content,
                metadata=metadata,
                tags=tags,
                importance=importance,
                status=status,
                expires_at=expires_at,
            )
        )

    async def delete_memory(self, memory_id: str) -> MemoryDeleted:
        """Delete a memory for good, and the summaries condensed from it (`also_deleted`)."""
        return await self._request(self._call_delete_memory(memory_id))

    async def get_provenance(self, memory_id: str) -> ProvenancePublic:
        """A summary and the tree of entries it was condensed from, down to the originals."""
        return await self._request(self._call_get_provenance(memory_id))

    async def forget_user(self, user_id: str, *, namespace_id: str) -> UserForgotten:
        """Delete every memory about a user in a namespace, summaries made from them included."""
        return await self._request(self._call_forget_user(user_id, namespace_id=namespace_id))

    # ---- summaries ---------------------------------------------------------------------------

    async def run_summaries(
        self,
        namespace_id: str | None,
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> SummaryRunPublic:
        """Condense a namespace's old memories into summaries now (None: every namespace, admin).

        With `dry_run`, `plan` lists the groups it would condense and nothing is written.
        ConflictError while another run is in progress.
        """
        return await self._request(
            self._call_run_summaries(namespace_id, dry_run=dry_run, idempotency_key=idempotency_key)
        )

    async def get_summary_run(self, run_id: str) -> SummaryRunPublic:
        """A summarizer run's record, by the `id` `run_summaries` returned."""
        return await self._request(self._call_get_summary_run(run_id))

    # ---- the event log, export and import ----------------------------------------------------

    async def list_events(
        self,
        *,
        after: str | int | None = None,
        namespace_ids: StrOrList = None,
        limit: int | None = None,
    ) -> EventsPublic:
        """One page of events after the cursor `after`, oldest first; then `next_cursor`."""
        return await self._request(
            self._call_list_events(after=after, namespace_ids=namespace_ids, limit=limit)
        )

    async def iter_events(
        self,
        *,
        after: str | int | None = None,
        namespace_ids: StrOrList = None,
        page_size: int | None = None,
    ) -> AsyncIterator[EventPublic]:
        """Every event after `after` up to now, oldest first, fetching pages as needed."""
        cursor = after
        while True:
            page = await self.list_events(
                after=cursor, namespace_ids=namespace_ids, limit=page_size
            )
            for event in page.data:
                yield event
            if not page.has_more:
                return
            cursor = page.next_cursor

    async def stream_events(
        self,
        *,
        after: str | int | None = None,
        namespace_ids: StrOrList = None,
        last_event_id: str | int | None = None,
        reconnect: bool = True,
    ) -> AsyncIterator[EventPublic]:
        """Events as they happen (server-sent events), from now on or after `after`.

        When the server ends the stream (a restart) or the connection drops, it reconnects and
        resumes after the last event it yielded (`reconnect=False` returns instead). Losing access
        raises: NotFoundError for a namespace no longer readable, AuthenticationError for a
        revoked key. Stop by breaking out of the loop.
        """
        resume = str(last_event_id) if last_event_id is not None else None
        attempt = 0
        while True:
            call = self._call_stream_events(
                after=None if resume is not None else after,
                namespace_ids=namespace_ids,
                last_event_id=resume,
            )
            request = self._build_request(call)
            parser = _SSEParser()
            try:
                response = await self._open_stream(request)
                try:
                    async for line in response.aiter_lines():
                        frame = parser.feed(line)
                        if frame is None:
                            continue
                        attempt = 0
                        event = _stream_event(frame, response)
                        resume = str(event.id)
                        yield event
                finally:
                    await response.aclose()
            except httpx.RequestError as exc:
                error = self._connection_error(exc, request)
                delay = self._retry_delay(attempt, error)
                if delay is None:
                    raise error from exc
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if not reconnect:
                return
            await asyncio.sleep(parser.retry_seconds)

    async def export(
        self, namespace_id: str, *, format: str = "jsonl", include_embeddings: bool = False
    ) -> AsyncIterator[str]:
        """Stream a namespace's export line by line (no line ends): JSONL records or Markdown.

        The JSONL lines are what `import_records` takes back.
        """
        call = self._call_export(namespace_id, format=format, include_embeddings=include_embeddings)
        request = self._build_request(call)
        try:
            response = await self._open_stream(request)
        except httpx.RequestError as exc:
            raise self._connection_error(exc, request) from exc
        try:
            async for line in response.aiter_lines():
                yield line
        finally:
            await response.aclose()

    async def import_records(
        self,
        namespace_id: str,
        records: Iterable[str | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> ImportResult:
        """Import JSONL export records (lines, or dicts) into a namespace; idempotent."""
        return await self._request(
            self._call_import_records(namespace_id, records, idempotency_key)
        )

    async def _open_stream(self, request: httpx.Request) -> httpx.Response:
        response = await self._http.send(request, stream=True)
        if not response.is_success:
            await response.aread()
            await response.aclose()
            raise make_status_error(response)
        return response

    # ---- search, conversation, context -------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        k: int | None = None,
        namespace_ids: StrOrList = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        kinds: StrOrList = None,
        tags: StrOrList = None,
        statuses: StrOrList = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        include_archived: bool | None = None,
        min_similarity: float | None = None,
        ranking: RankingLike | None = None,
    ) -> SearchResponse:
        """The `k` best memories for `query` within the filters, by hybrid score, best first."""
        return await self._request(
            self._call_search(
                query,
                k=k,
                namespace_ids=namespace_ids,
                user_id=user_id,
                thread_id=thread_id,
                kinds=kinds,
                tags=tags,
                statuses=statuses,
                created_after=created_after,
                created_before=created_before,
                include_archived=include_archived,
                min_similarity=min_similarity,
                ranking=ranking,
            )
        )

    async def remember(
        self,
        messages: Sequence[MessageLike],
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        namespace_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> MemoryBatchResult:
        """Store chat messages (`{"role", "content"}`) as `kind="message"` memories in one batch."""
        call = self._call_remember(
            messages,
            thread_id=thread_id,
            user_id=user_id,
            namespace_id=namespace_id,
            idempotency_key=idempotency_key,
        )
        return await self._request(call) if call is not None else self._empty_batch()

    async def context(
        self,
        query: str,
        *,
        budget_tokens: int,
        model: str | None = None,
        namespace_ids: StrOrList = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        kinds: StrOrList = None,
        tags: StrOrList = None,
        statuses: StrOrList = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        include_archived: bool | None = None,
        ranking: RankingLike | None = None,
        tiers: TiersLike | None = None,
        max_thread_messages: int | None = None,
        include_tasks: bool | None = None,
        max_pending_tasks: int | None = None,
        max_candidates: int | None = None,
    ) -> ContextResponse:
        """What to know for `query`, packed into at most `budget_tokens` tokens of `model`.

        With a `thread_id` (or `include_tasks=True`) it starts with the caller's task in progress
        and its next pending tasks (the tier "tasks" in `items`).
        """
        return await self._request(
            self._call_context(
                query,
                budget_tokens=budget_tokens,
                model=model,
                namespace_ids=namespace_ids,
                user_id=user_id,
                thread_id=thread_id,
                kinds=kinds,
                tags=tags,
                statuses=statuses,
                created_after=created_after,
                created_before=created_before,
                include_archived=include_archived,
                ranking=ranking,
                tiers=tiers,
                max_thread_messages=max_thread_messages,
                include_tasks=include_tasks,
                max_pending_tasks=max_pending_tasks,
                max_candidates=max_candidates,
            )
        )

    # ---- tasks -------------------------------------------------------------------------------

    async def create_task(
        self,
        title: str,
        *,
        namespace_id: str | None = None,
        description: str | None = None,
        context: Mapping[str, Any] | None = None,
        priority: int | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        parent_task_id: str | None = None,
        status: TaskStatus | str | None = None,
        idempotency_key: str | None = None,
    ) -> TaskPublic:
        """Plan a task for the calling agent, or start it at once (`status="in_progress"`).

        ConflictError (`another_task_in_progress`, the holder in `error.body["task"]`) when the
        agent already has a task in progress in that namespace and thread.
        """
        return await self._request(
            self._call_create_task(
                title,
                namespace_id=namespace_id,
                description=description,
                context=context,
                priority=priority,
                user_id=user_id,
                thread_id=thread_id,
                parent_task_id=parent_task_id,
                status=status,
                idempotency_key=idempotency_key,
            )
        )

    async def get_task(self, task_id: str) -> TaskPublic:
        """One task by id."""
        return await self._request(self._call_get_task(task_id))

    async def list_tasks(
        self,
        *,
        namespace_ids: StrOrList = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        statuses: StrOrList = None,
        parent_task_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TasksPublic:
        """One page of tasks, oldest first; pass `next_cursor` as `cursor` for the next."""
        return await self._request(
            self._call_list_tasks(
                namespace_ids=namespace_ids,
                agent_id=agent_id,
                user_id=user_id,
                thread_id=thread_id,
                statuses=statuses,
                parent_task_id=parent_task_id,
                limit=limit,
                cursor=cursor,
            )
        )

    async def iter_tasks(
        self,
        *,
        namespace_ids: StrOrList = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        thread_id: str | None = None,
        statuses: StrOrList = None,
        parent_task_id: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[TaskPublic]:
        """Every matching task, oldest first, fetching pages as the iteration reaches them."""
        cursor: str | None = None
        while True:
            page = await self.list_tasks(
                namespace_ids=namespace_ids,
                agent_id=agent_id,
                user_id=user_id,
                thread_id=thread_id,
                statuses=statuses,
                parent_task_id=parent_task_id,
                limit=page_size,
                cursor=cursor,
            )
            for task in page.data:
                yield task
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def update_task(
        self,
        task_id: str,
        *,
        version: int,
        title: str | None = None,
        description: str | NotGiven | None = NOT_GIVEN,
        context: Mapping[str, Any] | None = None,
        priority: int | None = None,
        status: TaskStatus | str | None = None,
        result: Any = NOT_GIVEN,
    ) -> TaskPublic:
        """Change a task still at `version` (else PreconditionFailedError); `status` moves it
        along the allowed transitions (else ConflictError). Asking for what already is, such as
        completing a completed task with the same `result`, returns it unchanged: safe to retry.
        """
        return await self._request(
            self._call_update_task(
                task_id,
                version=version,
                title=title,
                description=description,
                context=context,
                priority=priority,
                status=status,
                result=result,
            )
        )

    async def delete_task(self, task_id: str) -> TaskDeleted:
        """Delete a task for good (ConflictError while it has subtasks)."""
        return await self._request(self._call_delete_task(task_id))
