"""Graceful shutdown: SIGTERM while a summarizer run is in flight. The request finishes with 200,
the group being condensed completes, the run stops before the next group, the process exits 0,
and after a restart every group is whole or untouched."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.fake_openai import GOOD, FakeOpenAI, fake_openai_server, slow
from tests.processes import ServerProcess
from tests.summarizer.conftest import write_thread

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as fake:
        yield fake


def test_sigterm_lets_the_running_group_finish_and_the_request_answer(
    tmp_path: Path, fake_llm: FakeOpenAI
) -> None:
    # SQLite, the default: one run keeps the suite short (the crash test covers PostgreSQL).
    server = ServerProcess.configured(
        tmp_path / "var",
        log_level="info",
        summary_model="openai/fake-summarizer",
        summary_api_base=fake_llm.url,
        summary_api_key="sk-fake",
        summary_min_age_hours="24",
        summary_min_group_size="3",
    ).start()
    answer: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=60) as admin:
            agent = admin.post("/v1/agents", json={"name": "shutdown"}).json()
            threads = {
                user: [
                    m["id"] for m in write_thread(admin, f"t-{user}", user_id=user, namespace=agent)
                ]
                for user in ("u1", "u2", "u3")
            }
        namespace_id = agent["default_namespace_id"]
        # the first group is condensed at once; the model takes 3 s over the second
        fake_llm.chat_script = [GOOD, slow(3)]

        def trigger() -> None:
            response = httpx.post(
                f"{server.url}/v1/summaries/run",
                json={"namespace_id": namespace_id},
                headers=ADMIN,
                timeout=60,
            )
            answer["status"] = response.status_code
            answer["body"] = response.json()

        request = threading.Thread(target=trigger, daemon=True)
        request.start()
        deadline = time.monotonic() + 60
        while len(fake_llm.chat_requests) < 2:
            assert time.monotonic() < deadline, "the run never reached its second group"
            time.sleep(0.05)
        server.send_signal()  # SIGTERM while the second group waits on the model
        request.join(timeout=60)
        assert server.wait() == 0, server.log_tail(60)
    finally:
        server.kill()

    assert answer["status"] == 200, answer
    run = answer["body"]
    assert run["status"] == "interrupted"
    assert run["groups"] == 2 and run["failures"] == [] and len(run["summary_ids"]) == 2
    assert len(fake_llm.chat_requests) == 2  # the third group was never started

    server.start()  # again, on the same data
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=60) as admin:
            assert admin.get(f"/v1/summaries/runs/{run['id']}").json()["status"] == "interrupted"
            done = _whole_groups(admin, namespace_id, threads, run["summary_ids"])
            assert len(done) == 2

            again = admin.post("/v1/summaries/run", json={"namespace_id": namespace_id}).json()
            assert (again["status"], again["groups"], again["failures"]) == ("completed", 1, [])
            done = _whole_groups(
                admin, namespace_id, threads, run["summary_ids"] + again["summary_ids"]
            )
            assert len(done) == 3
        server.send_signal()
        assert server.wait() == 0
    finally:
        server.kill()


def _whole_groups(
    admin: httpx.Client, namespace_id: str, threads: dict[str, list[str]], summary_ids: list[str]
) -> set[str]:
    """Users whose thread is condensed, checking each thread is archived whole or untouched."""
    listed = admin.get(
        "/v1/memories",
        params={"namespace_id": namespace_id, "status": ["active", "archived"], "limit": 500},
    ).json()["data"]
    status = {m["id"]: m["status"] for m in listed}
    summaries = {m["id"] for m in listed if m["kind"] == "summary"}
    assert summaries == set(summary_ids)
    sources = {
        summary_id: {
            s["memory"]["id"]
            for s in admin.get(f"/v1/memories/{summary_id}/provenance").json()["sources"]
        }
        for summary_id in summaries
    }
    done = set()
    for user, ids in threads.items():
        states = {status[i] for i in ids}
        assert states in ({"active"}, {"archived"}), (user, states)
        if states == {"archived"}:
            assert set(ids) in sources.values(), user  # linked to exactly one summary
            done.add(user)
    return done
