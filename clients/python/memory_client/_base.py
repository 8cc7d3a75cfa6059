"""`_BaseClient`: everything the sync and async clients share that is not I/O.

It resolves configuration, turns each endpoint's arguments into a `_Call` (method, path, query,
body, headers and a parser), turns responses into models or exceptions, and decides retries. The
twins (`_client.py`, `_async_client.py`) only send the calls and sleep between attempts.
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    MemoryClientError,
    error_class,
    make_status_error,
)
from ._messages import MessageLike, message_memory
from ._models import (
    AgentCreate,
    AgentPublic,
    AgentsPublic,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    AuditEventsPublic,
    ContextRequest,
    ContextResponse,
    EmbeddingsPublic,
    EventPublic,
    EventsPublic,
    GrantCreate,
    GrantPermission,
    GrantPublic,
    GrantsPublic,
    Health,
    ImportResult,
    MemoriesPublic,
    MemoryBatchCreate,
    MemoryBatchResult,
    MemoryCreate,
    MemoryDeleted,
    MemoryPublic,
    MemoryUpdate,
    MemoryWriteResult,
    NamespaceCreate,
    NamespacePublic,
    NamespacesPublic,
    ProvenancePublic,
    RankingOptions,
    SearchRequest,
    SearchResponse,
    SummaryRunPublic,
    SummaryRunRequest,
    TaskCreate,
    TaskDeleted,
    TaskPublic,
    TasksPublic,
    TaskStatus,
    TaskUpdate,
    TierShares,
    UserForgotten,
    WhoAmI,
)
from ._retry import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, is_retryable
from ._retry import retry_delay as _retry_delay
from ._version import __version__

T = TypeVar("T")
ModelT = TypeVar("ModelT", bound=BaseModel)
HttpClientT = TypeVar("HttpClientT", httpx.Client, httpx.AsyncClient)

URL_ENV: Final = "MEMORY_URL"
API_KEY_ENV: Final = "MEMORY_API_KEY"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT: Final = httpx.Timeout(60.0, connect=5.0)
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

StrOrList = str | Sequence[str] | None
MemoryLike = MemoryCreate | Mapping[str, Any]
RankingLike = RankingOptions | Mapping[str, Any]
TiersLike = TierShares | Mapping[str, Any]


class NotGiven:
    """Marks an argument the caller left out, where None has a meaning of its own."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API call, ready to send: the request parts and how to read a success response."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    success_statuses: frozenset[int] = frozenset()
    content: bytes | None = None  # a raw body (sent instead of `json`)


def _dump(model: BaseModel, *, explicit_nulls: bool = False) -> dict[str, Any]:
    """A request body: None means "not given" and is left out, unless `explicit_nulls`."""
    if explicit_nulls:
        return model.model_dump(mode="json", exclude_unset=True)
    return model.model_dump(mode="json", exclude_none=True)


def _as_list(value: StrOrList) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _as_model(model: type[ModelT], value: ModelT | Mapping[str, Any] | None) -> ModelT | None:
    """A request sub-object given as the model or as a plain mapping of its fields."""
    if value is None or isinstance(value, model):
        return value
    return model.model_validate(dict(value))


