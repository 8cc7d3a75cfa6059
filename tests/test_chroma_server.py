"""The vector store on a Chroma server (`chroma run`, from the chromadb package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, free_port


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert chroma, "the chromadb package installs the `chroma` command"
    port = free_port()
    process = subprocess.Popen(
        [chroma, "run", "--path", str(tmp_path / "chroma-server"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "chroma did not start"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


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
