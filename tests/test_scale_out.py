"""Scale-out: two server processes on one PostgreSQL database and one Chroma server.

Writers go through both at once; every write is readable through the other at once; keyed
facts written through both end with one active value; the summarization schedule, firing in
both, condenses each group exactly once (the database lease works across processes)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.processes import ChromaServer, ServerProcess
from tests.summarizer.conftest import CONVERSATION, write_thread

THREADS = ["t-lisbon", "t-porto", "t-faro", "t-braga"]


@pytest.fixture
def cluster(tmp_path: Path, database_url: str | None) -> Iterator[list[ServerProcess]]:
    """One `chroma run`, two `memory-server serve` on the same PostgreSQL database."""
    if database_url is None:
        pytest.skip("scale-out runs on PostgreSQL, the database several processes share")
    chroma = ChromaServer(tmp_path / "chroma").start()
    settings = {
        "database_url": database_url,
        "vector_store": "chroma-server",
        "chroma_port": str(chroma.port),
        "log_level": "info",  # the logs show that both schedulers fire
        "summary_interval_minutes": "0.05",  # every 3 s, in each process
        "summary_min_age_hours": "24",
        "summary_min_group_size": "3",
        "summary_max_source_tokens": "400",
        "summary_target_tokens": "60",
        "reconcile_interval_minutes": "0.05",
    }
    servers = [ServerProcess.configured(tmp_path / name / "var", **settings) for name in ("a", "b")]
    try:
        for server in servers:
            server.launch()  # both start (migrate, reconcile) at the same moment
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
        chroma.stop()


def _agent(admin: httpx.Client, name: str) -> str:
    agent = admin.post("/v1/agents", json={"name": name}).json()
    return str(admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"])


def test_two_processes_share_one_database_and_one_index(
    cluster: list[ServerProcess], database_url: str
) -> None:
    a, b = cluster
    with a.client() as admin:
        key = _agent(admin, "scaled")  # made through one process, used through both
    clients = [a.client(key), b.client(key)]
    problems: list[str] = []

    def writer(worker: int) -> None:
        """Write through one process, read back through the other at once."""
        here, there = clients[worker % 2], clients[(worker + 1) % 2]
        for n in range(6):
            thread = f"w{worker}-{n}"
            content = f"Courier {worker} delivered parcel {n} to dock {worker * 10 + n}"
            written = here.post("/v1/memories", json={"content": content, "thread_id": thread})
            if written.status_code != 201:
                problems.append(f"write: {written.status_code} {written.text}")
                continue
            memory_id = written.json()["memory"]["id"]
            got = there.get(f"/v1/memories/{memory_id}")
            listed = there.get("/v1/memories", params={"thread_id": thread}).json()["data"]
            found = there.post("/v1/search", json={"query": content, "thread_id": thread}).json()
            if got.status_code != 200 or got.json()["content"] != content:
                problems.append(f"get {memory_id}: {got.status_code}")
            if [m["id"] for m in listed] != [memory_id]:
                problems.append(f"list {thread}: {listed}")
            if [r["memory"]["id"] for r in found["results"]] != [memory_id]:
                problems.append(f"search {thread}: {found}")

    tones = [f"Ana wants replies in tone number {n}" for n in range(10)]

    def keyed(worker: int) -> None:
        """Both processes overwrite one keyed fact at the same time."""
        for tone in tones[worker::2]:
            response = clients[worker].post(
                "/v1/memories",
                json={"content": tone, "kind": "preference", "user_id": "ana", "key": "tone"},
            )
            if response.status_code != 201:
                problems.append(f"keyed: {response.status_code} {response.text}")

    def old_thread(index: int) -> None:
        """Old conversations for the summarizer, one batch each, through either process."""
        write_thread(clients[index % 2], THREADS[index], user_id=f"user-{index}")

    jobs = [
        *(threading.Thread(target=writer, args=(w,)) for w in range(4)),
        *(threading.Thread(target=keyed, args=(w,)) for w in range(2)),
        *(threading.Thread(target=old_thread, args=(i,)) for i in range(len(THREADS))),
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert problems == []

    for client in clients:  # one current value, the same through both processes
        active = client.get("/v1/memories", params={"user_id": "ana", "kind": "preference"})
        [current] = active.json()["data"]
        assert current["content"] in tones and current["status"] == "active"
        history = client.get(
            "/v1/memories",
            params={"user_id": "ana", "kind": "preference", "status": "superseded"},
        ).json()["data"]
        assert len(history) == len(tones) - 1

    summaries = _wait_for_summaries(clients[1], len(THREADS))
    sources = [s for summary in summaries for s in _sources(clients[0], summary["id"])]
    assert len(sources) == len(set(sources)) == len(THREADS) * len(CONVERSATION)
    assert sorted(s["thread_id"] for s in summaries) == sorted(THREADS)  # one each, no duplicate

    runs = _scheduled_runs(database_url)
    assert sum(r["groups"] for r in runs) == len(THREADS)
    for first, second in itertools.pairwise(runs):  # never two runs at once
        assert first["finished_at"] is not None and first["finished_at"] <= second["started_at"]
    for server in cluster:  # both schedules fired; the lease let one run at a time
        assert "scheduled summary run:" in server.log_tail(100_000)
    for client in clients:
        client.close()


def _wait_for_summaries(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 45
    while True:
        summaries = client.get("/v1/memories", params={"kind": "summary", "limit": 100}).json()
        pending = client.get(
            "/v1/memories", params={"kind": "message", "status": "active", "limit": 100}
        ).json()
        if len(summaries["data"]) >= count and not pending["data"]:
            time.sleep(4)  # another tick of both schedules: nothing more may be condensed
            again = client.get("/v1/memories", params={"kind": "summary", "limit": 100}).json()
            assert len(again["data"]) == count
            return list(again["data"])
        assert time.monotonic() < deadline, f"{len(summaries['data'])} summaries so far"
        time.sleep(0.5)


def _sources(client: httpx.Client, summary_id: str) -> list[str]:
    tree = client.get(f"/v1/memories/{summary_id}/provenance").json()
    return [source["memory"]["id"] for source in tree["sources"]]


def _scheduled_runs(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    'SELECT started_at, finished_at, "groups", status FROM summary_run '
                    "WHERE triggered_by = 'schedule' ORDER BY started_at"
                )
            ).all()
    finally:
        engine.dispose()
    runs = [dict(row._mapping) for row in rows]
    assert all(r["status"] == "completed" for r in runs[:-1])  # none abandoned
    assert all(isinstance(r["started_at"], datetime) for r in runs)
    return [r for r in runs if r["status"] == "completed"]
