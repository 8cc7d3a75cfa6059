"""One summarizer at a time across processes sharing a database: the job lease."""

from __future__ import annotations

import threading
from datetime import timedelta

from memory_server.db import Database
from memory_server.migrations import migrate
from memory_server.services.leases import Lease
from summarizer.runner import LEASE_NAME
from tests.summarizer.conftest import run, write_thread


def test_only_one_of_several_processes_holds_a_lease(database_url, tmp_path) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'leases.db'}"
    databases = [Database(url) for _ in range(4)]
    try:
        migrate(databases[0].engine)
        leases = [Lease(db, "race", ttl=timedelta(minutes=5)) for db in databases]
        start = threading.Barrier(len(leases))
        won: list[Lease] = []

        def contend(lease: Lease) -> None:
            start.wait()
            if lease.acquire():
                won.append(lease)

        threads = [threading.Thread(target=contend, args=(lease,)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        [winner] = won
        losers = [lease for lease in leases if lease is not winner]
        assert winner.renew() and winner.acquire()  # holding it again is fine
        assert not any(lease.renew() or lease.acquire() for lease in losers)

        winner.release()
        assert losers[0].acquire() and not winner.acquire()
        expired = Lease(databases[1], "short", ttl=timedelta(seconds=-1))
        assert expired.acquire()  # expired at once: a crashed holder
        assert Lease(databases[2], "short", ttl=timedelta(minutes=1)).acquire()
        assert not expired.renew()
    finally:
        for db in databases:
            db.dispose()


def test_a_run_requested_while_another_process_runs_is_refused(make_agent, server) -> None:
    agent = make_agent()
    write_thread(agent.client, "offsite")
    db = Database(server.settings.resolved_database_url)
    try:
        other_process = Lease(db, LEASE_NAME, ttl=timedelta(minutes=1))
        assert other_process.acquire()
        busy = agent.client.post("/v1/summaries/run", json={"namespace_id": agent.namespace_id})
        assert busy.status_code == 409 and busy.json()["code"] == "summarizer_busy"
        other_process.release()
    finally:
        db.dispose()
    assert run(agent.client, agent.namespace_id)["groups"] == 1
