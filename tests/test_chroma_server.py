"""The vector store on a Chroma server (`chroma run`, from the chromadb package)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, free_port
from tests.processes import ChromaServer


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    chroma = ChromaServer(tmp_path / "chroma-server").start()
    try:
        yield chroma.port
    finally:
        chroma.stop()


def test_server_runs_on_a_chroma_server(tmp_path: Path, chroma_server: int) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        admin_key=ADMIN_KEY,
        port=free_port(),
        vector_store="chroma-server",
        chroma_port=chroma_server,
    )
    server = LiveServer(settings).start()
    try:
        with server.client(ADMIN_KEY) as admin:
            agent = admin.post("/v1/agents", json={"name": "remote"}).json()
            key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
            assert admin.get("/readyz").json()["checks"]["vector_store"] == "ok"
        with server.client(key) as client:
            stored = client.post("/v1/memories", json={"content": "Invoices go out on the 1st"})
            hits = client.post("/v1/search", json={"query": "when are invoices sent"}).json()
        assert hits["results"][0]["memory"]["id"] == stored.json()["memory"]["id"]
        assert not (settings.data_dir / "chroma").exists()  # nothing embedded was created
    finally:
        server.stop()
