"""Retries: what is retried, how long the client waits, and that a retried POST writes once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from memory_client import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ConflictError,
    InternalServerError,
    MemoryClientError,
    NotFoundError,
    RateLimitError,
)

from tests.sdk.loopback_http import DropFirstPost, Reply, Seen, script

Sdk = Callable[..., Any]  # conftest's `sdk` fixture
Start = Callable[..., Any]  # conftest's `loopback` fixture

WHO = {"agent_id": "agt_1", "key_id": "key_1", "is_admin": False, "read_only": False}
NAMESPACE = {
    "id": "ns_1",
    "name": "projects",
    "owner_agent_id": "agt_1",
    "description": None,
    "is_default": False,
    "created_at": "2024-05-01T00:00:00Z",
    "permission": "owner",
}


def error(status: int, code: str, **headers: str) -> Reply:
    return Reply(status, {"code": code, "detail": f"{code} happened"}, headers=dict(headers))


def test_429_waits_for_retry_after_then_retries(sdk: Sdk, loopback: Start) -> None:
    server = loopback(script(error(429, "rate_limited", **{"Retry-After": "1"}), Reply(200, WHO)))
    me = sdk(server.url, "mk_test").me()
    assert me.agent_id == "agt_1"
    first, second = server.seen
    assert second.at - first.at >= 0.95, "the client must wait the Retry-After second"
    assert second.headers["authorization"] == "Bearer mk_test"


def test_post_retries_reuse_one_idempotency_key(sdk: Sdk, loopback: Start) -> None:
    unavailable = error(503, "store_unavailable", **{"Retry-After": "0"})
    server = loopback(
        script(unavailable, unavailable, Reply(201, NAMESPACE), Reply(201, NAMESPACE))
    )
    client = sdk(server.url, "mk_test")
    created = client.create_namespace("projects")
    assert created.id == "ns_1"
    attempts = [seen.headers["idempotency-key"] for seen in server.seen]
    assert len(attempts) == 3 and len(set(attempts)) == 1
    assert json.loads(server.seen[0].body) == {"name": "projects"}

    client.create_namespace("projects", idempotency_key="caller-chosen")
    assert server.seen[-1].headers["idempotency-key"] == "caller-chosen"
    assert server.seen[-1].headers["idempotency-key"] != attempts[0]


@pytest.mark.parametrize(
    ("replies", "max_retries", "raised", "attempts"),
    [
        pytest.param(
            [error(409, "idempotency_in_progress", **{"Retry-After": "0"})],
            2,
            ConflictError,
            3,
            id="409-idempotency-in-progress-retried",
        ),
        pytest.param([error(409, "write_conflict")], 2, ConflictError, 1, id="409-other-not"),
        pytest.param([error(500, "internal_error")], 2, InternalServerError, 3, id="500-retried"),
        pytest.param([error(502, "bad_gateway")], 0, InternalServerError, 1, id="max-retries-0"),
        pytest.param([error(408, "request_timeout")], 1, APIStatusError, 2, id="408-retried"),
        pytest.param(
            [error(429, "rate_limited", **{"Retry-After": "0"})],
            2,
            RateLimitError,
            3,
            id="429-retried",
        ),
        pytest.param([error(404, "not_found")], 2, NotFoundError, 1, id="404-not-retried"),
        pytest.param(
            [error(503, "down", **{"Retry-After": "0"}), Reply(200, WHO)],
            2,
            None,
            2,
            id="503-then-success",
        ),
    ],
)
def test_which_responses_are_retried(
    sdk: Sdk,
    loopback: Start,
    fast_backoff: None,
    replies: list[Reply],
    max_retries: int,
    raised: type[APIStatusError] | None,
    attempts: int,
) -> None:
    server = loopback(script(*replies))
    client = sdk(server.url, max_retries=max_retries)
    if raised is None:
        assert client.me().agent_id == "agt_1"
    else:
        with pytest.raises(raised) as caught:
            client.me()
        assert caught.value.status_code == replies[-1].status
        assert caught.value.code == replies[-1].json["code"]
    assert len(server.seen) == attempts


def test_connection_refused_is_retried_then_raised(
    sdk: Sdk, loopback: Start, fast_backoff: None
) -> None:
    server = loopback(script(Reply(200, WHO)))
    url = server.url
    server.stop()
    with pytest.raises(APIConnectionError) as caught:
        sdk(url, max_retries=1).me()
    assert not isinstance(caught.value, APITimeoutError)


def test_timeout_raises_api_timeout_error(sdk: Sdk, loopback: Start) -> None:
    async def slow(_: Seen) -> Reply:
        await asyncio.sleep(2)
        return Reply(200, WHO)

    server = loopback(slow)
    with pytest.raises(APITimeoutError) as caught:
        sdk(server.url, timeout=0.2, max_retries=0).me()
    assert isinstance(caught.value, APIConnectionError)
    assert len(server.seen) == 1


def test_unexpected_success_body_raises_validation_error(sdk: Sdk, loopback: Start) -> None:
    server = loopback(script(Reply(200, raw=b"<html>proxy login</html>"), Reply(200, {"x": 1})))
    client = sdk(server.url)
    with pytest.raises(APIResponseValidationError) as not_json:
        client.me()
    assert not_json.value.body == "<html>proxy login</html>"
    with pytest.raises(APIResponseValidationError) as wrong_shape:
        client.me()
    assert wrong_shape.value.body == {"x": 1}
    assert isinstance(wrong_shape.value, MemoryClientError)


def test_dropped_response_is_retried_without_a_second_write(
    server: Any, make_agent: Any, sdk: Sdk, loopback: Start
) -> None:
    """The proxy forwards the first POST (the server stores it) and then drops the connection, so
    the client sees a connection error; its retry carries the same Idempotency-Key and gets the
    stored answer back. Messages are never de-duplicated by content, so only the key prevents a
    second memory."""
    agent = make_agent()
    proxy_handler = DropFirstPost(server.url)
    proxy = loopback(proxy_handler)
    proxy.on_close.append(proxy_handler.aclose)
    client = sdk(proxy.url, agent.key)

    result = client.create_memory(
        "Book the 9am train.", kind="message", role="user", thread_id="t-drop"
    )

    posts = [seen for seen in proxy.seen if seen.method == "POST"]
    assert len(posts) == 2, "one dropped attempt, one retry"
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    assert posts[0].body == posts[1].body
    assert [r.status_code for r in proxy_handler.responses] == [201, 201]
    assert proxy_handler.responses[1].headers.get("Idempotent-Replayed") == "true"
    assert result.created
    assert result.memory.id == proxy_handler.responses[0].json()["memory"]["id"]

    stored = agent.client.get("/v1/memories", params={"thread_id": "t-drop"}).json()["data"]
    assert [m["id"] for m in stored] == [result.memory.id]

    # Control: the same message without the key is stored again, so the key did the work above.
    body = {
        "content": "Book the 9am train.",
        "kind": "message",
        "role": "user",
        "thread_id": "t-drop",
    }
    assert agent.client.post("/v1/memories", json=body).status_code == 201
    stored = agent.client.get("/v1/memories", params={"thread_id": "t-drop"}).json()["data"]
    assert len(stored) == 2


def test_ready_reports_unavailable_without_raising_or_retrying(sdk: Sdk, loopback: Start) -> None:
    down = {"status": "unavailable", "checks": {"sql": "ok", "vector_store": "error: timeout"}}
    server = loopback(script(Reply(503, down)))
    ready = sdk(server.url).ready()
    assert (ready.status, ready.checks["vector_store"]) == ("unavailable", "error: timeout")
    assert len(server.seen) == 1
