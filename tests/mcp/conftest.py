"""MCP test fixtures: one live server for the package (on SQLite: the MCP layer adds no SQL of its
own), agents made through the REST API, and the real `mcp` client over streamable HTTP and over
stdio (`memory-server mcp` as a subprocess)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from tests.conftest import ADMIN_KEY, LiveServer, server_settings, serving

MEMORY_SERVER = str(Path(sys.executable).with_name("memory-server"))


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving(server_settings(tmp_path_factory.mktemp("mcp"), None)) as server:
        yield server


@pytest.fixture(scope="package")
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(ADMIN_KEY) as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Agent:
    id: str
    key: str
    namespace_id: str
    rest: httpx.Client


@pytest.fixture
def make_agent(live: LiveServer, admin: httpx.Client) -> Iterator[Any]:
    """New agents, each with one key (options as for POST /v1/agents/{id}/keys)."""
    clients: list[httpx.Client] = []

    def make(**key_options: object) -> Agent:
        agent = admin.post("/v1/agents", json={"name": f"mcp-{secrets.token_hex(4)}"})
        assert agent.status_code == 201, agent.text
        key = admin.post(f"/v1/agents/{agent.json()['id']}/keys", json=key_options)
        assert key.status_code == 201, key.text
        rest = live.client(key.json()["key"])
        clients.append(rest)
        return Agent(
            agent.json()["id"], key.json()["key"], agent.json()["default_namespace_id"], rest
        )

    yield make
    for client in clients:
        client.close()


def key_for(admin: httpx.Client, agent: Agent, **options: object) -> tuple[str, str]:
    """Another key of `agent` (e.g. a read-only one): the secret and the key's id."""
    response = admin.post(f"/v1/agents/{agent.id}/keys", json=options)
    assert response.status_code == 201, response.text
    return str(response.json()["key"]), str(response.json()["id"])


@asynccontextmanager
async def http_session(live: LiveServer, key: str) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with the server's `/mcp`, authenticated with `key`."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(f"{live.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def stdio_session(url: str, key: str, errlog: TextIO) -> AsyncIterator[ClientSession]:
    """An initialized MCP session with `memory-server mcp` run as a subprocess that forwards to
    the server at `url` with `key`; the subprocess's stderr goes to `errlog`."""
    env = {"MEMORY_URL": url, "MEMORY_API_KEY": key, "PATH": os.environ.get("PATH", "")}
    params = StdioServerParameters(command=MEMORY_SERVER, args=["mcp"], env=env)
    async with (
        stdio_client(params, errlog=errlog) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def ok(result: CallToolResult) -> dict[str, Any]:
    """A tool's structured result, after checking it is not an error."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    text = result.content[0]
    assert text.type == "text" and json.loads(text.text) == result.structured_content
    return result.structured_content


def refused(result: CallToolResult) -> tuple[str, str]:
    """A tool error's `code` and `detail`, after checking it is one."""
    assert result.is_error, result.structured_content
    text = result.content[0]
    assert text.type == "text"
    body = json.loads(text.text)
    return body["code"], body["detail"]
