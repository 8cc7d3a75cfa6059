"""The SDK's shape without a server: exports, sync/async parity, imports, models, error mapping."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import memory_client
import pytest
from memory_client import (
    APIStatusError,
    AsyncMemoryClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ContextItem,
    ContextResponse,
    DroppedItem,
    InternalServerError,
    MemoryClient,
    MemoryPublic,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    RankingOptions,
    RankingWeights,
    RateLimitError,
    ScoreComponents,
    UnprocessableEntityError,
)
from memory_client._errors import error_class, make_status_error
from memory_client._retry import backoff_delay, parse_retry_after, retry_delay

from tests.sdk.loopback_http import Reply, script

EXPECTED_EXPORTS = {
    # clients
    "MemoryClient",
    "AsyncMemoryClient",
    "NOT_GIVEN",
    "NotGiven",
    "__version__",
    # errors
    "MemoryClientError",
    "APIConnectionError",
    "APITimeoutError",
    "APIResponseValidationError",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PreconditionFailedError",
    "PayloadTooLargeError",
    "UnprocessableEntityError",
    "PreconditionRequiredError",
    "RateLimitError",
    "InternalServerError",
    # models
    "AgentPublic",
    "AgentsPublic",
    "ApiKeyCreated",
    "ApiKeyPublic",
    "ApiKeysPublic",
    "WhoAmI",
    "NamespacePublic",
    "NamespacesPublic",
    "GrantPermission",
    "GrantPublic",
    "GrantsPublic",
    "AuditEventPublic",
    "AuditEventsPublic",
    "MemoryCreate",
    "MemoryPublic",
    "MemoriesPublic",
    "MemoryWriteResult",
    "MemoryBatchResult",
    "MemoryDeleted",
    "ProvenancePublic",
    "UserForgotten",
    "EmbeddingsPublic",
    "MemoryEmbedding",
    "QueryEmbedding",
    "SummaryRunPublic",
    "SummaryGroupPlan",
    "SummaryFailure",
    "MemoryStatus",
    "Role",
    "RankingOptions",
    "RankingWeights",
    "ScoreComponents",
    "SearchHit",
    "SearchResponse",
    "Message",
    "TierShares",
    "ContextItem",
    "DroppedItem",
    "ContextResponse",
    "ErrorBody",
    "EventPublic",
    "EventsPublic",
    "ImportConflict",
    "ImportResult",
    "Health",
    "TaskStatus",
    "TaskPublic",
    "TasksPublic",
    "TaskDeleted",
    "TaskConflict",
}

# Public submodules: optional integrations, imported by name (`memory_client.langgraph` needs the
# `langgraph` extra), never by `import memory_client`.
PUBLIC_MODULES = {"langgraph"}

# Sync names whose async twin is spelled differently.
TWIN_NAMES = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}


def test_public_exports_are_exactly_the_curated_list() -> None:
    assert set(memory_client.__all__) == EXPECTED_EXPORTS
    assert len(memory_client.__all__) == len(EXPECTED_EXPORTS), "no duplicates in __all__"
    for name in memory_client.__all__:
        assert hasattr(memory_client, name), name
    public_modules = [
        name for name in vars(memory_client) if inspect.ismodule(getattr(memory_client, name))
    ]
    assert all(name.startswith("_") or name in PUBLIC_MODULES for name in public_modules), (
        public_modules
    )


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    dunders = set(TWIN_NAMES) | set(TWIN_NAMES.values())
    names = [n for n in dir(cls) if not n.startswith("_") or n in dunders]
    return {n: getattr(cls, n) for n in names if inspect.isfunction(getattr(cls, n))}


def test_every_sync_method_has_an_async_twin_with_the_same_signature() -> None:
    sync_methods = _public_methods(MemoryClient)
    assert {
        "create_memory",
        "iter_memories",
        "remember",
        "context",
        "create_grant",
        "iter_audit_events",
        "close",
    } <= set(sync_methods)
    for name, method in sync_methods.items():
        twin_name = TWIN_NAMES.get(name, name)
        twin = getattr(AsyncMemoryClient, twin_name, None)
        assert twin is not None, f"AsyncMemoryClient lacks {twin_name}"
        sync_sig, async_sig = inspect.signature(method), inspect.signature(twin)
        assert sync_sig.parameters == async_sig.parameters, name
        if inspect.isgeneratorfunction(method):
            assert inspect.isasyncgenfunction(twin), f"{twin_name} must be an async generator"
            assert async_sig.return_annotation == "Async" + str(sync_sig.return_annotation)
        else:
            assert inspect.iscoroutinefunction(twin), f"{twin_name} must be a coroutine function"
            expected = "Self" if name == "__enter__" else sync_sig.return_annotation
            assert async_sig.return_annotation == expected, name
        assert (method.__doc__ is None) == (twin.__doc__ is None), name
        if not name.startswith("_"):
            assert method.__doc__ and twin.__doc__, f"{name} needs a docstring"
    assert set(_public_methods(AsyncMemoryClient)) == {TWIN_NAMES.get(n, n) for n in sync_methods}
    assert inspect.signature(MemoryClient.__init__).parameters.keys() == (
        inspect.signature(AsyncMemoryClient.__init__).parameters.keys()
    )


def test_import_pulls_in_no_server_or_ml_packages() -> None:
    code = (
        "import json, sys, memory_client; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = {"torch", "chromadb", "fastapi", "memory_server", "sentence_transformers", "numpy"}
    assert not loaded & heavy, loaded & heavy
    assert {"httpx", "pydantic", "memory_client"} <= loaded


def test_package_is_typed() -> None:
    from importlib.resources import files

    assert files("memory_client").joinpath("py.typed").is_file()


def test_configuration_from_arguments_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMORY_URL", raising=False)
    monkeypatch.delenv("MEMORY_API_KEY", raising=False)
    with MemoryClient() as client:
        assert client.base_url == "http://127.0.0.1:8080"
        assert "Authorization" not in client._headers(client._call_health())
    monkeypatch.setenv("MEMORY_URL", "http://memory.internal:9000/")
    monkeypatch.setenv("MEMORY_API_KEY", "mk_env")
    with MemoryClient() as client:
        assert client.base_url == "http://memory.internal:9000"
        assert client._headers(client._call_health())["Authorization"] == "Bearer mk_env"
    with MemoryClient("http://other:1", "mk_arg", max_retries=5) as client:
        assert (client.base_url, client.max_retries) == ("http://other:1", 5)
        assert client._headers(client._call_health())["Authorization"] == "Bearer mk_arg"
    with pytest.raises(ValueError):
        MemoryClient(max_retries=-1)


def test_an_injected_http_client_is_used_and_left_open() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"status": "ok", "checks": {}, "uptime": 3})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    with MemoryClient("http://memory.test", "mk_x", http_client=http) as client:
        health = client.health()
    assert health.status == "ok"
    assert health.model_extra == {"uptime": 3}, "unknown fields are kept, not rejected"
    assert str(seen[0].url) == "http://memory.test/healthz"
    assert seen[0].headers["User-Agent"].startswith("memory-client/")
    assert not http.is_closed
    http.close()


def test_only_posts_get_an_idempotency_key() -> None:
    with MemoryClient("http://memory.test") as client:
        post = client._headers(client._call_create_agent("a", None))
        again = client._headers(client._call_create_agent("a", None))
        chosen = client._headers(client._call_create_agent("a", "mine"))
        get = client._headers(client._call_list_agents())
        patch = client._headers(client._call_delete_memory("mem_1"))
    assert (
        len(post["Idempotency-Key"]) == 36 and post["Idempotency-Key"] != again["Idempotency-Key"]
    )
    assert chosen["Idempotency-Key"] == "mine"
    assert "Idempotency-Key" not in get and "Idempotency-Key" not in patch


def test_path_segments_are_escaped() -> None:
    with MemoryClient("http://memory.test/base/") as client:
        request = client._build_request(client._call_get_memory("../agents?x=1"))
    assert request.url.raw_path == b"/base/v1/memories/..%2Fagents%3Fx%3D1"


def test_models_accept_unknown_fields() -> None:
    now = datetime.now(UTC).isoformat()
    memory = MemoryPublic.model_validate(
        {
            "id": "mem_1",
            "namespace_id": "ns_1",
            "kind": "note",
            "content": "x",
            "importance": 0.5,
            "created_at": now,
            "updated_at": now,
            "access_count": 0,
            "token_count": 1,
            "content_hash": "h",
            "version": 1,
            "status": "pinned",  # a status this client has never heard of
            "embedding_model": "new-in-v2",
        }
    )
    assert memory.status == "pinned"
    assert memory.model_extra == {"embedding_model": "new-in-v2"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (412, PreconditionFailedError),
        (413, PayloadTooLargeError),
        (422, UnprocessableEntityError),
        (428, PreconditionRequiredError),
        (429, RateLimitError),
        (500, InternalServerError),
        (503, InternalServerError),
        (599, InternalServerError),
    ],
)
def test_error_class_by_status(status: int, expected: type[APIStatusError]) -> None:
    assert error_class(status) is expected
    response = httpx.Response(
        status,
        json={"code": "some_code", "detail": "Some detail."},
        headers={"X-Request-ID": "req_abc"},
    )
    error = make_status_error(response)
    assert type(error) is expected
    assert (error.status_code, error.code, error.detail, error.request_id) == (
        status,
        "some_code",
        "Some detail.",
        "req_abc",
    )
    assert error.body == {"code": "some_code", "detail": "Some detail."}
    assert error.response is response


def test_status_errors_survive_pickling() -> None:
    import pickle

    error = make_status_error(
        httpx.Response(412, json={"code": "version_mismatch", "detail": "stale"})
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is PreconditionFailedError
    assert (copy.status_code, copy.code, copy.detail, str(copy)) == (
        412,
        "version_mismatch",
        "stale",
        str(error),
    )
    limited = make_status_error(
        httpx.Response(
            429, json={"code": "rate_limited", "detail": "slow"}, headers={"Retry-After": "20"}
        )
    )
    limited_copy = pickle.loads(pickle.dumps(limited))
    assert isinstance(limited_copy, RateLimitError) and limited_copy.retry_after == 20.0
    assert limited_copy.response is None


def test_validation_errors_and_retry_after_are_exposed() -> None:
    problems = [{"loc": ["body", "budget_tokens"], "msg": "too small", "type": "greater_than"}]
    invalid = make_status_error(
        httpx.Response(422, json={"code": "validation_error", "detail": "x", "errors": problems})
    )
    assert invalid.errors == problems
    assert make_status_error(httpx.Response(404, json={"code": "c", "detail": "d"})).errors is None
    assert make_status_error(httpx.Response(422, json={"errors": "junk"})).errors is None
    for header, expected in (("3", 3.0), (None, None), ("soon", None)):
        headers = {"Retry-After": header} if header is not None else {}
        error = make_status_error(httpx.Response(429, json={}, headers=headers))
        assert isinstance(error, RateLimitError) and error.retry_after == expected


def test_error_from_a_non_json_body() -> None:
    error = make_status_error(httpx.Response(502, text="<h1>Bad Gateway</h1>"))
    assert isinstance(error, InternalServerError)
    assert (error.code, error.detail, error.request_id) == (None, "<h1>Bad Gateway</h1>", None)
    empty = make_status_error(httpx.Response(504))
    assert empty.detail == "Gateway Timeout"


def test_retry_after_parsing() -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 May 2024 12:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    for unusable in (None, "", "soon", "-1", "nan"):
        assert parse_retry_after(unusable) is None, unusable


def test_backoff_is_jittered_exponential_and_capped() -> None:
    for attempt, cap in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        delays = {backoff_delay(attempt) for _ in range(50)}
        assert all(0.75 * cap <= d <= cap for d in delays), (attempt, delays)
        assert len(delays) > 1, "jittered"
    huge = httpx.Response(429, headers={"Retry-After": str(timedelta(hours=1).seconds)})
    assert retry_delay(0, huge) <= 0.5, "an absurd Retry-After falls back to backoff"
    assert retry_delay(0, httpx.Response(429, headers={"Retry-After": "2"})) == 2.0


def test_context_request_and_response(sdk: Any, loopback: Any) -> None:
    """What `context()` sends (only what was given; nested options as objects) and parses."""
    answer = {
        "context": "## Relevant memories\n[2024-05-01 · fact] The user is vegetarian.",
        "tokens_used": 14,
        "budget_tokens": 500,
        "model": "gpt-4o-mini",
        "items": [
            {
                "id": "mem_1",
                "namespace_id": "ns_1",
                "kind": "fact",
                "tier": "memories",
                "created_at": "2024-05-01T00:00:00Z",
                "tokens": 9,
                "score": 0.71,
                "components": {
                    "dense": 0.6,
                    "keyword": 1.0,
                    "recency": 0.9,
                    "importance": 0.5,
                    "frequency": 0.0,
                },
                "provenance": None,
            }
        ],
        "dropped": [
            {"id": "mem_2", "tier": "memories", "reason": "duplicate", "duplicate_of": "mem_1"}
        ],
        "trace_id": "new-in-v2",
    }
    server = loopback(script(Reply(200, answer)))
    client = sdk(server.url, "mk_test")
    after = datetime(2024, 5, 1, tzinfo=UTC)
    context = client.context(
        "what should I cook?",
        budget_tokens=500,
        model="gpt-4o-mini",
        namespace_ids="ns_1",
        user_id="u-1",
        thread_id="t-1",
        kinds=["fact", "preference"],
        tags="food",
        statuses=["active"],
        created_after=after,
        include_archived=False,
        ranking=RankingOptions(weights=RankingWeights(recency=0.3), min_relevance=0.2),
        tiers={"thread": 0.2, "memories": 0.8},
        max_thread_messages=10,
        max_candidates=40,
    )
    assert isinstance(context, ContextResponse)
    assert (context.tokens_used, context.budget_tokens, context.model) == (14, 500, "gpt-4o-mini")
    (item,) = context.items
    assert isinstance(item, ContextItem) and isinstance(item.components, ScoreComponents)
    assert (item.tier, item.tokens, item.score, item.components.keyword) == (
        "memories",
        9,
        0.71,
        1.0,
    )
    assert item.created_at == after
    (dropped,) = context.dropped
    assert isinstance(dropped, DroppedItem)
    assert (dropped.reason, dropped.duplicate_of, dropped.score) == ("duplicate", "mem_1", None)
    assert context.model_extra == {"trace_id": "new-in-v2"}
    (seen,) = server.seen
    assert (seen.method, seen.target) == ("POST", "/v1/context")
    assert json.loads(seen.body) == {
        "query": "what should I cook?",
        "budget_tokens": 500,
        "model": "gpt-4o-mini",
        "namespace_ids": ["ns_1"],
        "user_id": "u-1",
        "thread_id": "t-1",
        "kinds": ["fact", "preference"],
        "tags": ["food"],
        "statuses": ["active"],
        "created_after": "2024-05-01T00:00:00Z",
        "include_archived": False,
        "ranking": {"weights": {"recency": 0.3}, "min_relevance": 0.2},
        "tiers": {"thread": 0.2, "memories": 0.8},
        "max_thread_messages": 10,
        "max_candidates": 40,
    }
    assert seen.headers["idempotency-key"]

    client.context("q", budget_tokens=10)
    assert json.loads(server.seen[-1].body) == {"query": "q", "budget_tokens": 10}


def test_search_and_sharing_requests(sdk: Any, loopback: Any) -> None:
    """The wire form of `search(ranking=...)`, grants (path, body) and the audit listing."""
    grant = {
        "id": "grt_1",
        "namespace_id": "ns/1",
        "agent_id": "agt_2",
        "permission": "write",
        "created_at": "2024-05-01T00:00:00Z",
    }
    server = loopback(
        script(
            Reply(200, {"query": "q", "results": []}),
            Reply(200, grant),
            Reply(200, {"data": [], "next_cursor": None}),
        )
    )
    client = sdk(server.url, "mk_test")
    client.search("q", ranking={"diversity": 0, "weights": {"dense": 1}})
    assert json.loads(server.seen[-1].body) == {
        "query": "q",
        "ranking": {"diversity": 0, "weights": {"dense": 1}},
    }
    client.create_grant("ns/1", "agt_2", "write", idempotency_key="share-once")
    seen = server.seen[-1]
    assert (seen.method, seen.target) == ("POST", "/v1/namespaces/ns%2F1/grants")
    assert json.loads(seen.body) == {"agent_id": "agt_2", "permission": "write"}
    assert seen.headers["idempotency-key"] == "share-once"
    assert client.list_audit_events("ns_1", agent_id="agt_2", limit=5, cursor="42").data == []
    assert server.seen[-1].target == "/v1/namespaces/ns_1/audit?agent_id=agt_2&limit=5&cursor=42"
