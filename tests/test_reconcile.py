"""The scheduled reconciler: a live server repairs its index without a restart, and does not
mistake writes in flight for drift."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from memory_server.config import Settings
from memory_server.services.indexing import CONTENT_FIELD
from tests.conftest import ADMIN_KEY, LiveServer, server_settings
from tests.index_probe import index_ids, namespace_collection

FACTS = [
    "The office wifi password is hunter2",
    "Standup is at 9:30 every weekday",
    "Bob owns the billing service",
    "The staging database is restored every Sunday night",
]


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return server_settings(
        tmp_path / "var", database_url, reconcile_interval_minutes=0.02
    )  # reconciles every 1.2 s


def _agent(server: LiveServer) -> tuple[str, str]:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": "reconciled"}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    return key, agent["default_namespace_id"]


def _sql_ids(settings: Settings) -> set[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(text("SELECT id FROM memory")).scalars())
    finally:
        engine.dispose()


def _top_hit(server: LiveServer, key: str, query: str) -> tuple[str, float]:
    """The best search hit for `query` and its dense similarity (0 without an index record)."""
    with server.client(key) as client:
        results = client.post("/v1/search", json={"query": query, "k": 3}).json()["results"]
    return results[0]["memory"]["id"], results[0]["similarity"]


def test_a_live_server_repairs_an_index_altered_behind_its_back(server: LiveServer) -> None:
    key, namespace = _agent(server)
    with server.client(key) as client:
        ids = [
            client.post("/v1/memories", json={"content": fact, "kind": "fact"}).json()["memory"][
                "id"
            ]
            for fact in FACTS
        ]
    index = namespace_collection(server.settings, namespace)
    before = index.get(ids=ids, include=["metadatas", "embeddings"])
    metadata = dict(zip(before["ids"], before["metadatas"], strict=True))
    index.delete(ids=[ids[0]])  # lost
    index.update(ids=[ids[1]], metadatas=[{"status": "archived"}])  # relabeled: hidden from search
    wrong = list(before["embeddings"][before["ids"].index(ids[3])])
    index.upsert(  # another text's embedding at the same version: only the content hash differs
        ids=[ids[2]],
        embeddings=[wrong],
        metadatas=[{**metadata[ids[2]], CONTENT_FIELD: "0000000000000000"}],
    )
    index.upsert(
        ids=["mem_orphan"],
        embeddings=[wrong],
        metadatas=[{"namespace_id": namespace, "status": "active", "version": 1}],
    )
    assert _top_hit(server, key, "who is responsible for billing?")[1] < 0.3  # wrong vector

    deadline = time.monotonic() + 60
    while True:  # no restart: the scheduled job repairs it
        now = index.get(include=["metadatas"])
        repaired = dict(zip(now["ids"], now["metadatas"], strict=True))
        if repaired == metadata:
            break
        assert time.monotonic() < deadline, f"not repaired: {repaired}"
        time.sleep(0.5)
    for query, memory_id in (
        ("what is the wifi password?", ids[0]),
        ("when is the standup meeting", ids[1]),
        ("who is responsible for billing?", ids[2]),
    ):
        hit, similarity = _top_hit(server, key, query)
        assert hit == memory_id and similarity > 0.3, (query, similarity)


def test_scheduled_reconciles_leave_concurrent_writes_alone(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="memory_server.services.indexing")
    key, _ = _agent(server)
    stored: list[str] = []
    failures: list[str] = []

    def write(worker: int) -> None:
        with server.client(key) as client:
            for n in range(25):
                response = client.post(
                    "/v1/memories",
                    json={"content": f"Worker {worker} noted item {n} in the ledger"},
                )
                if response.status_code != 201:
                    failures.append(response.text)
                    continue
                memory_id = response.json()["memory"]["id"]
                stored.append(memory_id)
                if n % 5 == 0:  # an update too: version and content change under the reconciler
                    patched = client.patch(
                        f"/v1/memories/{memory_id}",
                        json={"content": f"Worker {worker} revised item {n}"},
                        headers={"If-Match": '"1"'},
                    )
                    if patched.status_code != 200:
                        failures.append(patched.text)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    time.sleep(3)  # at least one more scheduled pass after the last write
    assert failures == []
    assert _sql_ids(server.settings) == set(stored) == index_ids(server.settings)
    repairs = [r.getMessage() for r in caplog.records if "out of step" in r.getMessage()]
    assert repairs == []  # writes in flight were never taken for drift