def _query(items: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Query parameters: lists repeat the name, datetimes are ISO 8601, None is left out."""
    out: list[tuple[str, str]] = []
    for name, value in items:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, datetime):
                text = item.isoformat()
            elif isinstance(item, bool):
                text = "true" if item else "false"
            else:
                text = str(item)
            out.append((name, text))
    return out


class _BaseClient(Generic[HttpClientT]):
    """Configuration, request building, response parsing, error mapping and retry decisions."""

    _http: HttpClientT
    _initial_retry_delay: float = INITIAL_RETRY_DELAY
    _max_retry_delay: float = MAX_RETRY_DELAY

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        http_client: HttpClientT | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        url = base_url or os.environ.get(URL_ENV) or DEFAULT_BASE_URL
        self._base_url = url.rstrip("/")
        self._api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        self._timeout = (
            timeout
            if timeout is None or isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout)
        )
        self._max_retries = max_retries
        self._owns_http = http_client is None
        self._default_headers = dict(default_headers or {})

    @property
    def base_url(self) -> str:
        """The server's base URL, without a trailing slash."""
        return self._base_url

    @property
    def max_retries(self) -> int:
        """How many times a failed request is retried."""
        return self._max_retries

    def _http_timeout(self) -> httpx.Timeout:
        return self._timeout or DEFAULT_TIMEOUT

    # ---- sending support ---------------------------------------------------------------------

    def _headers(self, call: _Call[Any]) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"memory-client/{__version__} python/{platform.python_version()}",
            **self._default_headers,
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(call.headers)
        if call.method == "POST" and not headers.get(IDEMPOTENCY_HEADER):
            headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())
        return headers

    def _build_request(self, call: _Call[Any]) -> httpx.Request:
        """The httpx request for a call; built once and re-sent as is on every retry."""
        extra: dict[str, Any] = {}
        if self._timeout is not None:
            extra["timeout"] = self._timeout
        if call.content is not None:
            extra["content"] = call.content
        return self._http.build_request(
            call.method,
            self._base_url + call.path,
            params=tuple(call.params),
            json=call.json if call.content is None else None,
            headers=self._headers(call),
            **extra,
        )

    def _connection_error(
        self, exc: httpx.RequestError, request: httpx.Request
    ) -> APIConnectionError:
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"Request timed out: {exc}", request=request)
        return APIConnectionError(f"Connection error: {type(exc).__name__}: {exc}", request=request)

    def _process(self, call: _Call[T], response: httpx.Response) -> T:
        """The parsed body of a success response; the mapped exception for any other."""
        if not (response.is_success or response.status_code in call.success_statuses):
            raise make_status_error(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise APIResponseValidationError(
                f"Response body is not JSON: {exc}", response=response, body=response.text
            ) from exc
        try:
            return call.parse(body)
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"Unexpected response shape: {exc}", response=response, body=body
            ) from exc

    def _retry_delay(self, attempt: int, error: MemoryClientError) -> float | None:
        """Seconds to wait before retry `attempt` (0-based), or None to give up and raise."""
        if attempt >= self._max_retries or not is_retryable(error):
            return None
        response = error.response if isinstance(error, APIStatusError) else None
        return _retry_delay(
            attempt, response, initial=self._initial_retry_delay, maximum=self._max_retry_delay
        )

    # ---- calls: health and identity ----------------------------------------------------------

    def _call_health(self) -> _Call[Health]:
        return _Call("GET", "/healthz", Health.model_validate)

    def _call_ready(self) -> _Call[Health]:
        return _Call("GET", "/readyz", Health.model_validate, success_statuses=frozenset({503}))

    def _call_me(self) -> _Call[WhoAmI]:
        return _Call("GET", "/v1/me", WhoAmI.model_validate)

    # ---- calls: agents and keys --------------------------------------------------------------

    def _call_create_agent(self, name: str, idempotency_key: str | None) -> _Call[AgentPublic]:
        body = _dump(AgentCreate(name=name))
        return _Call(
            "POST",
            "/v1/agents",
            AgentPublic.model_validate,
            json=body,
            headers=_idempotency(idempotency_key),
        )

    def _call_list_agents(self) -> _Call[AgentsPublic]:
        return _Call("GET", "/v1/agents", AgentsPublic.model_validate)

    def _call_get_agent(self, agent_id: str) -> _Call[AgentPublic]:
        return _Call("GET", f"/v1/agents/{_seg(agent_id)}", AgentPublic.model_validate)

    def _call_create_key(
        self,
        agent_id: str,
        *,
        name: str | None,
        read_only: bool | None,
        namespace_ids: Sequence[str] | None,
        expires_at: datetime | None,
        idempotency_key: str | None,
    ) -> _Call[ApiKeyCreated]:
        request = ApiKeyCreate(
            name=name,
            read_only=read_only,
            namespace_ids=list(namespace_ids) if namespace_ids is not None else None,
            expires_at=expires_at,
        )
        return _Call(
            "POST",
            f"/v1/agents/{_seg(agent_id)}/keys",
            ApiKeyCreated.model_validate,
            json=_dump(request),
            headers=_idempotency(idempotency_key),
        )

    def _call_list_keys(self, agent_id: str) -> _Call[ApiKeysPublic]:
        return _Call("GET", f"/v1/agents/{_seg(agent_id)}/keys", ApiKeysPublic.model_validate)

    def _call_revoke_key(self, key_id: str) -> _Call[ApiKeyPublic]:
        return _Call("DELETE", f"/v1/keys/{_seg(key_id)}", ApiKeyPublic.model_validate)

    # ---- calls: namespaces -------------------------------------------------------------------

    def _call_create_namespace(
        self, name: str, description: str | None, idempotency_key: str | None
    ) -> _Call[NamespacePublic]:
        body = _dump(NamespaceCreate(name=name, description=description))
        return _Call(
            "POST",
            "/v1/namespaces",
            NamespacePublic.model_validate,
            json=body,
            headers=_idempotency(idempotency_key),
        )

    def _call_list_namespaces(self) -> _Call[NamespacesPublic]:
        return _Call("GET", "/v1/namespaces", NamespacesPublic.model_validate)

    def _call_get_namespace(self, namespace_id: str) -> _Call[NamespacePublic]:
        return _Call("GET", f"/v1/namespaces/{_seg(namespace_id)}", NamespacePublic.model_validate)

    def _call_list_embeddings(
        self,
        namespace_id: str,
        *,
        kinds: StrOrList,
        statuses: StrOrList,
        include_archived: bool | None,
        user_id: str | None,
        thread_id: str | None,
        query: str | None,
        limit: int | None,
        cursor: str | None,
    ) -> _Call[EmbeddingsPublic]:
        params = _query(
            [
                ("kind", _as_list(kinds)),
                ("status", _as_list(statuses)),
                ("include_archived", include_archived),
                ("user_id", user_id),
                ("thread_id", thread_id),
                ("query", query),
                ("limit", limit),
                ("cursor", cursor),
            ]
        )
        return _Call(
            "GET",
            f"/v1/namespaces/{_seg(namespace_id)}/embeddings",
            EmbeddingsPublic.model_validate,
            params=params,
        )

    # ---- calls: sharing ----------------------------------------------------------------------

    def _call_create_grant(
        self,
        namespace_id: str,
        agent_id: str,
        permission: GrantPermission | str,
        idempotency_key: str | None,
    ) -> _Call[GrantPublic]:
        body = _dump(GrantCreate(agent_id=agent_id, permission=str(permission)))
        return _Call(
            "POST",
            f"/v1/namespaces/{_seg(namespace_id)}/grants",
            GrantPublic.model_validate,
            json=body,
            headers=_idempotency(idempotency_key),
        )

    def _call_list_grants(self, namespace_id: str) -> _Call[GrantsPublic]:
        return _Call(
            "GET", f"/v1/namespaces/{_seg(namespace_id)}/grants", GrantsPublic.model_validate
        )

    def _call_revoke_grant(self, namespace_id: str, grant_id: str) -> _Call[GrantPublic]:
        return _Call(
            "DELETE",
            f"/v1/namespaces/{_seg(namespace_id)}/grants/{_seg(grant_id)}",
            GrantPublic.model_validate,
        )

    def _call_list_audit_events(
        self, namespace_id: str, *, agent_id: str | None, limit: int | None, cursor: str | None
    ) -> _Call[AuditEventsPublic]:
        params = _query([("agent_id", agent_id), ("limit", limit), ("cursor", cursor)])
        return _Call(
            "GET",
            f"/v1/namespaces/{_seg(namespace_id)}/audit",
            AuditEventsPublic.model_validate,
            params=params,
        )

    # ---- calls: memories ---------------------------------------------------------------------

    def _call_create_memory(
        self,
        content: str,
        *,
        namespace_id: str | None,
        user_id: str | None,
        thread_id: str | None,
        kind: str | None,
        role: str | None,
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
        importance: float | None,
        key: str | None,
        created_at: datetime | None,
        expires_at: datetime | None,
        idempotency_key: str | None,
    ) -> _Call[MemoryWriteResult]:
        memory = MemoryCreate(
            content=content,
            namespace_id=namespace_id,
            user_id=user_id,
            thread_id=thread_id,
            kind=kind,
            role=role,
            metadata=dict(metadata) if metadata is not None else None,
            tags=list(tags) if tags is not None else None,
            importance=importance,
            key=key,
            created_at=created_at,
            expires_at=expires_at,
        )
        return _Call(
            "POST",
            "/v1/memories",
            MemoryWriteResult.model_validate,
            json=_dump(memory),
            headers=_idempotency(idempotency_key),
        )

    def _call_create_memories(
        self, memories: Sequence[MemoryLike], idempotency_key: str | None
    ) -> _Call[MemoryBatchResult]:
        items = [
            m if isinstance(m, MemoryCreate) else MemoryCreate.model_validate(dict(m))
            for m in memories
        ]
        body = _dump(MemoryBatchCreate(memories=items))
        return _Call(
            "POST",
            "/v1/memories/batch",
            MemoryBatchResult.model_validate,
            json=body,
            headers=_idempotency(idempotency_key),
        )

    def _call_get_memory(self, memory_id: str) -> _Call[MemoryPublic]:
        return _Call("GET", f"/v1/memories/{_seg(memory_id)}", MemoryPublic.model_validate)

    def _call_list_memories(
        self,
        *,
        namespace_ids: StrOrList,
        user_id: str | None,
        thread_id: str | None,
        kinds: StrOrList,
        tags: StrOrList,
        statuses: StrOrList,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int | None,
        cursor: str | None,
    ) -> _Call[MemoriesPublic]:
        params = _query(
            [
                ("namespace_id", _as_list(namespace_ids)),
                ("user_id", user_id),
                ("thread_id", thread_id),
                ("kind", _as_list(kinds)),
                ("tag", _as_list(tags)),
                ("status", _as_list(statuses)),
                ("created_after", created_after),
                ("created_before", created_before),
                ("limit", limit),
                ("cursor", cursor),
            ]
        )
        return _Call("GET", "/v1/memories", MemoriesPublic.model_validate, params=params)

    def _call_update_memory(
        self,
        memory_id: str,
        *,
        version: int,
        content: str | None,
        metadata: Mapping[str, Any] | None,
        tags: Sequence[str] | None,
        importance: float | None,
        status: str | None,
        expires_at: datetime | NotGiven | None,
    ) -> _Call[MemoryPublic]:
        given: dict[str, Any] = {
            "content": content,
            "metadata": dict(metadata) if metadata is not None else None,
            "tags": list(tags) if tags is not None else None,
            "importance": importance,
            "status": status,
        }
        fields = {name: value for name, value in given.items() if value is not None}
        if not isinstance(expires_at, NotGiven):
            fields["expires_at"] = expires_at  # None clears the expiry
        change = MemoryUpdate(**fields)
        return _Call(
            "PATCH",
            f"/v1/memories/{_seg(memory_id)}",
            MemoryPublic.model_validate,
            json=_dump(change, explicit_nulls=True),
            headers={"If-Match": f'"{int(version)}"'},
        )

    def _call_delete_memory(self, memory_id: str) -> _Call[MemoryDeleted]:
        return _Call("DELETE", f"/v1/memories/{_seg(memory_id)}", MemoryDeleted.model_validate)

    def _call_get_provenance(self, memory_id: str) -> _Call[ProvenancePublic]:
        return _Call(
            "GET", f"/v1/memories/{_seg(memory_id)}/provenance", ProvenancePublic.model_validate
        )

    def _call_forget_user(self, user_id: str, *, namespace_id: str) -> _Call[UserForgotten]:
        return _Call(
            "DELETE",
            f"/v1/users/{_seg(user_id)}/memories",
            UserForgotten.model_validate,
            params=_query([("namespace_id", namespace_id)]),
        )

    # ---- calls: summaries --------------------------------------------------------------------

    def _call_run_summaries(
        self, namespace_id: str | None, *, dry_run: bool, idempotency_key: str | None
    ) -> _Call[SummaryRunPublic]:
        request = SummaryRunRequest(namespace_id=namespace_id, dry_run=dry_run)
        return _Call(
            "POST",
            "/v1/summaries/run",
            SummaryRunPublic.model_validate,
            json=_dump(request),
            headers=_idempotency(idempotency_key),
        )

    def _call_get_summary_run(self, run_id: str) -> _Call[SummaryRunPublic]:
        return _Call("GET", f"/v1/summaries/runs/{_seg(run_id)}", SummaryRunPublic.model_validate)

    # ---- calls: the event log, export and import ---------------------------------------------

    def _call_list_events(
        self, *, after: str | int | None, namespace_ids: StrOrList, limit: int | None
    ) -> _Call[EventsPublic]:
        params = _query(
            [("after", after), ("namespace_id", _as_list(namespace_ids)), ("limit", limit)]
        )
        return _Call("GET", "/v1/events", EventsPublic.model_validate, params=params)

    def _call_stream_events(
        self, *, after: str | int | None, namespace_ids: StrOrList, last_event_id: str | None
    ) -> _Call[None]:
        """The request that opens an event stream (read with `_SSEParser`, not `parse`)."""
        params = _query([("after", after), ("namespace_id", _as_list(namespace_ids))])
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return _Call("GET", "/v1/events/stream", _no_body, params=params, headers=headers)

    def _call_export(
        self, namespace_id: str, *, format: str, include_embeddings: bool
    ) -> _Call[None]:
        params = _query(
            [
                ("namespace_id", namespace_id),
                ("format", format),
                ("include_embeddings", include_embeddings),
            ]
        )
        return _Call("GET", "/v1/export", _no_body, params=params, headers={"Accept": "*/*"})

    def _call_import_records(
        self,
        namespace_id: str,
        records: Iterable[str | Mapping[str, Any]],
        idempotency_key: str | None,
    ) -> _Call[ImportResult]:
        lines = [
            record.rstrip("\n") if isinstance(record, str) else json.dumps(dict(record))
            for record in records
        ]
        return _Call(
            "POST",
            "/v1/import",
            ImportResult.model_validate,
            params=_query([("namespace_id", namespace_id)]),
            headers={"Content-Type": "application/x-ndjson", **_idempotency(idempotency_key)},
            content=("\n".join(lines) + "\n").encode(),
        )

    # ---- calls: search, conversation, context ------------------------------------------------

    def _call_search(
        self,
        query: str,
        *,
        k: int | None,
        namespace_ids: StrOrList,
        user_id: str | None,
        thread_id: str | None,
        kinds: StrOrList,
        tags: StrOrList,
        statuses: StrOrList,
        created_after: datetime | None,
        created_before: datetime | None,
        include_archived: bool | None,
        min_similarity: float | None,
        ranking: RankingLike | None,
    ) -> _Call[SearchResponse]:
        request = SearchRequest(
            query=query,
            k=k,
            namespace_ids=_as_list(namespace_ids),
            user_id=user_id,
            thread_id=thread_id,
            kinds=_as_list(kinds),
            tags=_as_list(tags),
            statuses=_as_list(statuses),
            created_after=created_after,
            created_before=created_before,
            include_archived=include_archived,
            min_similarity=min_similarity,
            ranking=_as_model(RankingOptions, ranking),
        )
        return _Call("POST", "/v1/search", SearchResponse.model_validate, json=_dump(request))

    def _call_remember(
        self,
        messages: Sequence[MessageLike],
        *,
        thread_id: str | None,
        user_id: str | None,
        namespace_id: str | None,
        idempotency_key: str | None,
    ) -> _Call[MemoryBatchResult] | None:
        """The batch write for `remember()`; None when no message has text to store."""
        items = [
            item
            for message in messages
            if (
                item := message_memory(
                    message, thread_id=thread_id, user_id=user_id, namespace_id=namespace_id
                )
            )
            is not None
        ]
        return self._call_create_memories(items, idempotency_key) if items else None

    def _empty_batch(self) -> MemoryBatchResult:
        """What `remember()` returns when no message had text to store (no request is sent)."""
        return MemoryBatchResult(results=[], created=0, deduplicated=0)

    def _call_context(
        self,
        query: str,
        *,
        budget_tokens: int,
        model: str | None,
        namespace_ids: StrOrList,
        user_id: str | None,
        thread_id: str | None,
        kinds: StrOrList,
        tags: StrOrList,
        statuses: StrOrList,
        created_after: datetime | None,
        created_before: datetime | None,
        include_archived: bool | None,
        ranking: RankingLike | None,
        tiers: TiersLike | None,
        max_thread_messages: int | None,
        include_tasks: bool | None,
        max_pending_tasks: int | None,
        max_candidates: int | None,
    ) -> _Call[ContextResponse]:
        request = ContextRequest(
            query=query,
            budget_tokens=budget_tokens,
            model=model,
            namespace_ids=_as_list(namespace_ids),
            user_id=user_id,
            thread_id=thread_id,
            kinds=_as_list(kinds),
            tags=_as_list(tags),
            statuses=_as_list(statuses),
            created_after=created_after,
            created_before=created_before,
            include_archived=include_archived,
            ranking=_as_model(RankingOptions, ranking),
            tiers=_as_model(TierShares, tiers),
            max_thread_messages=max_thread_messages,
            include_tasks=include_tasks,
            max_pending_tasks=max_pending_tasks,
            max_candidates=max_candidates,
        )
        return _Call("POST", "/v1/context", ContextResponse.model_validate, json=_dump(request))

    # ---- calls: tasks --------------------------------------------------------------------------

    def _call_create_task(
        self,
        title: str,
        *,
        namespace_id: str | None,
        description: str | None,
        context: Mapping[str, Any] | None,
        priority: int | None,
        user_id: str | None,
        thread_id: str | None,
        parent_task_id: str | None,
        status: TaskStatus | str | None,
        idempotency_key: str | None,
    ) -> _Call[TaskPublic]:
        task = TaskCreate(
            title=title,
            namespace_id=namespace_id,
            description=description,
            context=dict(context) if context is not None else None,
            priority=priority,
            user_id=user_id,
            thread_id=thread_id,
            parent_task_id=parent_task_id,
            status=status,
        )
        return _Call(
            "POST",
            "/v1/tasks",
            TaskPublic.model_validate,
            json=_dump(task),
            headers=_idempotency(idempotency_key),
        )

    def _call_list_tasks(
        self,
        *,
        namespace_ids: StrOrList,
        agent_id: str | None,
        user_id: str | None,
        thread_id: str | None,
        statuses: StrOrList,
        parent_task_id: str | None,
        limit: int | None,
        cursor: str | None,
    ) -> _Call[TasksPublic]:
        params = _query(
            [
                ("namespace_id", _as_list(namespace_ids)),
                ("agent_id", agent_id),
                ("user_id", user_id),
                ("thread_id", thread_id),
                ("status", _as_list(statuses)),
                ("parent_task_id", parent_task_id),
                ("limit", limit),
                ("cursor", cursor),
            ]
        )
        return _Call("GET", "/v1/tasks", TasksPublic.model_validate, params=params)

    def _call_get_task(self, task_id: str) -> _Call[TaskPublic]:
        return _Call("GET", f"/v1/tasks/{_seg(task_id)}", TaskPublic.model_validate)

    def _call_update_task(
        self,
        task_id: str,
        *,
        version: int,
        title: str | None,
        description: str | NotGiven | None,
        context: Mapping[str, Any] | None,
        priority: int | None,
        status: TaskStatus | str | None,
        result: Any,
    ) -> _Call[TaskPublic]:
        given: dict[str, Any] = {
            "title": title,
            "context": dict(context) if context is not None else None,
            "priority": priority,
            "status": status,
        }
        fields = {name: value for name, value in given.items() if value is not None}
        if not isinstance(description, NotGiven):
            fields["description"] = description  # None clears it
        if not isinstance(result, NotGiven):
            fields["result"] = result
        change = TaskUpdate(**fields)
        return _Call(
            "PATCH",
            f"/v1/tasks/{_seg(task_id)}",
            TaskPublic.model_validate,
            json=_dump(change, explicit_nulls=True),
            headers={"If-Match": f'"{int(version)}"'},
        )

    def _call_delete_task(self, task_id: str) -> _Call[TaskDeleted]:
        return _Call("DELETE", f"/v1/tasks/{_seg(task_id)}", TaskDeleted.model_validate)


