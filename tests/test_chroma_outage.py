"""The Chroma server killed (SIGKILL) under load: writes succeed whole or fail with 503 and leave
nothing in SQL, reads that need the index fail cleanly, and the memory server recovers by itself
once Chroma is back on the same port and path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, server_settings
from tests.index_probe import chroma_client, index_ids
from tests.processes import ChromaServer


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, chroma: ChromaServer) -> Settings:
    return server_settings(
        tmp_path / "var",
        database_url,
        vector_store="chroma-server",
        chroma_port=chroma.port,
        reconcile_interval_minutes=0.05,  # every 3 s
    )


class Writers:
    """Threads that keep writing distinct memories (singles and batches of two) until stopped,
    keeping every response."""

    def __init__(self, server: LiveServer, key: str, count: int = 3):
        self._server = server
        self._key = key
        self._stop = threading.Event()
        self.stored: dict[str, str] = {}  # content -> id
        self.refused: list[str] = []  # contents of writes answered 503
        self.unexpected: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(count)
        ]

    def start(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, worker: int) -> None:
        with self._server.client(self._key) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                contents = [f"Writer {worker} logged shipment {n} ({part})" for part in "ab"]
                if n % 2:
                    response = client.post("/v1/memories", json={"content": contents[0]})
                    contents = contents[:1]
                else:
                    response = client.post(
                        "/v1/memories/batch",
                        json={"memories": [{"content": c} for c in contents]},
                    )
                self._record(response, contents)
                time.sleep(0.02)

    def _record(self, response: httpx.Response, contents: list[str]) -> None:
        with self._lock:
            if response.status_code == 201:
                body = response.json()
                memories = [r["memory"] for r in body["results"]] if "results" in body else []
                memories = memories or [body["memory"]]
                self.stored.update((m["content"], m["id"]) for m in memories)
            elif response.status_code == 503 and response.json()["code"] == "store_unavailable":
                self.refused.extend(contents)
            else:
                self.unexpected.append(f"{response.status_code} {response.text}")

    def wait_for(self, stored: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.stored) < stored:
            assert time.monotonic() < deadline, f"only {len(self.stored)} writes succeeded"
            time.sleep(0.05)


def _sql(settings: Settings) -> dict[str, str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT content, id FROM memory")).all()
    finally:
        engine.dispose()
    return {row.content: row.id for row in rows}


def _index_ids(chroma: ChromaServer, settings: Settings) -> set[str]:
    return index_ids(settings, chroma_client(settings, port=chroma.port))


def test_killing_chroma_under_load_fails_writes_cleanly_and_recovers(
    server: LiveServer, chroma: ChromaServer
) -> None:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": "shipper"}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    writers = Writers(server, key).start()
    try:
        writers.wait_for(10)
        chroma.kill()  # SIGKILL, mid-load
        deadline = time.monotonic() + 30
        while len(writers.refused) < 3:
            assert time.monotonic() < deadline, "no write was refused while Chroma was down"
            time.sleep(0.05)
        some_id = next(iter(writers.stored.values()))
        with server.client(key) as client:
            search = client.post("/v1/search", json={"query": "shipment"})
            assert (search.status_code, search.json()["code"]) == (503, "store_unavailable")
            context = client.post("/v1/context", json={"query": "shipment", "budget_tokens": 200})
            assert (context.status_code, context.json()["code"]) == (503, "store_unavailable")
            assert client.get(f"/v1/memories/{some_id}").status_code == 200  # SQL alone: fine
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["sql"] == "ok"

        down = len(writers.stored)
        chroma.start()  # same port, same path; the memory server is not restarted
        writers.wait_for(down + 10)
    finally:
        writers.stop()
    assert writers.unexpected == []

    in_sql = _sql(server.settings)
    assert writers.stored.items() <= in_sql.items()  # every acknowledged write is kept
    assert not set(writers.refused) & in_sql.keys()  # nothing refused was half-written
    assert len(in_sql) == len(writers.stored)
    deadline = time.monotonic() + 60
    while _index_ids(chroma, server.settings) != set(in_sql.values()):  # orphans reconciled away
        assert time.monotonic() < deadline, "the index never matched SQL again"
        time.sleep(0.5)
    with server.client(key) as client:
        search = client.post("/v1/search", json={"query": "Writer 1 logged a shipment", "k": 5})
        assert search.status_code == 200 and len(search.json()["results"]) == 5
        assert client.get("/readyz").status_code == 200
