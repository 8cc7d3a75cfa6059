"""Fixtures: real SQLite and PostgreSQL, real Chroma, the real model, real HTTP on loopback.

Every test that uses `server` runs twice: on SQLite and on PostgreSQL (when
`MEMORY_TEST_POSTGRES_URL` is set; CI sets it, and a set-but-unreachable server fails loudly).
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi import FastAPI

from memory_server.app import create_app
from memory_server.config import Settings
from memory_server.db import Database
from memory_server.migrations import migrate
from memory_server.serving import BackgroundServer

ADMIN_KEY = "test-admin-key-0123456789"
POSTGRES_ENV = "MEMORY_TEST_POSTGRES_URL"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_admin_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextlib.contextmanager
def postgres_database(base: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `base` (a URL), dropped afterwards."""
    import psycopg

    name = f"mt_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(_postgres_admin_conninfo(base), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"{POSTGRES_ENV} is set but PostgreSQL is unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(_postgres_admin_conninfo(base), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded SQLite default; else a fresh PostgreSQL database for this test."""
    if request.param == "sqlite":
        yield None
        return
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with postgres_database(base) as url:
        yield url


@pytest.fixture
def migrated_db(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    """A migrated database, SQLite or PostgreSQL as `database_url` says, for tests below the
    services (no server, no index)."""
    db = Database(Settings(data_dir=tmp_path, database_url=database_url).resolved_database_url)
    try:
        migrate(db.engine)
        yield db
    finally:
        db.dispose()


def server_settings(data_dir: Path, database_url: str | None, **options: object) -> Settings:
    """Settings for a server under test: quiet, on a free port, with the test admin key."""
    defaults: dict[str, object] = {"admin_key": ADMIN_KEY, "log_level": "warning"}
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=free_port(),
        **(defaults | options),  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return server_settings(tmp_path / "var", database_url)


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a thread of this process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self._server: BackgroundServer | None = None

    def start(self) -> LiveServer:
        self._server = BackgroundServer(create_app(self.settings), self.settings.port)
        self._server.start()  # ends open event streams when it stops
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    @property
    def app(self) -> FastAPI:
        """The running app (its `state.runtime` holds the server's parts)."""
        assert self._server is not None, "the server is not running"
        return cast(FastAPI, self._server.app)

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def release_chroma_clients() -> None:
    """Chroma caches one client per path process-wide; drop them so each test starts clean."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[LiveServer]:
    """A live server on `settings` for the block; stopped, and its Chroma client released, after."""
    live = LiveServer(settings).start()
    try:
        yield live
    finally:
        live.stop()
        release_chroma_clients()


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with serving(settings) as live:
        yield live


@pytest.fixture
def admin(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client(ADMIN_KEY) as client:
        yield client


@dataclass
class AgentHandle:
    id: str
    key: str
    key_id: str
    namespace_id: str
    client: httpx.Client


@pytest.fixture
def make_agent(server: LiveServer, admin: httpx.Client) -> Iterator[object]:
    """Create an agent with one key; returns a handle holding an authenticated client."""
    clients: list[httpx.Client] = []

    def make(name: str | None = None, **key_options: object) -> AgentHandle:
        agent = admin.post("/v1/agents", json={"name": name or f"agent-{secrets.token_hex(3)}"})
        assert agent.status_code == 201, agent.text
        key = admin.post(f"/v1/agents/{agent.json()['id']}/keys", json=key_options)
        assert key.status_code == 201, key.text
        client = server.client(key.json()["key"])
        clients.append(client)
        return AgentHandle(
            id=agent.json()["id"],
            key=key.json()["key"],
            key_id=key.json()["id"],
            namespace_id=agent.json()["default_namespace_id"],
            client=client,
        )

    yield make
    for client in clients:
        client.close()
