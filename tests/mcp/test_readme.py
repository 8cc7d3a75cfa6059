"""The README's MCP client configurations work as written (with this server's URL and a key)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import LiveServer
from tests.mcp.conftest import ok

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = pytest.mark.anyio


def _config(name: str, live: LiveServer, key: str) -> dict[str, Any]:
    """The `memory` server of the README's JSON block marked `readme-test: <name>`, pointed at
    `live` with `key`."""
    block = README.read_text().split(f"<!-- readme-test: {name} -->")[1]
    text = block.split("```json")[1].split("```")[0]
    text = text.replace("http://127.0.0.1:8080", live.url).replace("mk_...", key)
    return dict(json.loads(text)["mcpServers"]["memory"])


async def _lists_own_namespace(session: ClientSession, namespace_id: str) -> None:
    await session.initialize()
    namespaces = ok(await session.call_tool("list_namespaces", {}))["namespaces"]
    assert [ns["id"] for ns in namespaces] == [namespace_id]


async def test_the_streamable_http_configuration_connects(live: LiveServer, make_agent) -> None:
    agent = make_agent()
    config = _config("mcp-http", live, agent.key)
    assert config["type"] == "http"
    async with (
        httpx2.AsyncClient(headers=config["headers"], timeout=60) as http,
        streamable_http_client(config["url"], http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await _lists_own_namespace(session, agent.namespace_id)


async def test_the_stdio_configuration_connects(
    live: LiveServer, make_agent, tmp_path: Path
) -> None:
    agent = make_agent()
    config = _config("mcp-stdio", live, agent.key)
    # the client finds `memory-server` on its PATH: this venv's
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    params = StdioServerParameters(
        command=config["command"], args=config["args"], env=config["env"] | {"PATH": path}
    )
    with (tmp_path / "stderr").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await _lists_own_namespace(session, agent.namespace_id)