def _no_body(_: Any) -> None:
    return None


class _SSEParser:
    """Turns the lines of a `text/event-stream` body into events (the SSE framing rules)."""

    def __init__(self) -> None:
        self.retry_seconds = 2.0
        self._event: str | None = None
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        """Take one line; return (event name, data, id) when it completes an event."""
        if line == "":
            if not self._data:
                self._event = None
                return None
            event = (self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data, self._id = None, [], None
            return event
        if line.startswith(":"):
            return None  # a comment: the server's heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_seconds = int(value) / 1000
        return None


def _stream_event(frame: tuple[str, str, str | None], response: httpx.Response) -> EventPublic:
    """The event a stream frame carries; an `error` frame raises the error it reports."""
    name, data, _ = frame
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise APIResponseValidationError(
            f"Event data is not JSON: {exc}", response=response, body=data
        ) from exc
    if name == "error":
        status = body.get("status") if isinstance(body, dict) else None
        status = status if isinstance(status, int) else 500
        raise error_class(status)(
            status,
            body.get("code") if isinstance(body, dict) else None,
            body.get("detail") if isinstance(body, dict) else None,
            response.headers.get("X-Request-ID"),
            body,
        )
    try:
        return EventPublic.model_validate(body)
    except ValidationError as exc:
        raise APIResponseValidationError(
            f"Unexpected event shape: {exc}", response=response, body=body
        ) from exc


def _idempotency(key: str | None) -> dict[str, str]:
    return {IDEMPOTENCY_HEADER: key} if key else {}


def _seg(value: str) -> str:
    """A path segment, percent-encoded so an id can never change the path."""
    return quote(str(value), safe="")
