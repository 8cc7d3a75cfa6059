"""The MCP server at /mcp, through the real `mcp` client over streamable HTTP: the tools, the keys'
rules (isolation, sharing, read-only keys), readable tool errors and refused keys."""

from __future__ import annotations

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import LiveServer
from tests.mcp.conftest import Agent, http_session, key_for, ok, refused

pytestmark = pytest.mark.anyio

TOOL_NAMES = {
    "remember",
    "recall",
    "get_context",
    "forget",
    "list_namespaces",
    "share",
    "unshare",
}


async def test_the_tools_are_listed_with_typed_arguments_and_results(
    live: LiveServer, make_agent
) -> None:
    async with http_session(live, make_agent().key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOL_NAMES
    for tool in tools.values():
        assert tool.description and tool.output_schema is not None
        assert tool.input_schema["additionalProperties"] is False  # a misspelt argument is refused
    remember = tools["remember"].input_schema
    assert remember["required"] == ["content"]
    importance = remember["properties"]["importance"]
    assert (importance["type"], importance["minimum"], importance["maximum"]) == ("number", 0, 1)
    assert tools["get_context"].input_schema["properties"]["budget_tokens"]["type"] == "integer"
    assert set(tools["share"].input_schema["required"]) == {"namespace_id", "agent_id"}
    assert tools["recall"].annotations is not None and tools["recall"].annotations.read_only_hint
    assert tools["forget"].annotations is not None and tools["forget"].annotations.destructive_hint
    # MCP requests are timed under their own route, like every REST route
    metrics = httpx.get(f"{live.url}/metrics", timeout=60).text
    assert (
        'memory_http_request_duration_seconds_count{method="POST",route="/mcp",status="2xx"}'
        in (metrics)
    )


async def test_remember_recall_context_and_forget_as_the_keys_agent(
    live: LiveServer, make_agent
) -> None:
    agent: Agent = make_agent()
    async with http_session(live, agent.key) as session:
        diet = {"kind": "fact", "key": "user.diet", "user_id": "u1"}
        vegetarian = {"content": "The user is vegetarian.", "importance": 0.9, **diet}
        first = ok(await session.call_tool("remember", vegetarian))
        assert first["created"] is True and first["superseded_id"] is None
        memory = first["memory"]
        assert (memory["namespace_id"], memory["kind"], memory["importance"]) == (
            agent.namespace_id,
            "fact",
            0.9,
        )
        vegan = {"content": "The user is vegan now.", **diet}
        second = ok(await session.call_tool("remember", vegan))
        assert second["superseded_id"] == memory["id"]  # a new value for the key
        newest = second["memory"]["id"]
        again = ok(await session.call_tool("remember", vegan))  # the same memory again: kept once
        assert again["created"] is False and again["memory"]["id"] == newest

        recalled = ok(
            await session.call_tool("recall", {"query": "what does the user eat", "user_id": "u1"})
        )
        assert recalled["query"] == "what does the user eat"
        assert [hit["id"] for hit in recalled["results"]] == [newest]  # the superseded one is not
        assert recalled["results"][0]["score"] > 0

        arguments = {"query": "dinner ideas", "user_id": "u1", "budget_tokens": 200}
        packed = ok(await session.call_tool("get_context", arguments))
        assert "vegan now" in packed["context"] and "vegetarian" not in packed["context"]
        assert packed["tokens_used"] <= packed["budget_tokens"] == 200
        assert [item["id"] for item in packed["items"]] == [newest]
        # the same packed context as POST /v1/context, through the same service
        rest = agent.rest.post("/v1/context", json=arguments)
        assert rest.status_code == 200, rest.text
        assert packed["context"] == rest.json()["context"]
        assert packed["tokens_used"] == rest.json()["tokens_used"]

        forgotten = ok(await session.call_tool("forget", {"memory_id": newest}))
        assert (forgotten["id"], forgotten["namespace_id"]) == (newest, agent.namespace_id)
        assert agent.rest.get(f"/v1/memories/{newest}").status_code == 404
        recalled = ok(await session.call_tool("recall", {"query": "what does the user eat"}))
        assert newest not in [hit["id"] for hit in recalled["results"]]
        assert refused(await session.call_tool("forget", {"memory_id": newest}))[0] == (
            "memory_not_found"
        )

        namespaces = ok(await session.call_tool("list_namespaces", {}))["namespaces"]
        assert [(ns["id"], ns["permission"]) for ns in namespaces] == [
            (agent.namespace_id, "owner")
        ]


async def test_another_agents_key_finds_nothing_of_the_first(live: LiveServer, make_agent) -> None:
    alice, bob = make_agent(), make_agent()
    async with http_session(live, alice.key) as session:
        secret = ok(
            await session.call_tool(
                "remember", {"content": "Alice's locker code is 4711.", "user_id": "shared-user"}
            )
        )["memory"]["id"]
    async with http_session(live, bob.key) as session:
        recalled = ok(await session.call_tool("recall", {"query": "locker code"}))
        assert recalled["results"] == []
        packed = ok(
            await session.call_tool(
                "get_context", {"query": "locker code", "user_id": "shared-user"}
            )
        )
        assert "4711" not in packed["context"] and packed["items"] == []
        # someone else's memory or namespace answers as one that does not exist
        code, _ = refused(await session.call_tool("forget", {"memory_id": secret}))
        assert code == "memory_not_found"
        arguments = {"content": "planted", "namespace_id": alice.namespace_id}
        assert refused(await session.call_tool("remember", arguments))[0] == "namespace_not_found"
        arguments = {"query": "locker", "namespace_ids": [alice.namespace_id]}
        assert refused(await session.call_tool("recall", arguments))[0] == "namespace_not_found"
    assert alice.rest.get(f"/v1/memories/{secret}").status_code == 200  # still there


async def test_sharing_lets_another_agent_recall_until_it_is_unshared(
    live: LiveServer, make_agent
) -> None:
    alice, bob = make_agent(), make_agent()
    team = alice.rest.post("/v1/namespaces", json={"name": "team"}).json()["id"]
    query = {"query": "release date of the product", "namespace_ids": [team]}
    async with http_session(live, alice.key) as owner, http_session(live, bob.key) as other:
        arguments = {"content": "The product ships on 3 March.", "namespace_id": team}
        shared = ok(await owner.call_tool("remember", arguments))["memory"]["id"]
        assert refused(await other.call_tool("recall", query))[0] == "namespace_not_found"

        grant = ok(await owner.call_tool("share", {"namespace_id": team, "agent_id": bob.id}))
        assert (grant["agent_id"], grant["permission"]) == (bob.id, "read")
        assert [hit["id"] for hit in ok(await other.call_tool("recall", query))["results"]] == [
            shared
        ]
        namespaces = ok(await other.call_tool("list_namespaces", {}))["namespaces"]
        assert {ns["id"]: ns["permission"] for ns in namespaces} == {
            bob.namespace_id: "owner",
            team: "read",
        }
        # read, not write; and only the owner shares
        arguments = {"content": "bob was here", "namespace_id": team}
        assert refused(await other.call_tool("remember", arguments))[0] == "permission_denied"
        arguments = {"namespace_id": team, "agent_id": alice.id}
        assert refused(await other.call_tool("unshare", arguments))[0] == "permission_denied"
        # the owner sees the other agent's read in the namespace's audit trail
        trail = alice.rest.get(f"/v1/namespaces/{team}/audit").json()["data"]
        assert [(e["agent_id"], e["operation"]) for e in trail] == [(bob.id, "search")]

        revoked = ok(await owner.call_tool("unshare", {"namespace_id": team, "agent_id": bob.id}))
        assert revoked["grant_id"] == grant["grant_id"]
        assert refused(await other.call_tool("recall", query))[0] == "namespace_not_found"
        plain = ok(await other.call_tool("recall", {"query": "release date of the product"}))
        assert plain["results"] == []
        code, detail = refused(
            await owner.call_tool("unshare", {"namespace_id": team, "agent_id": bob.id})
        )
        assert code == "grant_not_found" and bob.id in detail


async def test_a_read_only_key_reads_but_is_refused_on_writes(
    live: LiveServer, make_agent, admin: httpx.Client
) -> None:
    agent = make_agent()
    async with http_session(live, agent.key) as session:
        kept = ok(await session.call_tool("remember", {"content": "Standup is at 9:30."}))
    memory_id = kept["memory"]["id"]
    read_only, _ = key_for(admin, agent, read_only=True)
    async with http_session(live, read_only) as session:
        recalled = ok(await session.call_tool("recall", {"query": "when is standup"}))
        assert [hit["id"] for hit in recalled["results"]] == [memory_id]
        code, detail = refused(await session.call_tool("remember", {"content": "not stored"}))
        assert code == "permission_denied" and "may not write" in detail
        assert refused(await session.call_tool("forget", {"memory_id": memory_id}))[0] == (
            "permission_denied"
        )
    # the code the REST API gives the same key for the same write
    with live.client(read_only) as rest:
        response = rest.post("/v1/memories", json={"content": "not stored"})
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert agent.rest.get(f"/v1/memories/{memory_id}").status_code == 200


@pytest.mark.parametrize(
    ("tool", "arguments", "code", "detail"),
    [
        ("remember", {}, "validation_error", "content: Field required"),
        ("remember", {"content": "x", "importance": 2}, "validation_error", "importance:"),
        ("remember", {"content": "x", "kind": "Bad Kind"}, "validation_error", "kind:"),
        ("remember", {"content": "x", "kind": "message"}, "validation_error", "needs a role"),
        ("remember", {"content": "x", "kind": "summary"}, "validation_error", "reserved"),
        ("recall", {"query": "x", "lmit": 3}, "validation_error", "lmit: Extra inputs"),
        ("recall", {"query": ""}, "validation_error", "query:"),
        ("get_context", {"query": "x", "budget_tokens": "lots"}, "validation_error", "budget"),
        ("get_context", {"query": "x", "model": ""}, "validation_error", "model:"),
        (
            "share",
            {"namespace_id": "ns_x", "agent_id": "a", "permission": "admin"},
            "validation_error",
            "permission:",
        ),
        ("forget", {"memory_id": "mem_nope"}, "memory_not_found", "mem_nope"),
        ("unshare", {"namespace_id": "ns_nope", "agent_id": "agt_x"}, "namespace_not_found", ""),
    ],
)
async def test_bad_arguments_get_a_readable_tool_error(
    live: LiveServer, make_agent, tool: str, arguments: dict, code: str, detail: str
) -> None:
    async with http_session(live, make_agent().key) as session:
        got_code, got_detail = refused(await session.call_tool(tool, arguments))
        assert got_code == code and detail in got_detail, got_detail
        assert ok(await session.call_tool("list_namespaces", {}))["namespaces"]  # still serving


async def test_an_unknown_tool_is_a_protocol_error(live: LiveServer, make_agent) -> None:
    async with http_session(live, make_agent().key) as session:
        with pytest.raises(MCPError, match="Unknown tool 'remeber'"):
            await session.call_tool("remeber", {"content": "x"})


async def test_sharing_with_yourself_is_refused_with_the_apis_code(
    live: LiveServer, make_agent
) -> None:
    agent = make_agent()
    async with http_session(live, agent.key) as session:
        arguments = {"namespace_id": agent.namespace_id, "agent_id": agent.id}
        assert refused(await session.call_tool("share", arguments))[0] == "grantee_is_owner"


def _post_initialize(live: LiveServer, headers: dict[str, str]) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    return httpx.post(f"{live.url}/mcp", json=message, headers=accept | headers, timeout=60)


async def test_unknown_revoked_and_missing_keys_are_rejected(
    live: LiveServer, make_agent, admin: httpx.Client
) -> None:
    agent = make_agent()
    assert _post_initialize(live, {"Authorization": f"Bearer {agent.key}"}).status_code == 200
    revoked, key_id = key_for(admin, agent)
    assert admin.delete(f"/v1/keys/{key_id}").status_code == 200
    for headers, code in [
        ({"Authorization": "Bearer mk_not_a_key"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {revoked}"}, "api_key_revoked"),
        ({}, "unauthorized"),
    ]:
        response = _post_initialize(live, headers)
        assert (response.status_code, response.json()["code"]) == (401, code), response.text
    # the client's handshake fails with the HTTP error, as an MCP error
    try:
        async with http_session(live, "mk_not_a_key"):
            pytest.fail("a session opened with an unknown key")
    except BaseExceptionGroup as group:
        raised = _leaves(group)
    except MCPError as error:
        raised = [error]
    assert [type(error) for error in raised] == [MCPError]


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def test_get_and_delete_are_not_allowed_on_the_stateless_endpoint(
    live: LiveServer, make_agent
) -> None:
    headers = {"Authorization": f"Bearer {make_agent().key}", "Accept": "text/event-stream"}
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{live.url}/mcp", headers=headers, timeout=10)
        assert response.status_code == 405 and response.headers["Allow"] == "POST"
        assert response.json()["code"] == "method_not_allowed"
