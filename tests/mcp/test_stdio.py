"""`memory-server mcp` as a subprocess, through the real `mcp` client over stdio: the same tools as
/mcp, every call forwarded to the live server, which applies the key's rules."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, free_port
from tests.mcp.conftest import (
    MEMORY_SERVER,
    http_session,
    key_for,
    ok,
    refused,
    stdio_session,
)

pytestmark = pytest.mark.anyio


async def test_stdio_serves_the_same_tools_as_http_and_forwards_every_call(
    live: LiveServer, make_agent, admin: httpx.Client, tmp_path: Path
) -> None:
    alice, bob = make_agent(), make_agent()
    read_only, _ = key_for(admin, alice, read_only=True)
    with (tmp_path / "stderr").open("w") as errlog:
        async with http_session(live, alice.key) as over_http:
            http_tools = (await over_http.list_tools()).tools
        async with stdio_session(live.url, alice.key, errlog) as session:
            stdio_tools = (await session.list_tools()).tools
            assert [t.model_dump() for t in stdio_tools] == [t.model_dump() for t in http_tools]

            stored = ok(
                await session.call_tool(
                    "remember", {"content": "The deploy window is Thursday.", "kind": "fact"}
                )
            )["memory"]
            assert stored["namespace_id"] == alice.namespace_id
            # stored by the server, as the key's agent
            rest = alice.rest.get(f"/v1/memories/{stored['id']}").json()
            assert rest["author_agent_id"] == alice.id and rest["content"] == stored["content"]
            recalled = ok(await session.call_tool("recall", {"query": "when can we deploy"}))
            assert [hit["id"] for hit in recalled["results"]] == [stored["id"]]
            packed = ok(await session.call_tool("get_context", {"query": "deploy"}))
            assert "Thursday" in packed["context"]
            # refusals carry the server's code; arguments are checked before anything is sent
            code, detail = refused(
                await session.call_tool("remember", {"content": "x", "kind": "X"})
            )
            assert code == "validation_error" and "kind: String should match" in detail
            code, _ = refused(await session.call_tool("recall", {"query": "x", "limit": 0}))
            assert code == "validation_error"
            arguments = {"content": "planted", "namespace_id": bob.namespace_id}
            assert refused(await session.call_tool("remember", arguments))[0] == (
                "namespace_not_found"
            )

        async with stdio_session(live.url, bob.key, errlog) as session:
            assert (
                ok(await session.call_tool("recall", {"query": "deploy window"}))["results"] == []
            )
        async with stdio_session(live.url, read_only, errlog) as session:
            code, _ = refused(await session.call_tool("forget", {"memory_id": stored["id"]}))
            assert code == "permission_denied"
            recalled = ok(await session.call_tool("recall", {"query": "deploy window"}))
            assert [hit["id"] for hit in recalled["results"]] == [stored["id"]]
        async with stdio_session(live.url, "mk_not_a_key", errlog) as session:
            code, detail = refused(await session.call_tool("list_namespaces", {}))
            assert (code, detail) == ("invalid_api_key", "Invalid API key.")
    assert alice.rest.get(f"/v1/memories/{stored['id']}").status_code == 200


def test_stdio_without_a_key_exits_saying_what_to_set(live: LiveServer) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "MEMORY_URL": live.url}
    done = subprocess.run(
        [MEMORY_SERVER, "mcp"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and "MEMORY_API_KEY" in done.stderr
    assert done.stdout == ""  # stdout is the protocol's: nothing else is written there


async def test_stdio_reports_a_server_it_cannot_reach(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    with (tmp_path / "stderr").open("w") as errlog:
        async with stdio_session(nowhere, "mk_any", errlog) as session:
            code, detail = refused(await session.call_tool("list_namespaces", {}))
    assert code == "server_unreachable" and nowhere in detail
