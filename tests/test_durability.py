"""Restarts, a lost or drifted index, a failing index: SQL stays the truth."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients
from tests.index_probe import drop_index, index_ids, namespace_collection


def _namespace(server: LiveServer, key: str, memory_id: str) -> str:
    with server.client(key) as client:
        return str(client.get(f"/v1/memories/{memory_id}").json()["namespace_id"])


def _seed(server: LiveServer, contents: list[str]) -> tuple[str, list[str]]:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": "durable"}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    with server.client(key) as client:
        ids = [
            client.post("/v1/memories", json={"content": c, "kind": "fact"}).json()["memory"]["id"]
            for c in contents
        ]
    return key, ids


def _search_ids(server: LiveServer, key: str, query: str) -> list[str]:
    with server.client(key) as client:
        body = client.post("/v1/search", json={"query": query, "k": 10}).json()
    return [hit["memory"]["id"] for hit in body["results"]]


FACTS = [
    "The office wifi password is hunter2",
    "Standup is at 9:30",
    "Bob owns the billing service",
]


def test_memories_survive_a_restart(server: LiveServer) -> None:
    key, ids = _seed(server, FACTS)
    server.stop()
    release_chroma_clients()
    server.start()
    with server.client(key) as client:
        assert client.get(f"/v1/memories/{ids[0]}").json()["content"] == FACTS[0]
    assert _search_ids(server, key, "who is responsible for billing?")[0] == ids[2]


def test_reindex_rebuilds_a_deleted_index_from_sql(server: LiveServer) -> None:
    key, ids = _seed(server, FACTS)
    settings = server.settings
    server.stop()
    release_chroma_clients()
    shutil.rmtree(settings.chroma_path)
    env = os.environ | {
        "MEMORY_DATA_DIR": str(settings.data_dir),
        "MEMORY_ADMIN_KEY": ADMIN_KEY,
        "MEMORY_LOG_LEVEL": "warning",
    }
    if settings.database_url:
        env["MEMORY_DATABASE_URL"] = settings.database_url
    done = subprocess.run(
        [sys.executable, "-m", "memory_server.cli", "reindex"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    # from the vectors SQL keeps: the model is never loaded
    assert "reindexed 3 memories from SQL into the vector index (0 embedded" in done.stdout
    assert sorted(index_ids(settings)) == sorted(ids)
    release_chroma_clients()
    restarted = LiveServer(settings.model_copy(update={"reconcile_on_startup": False})).start()
    try:
        assert _search_ids(restarted, key, "who owns billing")[0] == ids[2]
    finally:
        restarted.stop()


def test_startup_repairs_an_index_that_is_out_of_step(server: LiveServer) -> None:
    key, ids = _seed(server, FACTS)
    namespace_id = _namespace(server, key, ids[0])
    settings = server.settings
    server.stop()
    release_chroma_clients()
    index = namespace_collection(settings, namespace_id)
    index.delete(ids=[ids[0]])  # lost
    index.update(ids=[ids[1]], metadatas=[{"version": 99, "namespace_id": "ns_wrong"}])  # stale
    index.upsert(ids=["mem_orphan"], embeddings=[[0.1] * 384], metadatas=[{"version": 1}])  # orphan
    release_chroma_clients()

    server.start()
    assert sorted(index_ids(settings)) == sorted(ids)
    assert _search_ids(server, key, "wifi password")[0] == ids[0]
    assert _search_ids(server, key, "when is the standup meeting")[0] == ids[1]


def test_write_fails_cleanly_when_the_index_is_unavailable(server: LiveServer) -> None:
    key, _ = _seed(server, FACTS[:1])
    drop_index(server.settings)
    with server.client(key) as client:
        response = client.post(
            "/v1/memories", json={"content": "never half-written", "tags": ["lost"]}
        )
        assert response.status_code == 503
        assert response.json()["code"] == "store_unavailable"
        batch = client.post(
            "/v1/memories/batch", json={"memories": [{"content": "a"}, {"content": "b"}]}
        )
        assert batch.status_code == 503
    with httpx.Client(base_url=server.url) as anonymous:
        ready = anonymous.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["sql"] == "ok"
    engine = create_engine(server.settings.resolved_database_url)
    with engine.connect() as connection:
        contents = connection.execute(text("SELECT content FROM memory")).scalars().all()
        tags = connection.execute(text("SELECT count(*) FROM memory_tag")).scalar_one()
    engine.dispose()
    assert contents == [FACTS[0]] and tags == 0
