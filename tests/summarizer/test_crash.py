"""A server killed in the middle of a run leaves every group whole or untouched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY, free_port
from tests.fake_openai import GOOD, FakeOpenAI, fake_openai_server, slow
from tests.summarizer.conftest import write_thread

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


class ServerProcess:
    """`memory-server serve` as a child process, which a test may kill outright."""

    def __init__(self, settings: Settings, env: dict[str, str]):
        self.url = f"http://127.0.0.1:{settings.port}"
        self._env = env
        self._log = settings.data_dir.parent / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memory_server.cli", "serve"],
                env=self._env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited during startup"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture
def crash_settings(tmp_path: Path, database_url: str | None, fake_llm: FakeOpenAI) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        admin_key=ADMIN_KEY,
        port=free_port(),
        summary_model="openai/fake-summarizer",
        summary_api_base=fake_llm.url,
        summary_min_age_hours=24,
        summary_min_group_size=3,
    )


def _env(settings: Settings) -> dict[str, str]:
    env = os.environ | {
        "MEMORY_DATA_DIR": str(settings.data_dir),
        "MEMORY_ADMIN_KEY": ADMIN_KEY,
        "MEMORY_PORT": str(settings.port),
        "MEMORY_LOG_LEVEL": "warning",
        "MEMORY_SUMMARY_MODEL": settings.summary_model or "",
        "MEMORY_SUMMARY_API_BASE": settings.summary_api_base or "",
        "MEMORY_SUMMARY_API_KEY": "sk-fake",
        "MEMORY_SUMMARY_MIN_AGE_HOURS": "24",
        "MEMORY_SUMMARY_MIN_GROUP_SIZE": "3",
        "MEMORY_SUMMARY_LEASE_SECONDS": "3",  # the killed process's lease lapses before restart
    }
    if settings.database_url:
        env["MEMORY_DATABASE_URL"] = settings.database_url
    return env


def test_a_run_killed_midway_leaves_each_group_whole_and_the_next_run_finishes(
    crash_settings: Settings, fake_llm: FakeOpenAI
) -> None:
    if crash_settings.database_url is None:
        # Two server starts cost ~40 s; the code under test is the same transaction on both
        # backends, so it runs once, on PostgreSQL, the backend several processes share.
        pytest.skip("run on PostgreSQL only, to keep the suite short")
    server = ServerProcess(crash_settings, _env(crash_settings)).start()
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS) as admin:
            agent = admin.post("/v1/agents", json={"name": "crash"}).json()
            threads = {
                user: [m["id"] for m in write_thread(admin, "t", user_id=user, namespace=agent)]
                for user in ("u1", "u2", "u3")
            }
        # the first group is condensed at once; the model then hangs on the second
        fake_llm.chat_script = [GOOD, slow(60), slow(60)]
        trigger = threading.Thread(
            target=_post_quietly,
            args=(f"{server.url}/v1/summaries/run", agent["default_namespace_id"]),
            daemon=True,
        )
        trigger.start()
        deadline = time.monotonic() + 60
        while len(fake_llm.chat_requests) < 2:
            assert time.monotonic() < deadline, "the run never reached its second group"
            time.sleep(0.05)
        server.kill()
    finally:
        server.kill()

    summaries, links, statuses = _state(crash_settings)
    assert len(summaries) == 1 and len(links) == len(threads["u1"])
    done = {user for user, ids in threads.items() if statuses[ids[0]] == "archived"}
    assert len(done) == 1  # exactly one group committed, before the kill
    for user, ids in threads.items():
        expected = "archived" if user in done else "active"
        assert {statuses[i] for i in ids} == {expected}, user
    assert {source for _, source in links} == set(threads[done.pop()])
    assert {summary for summary, _ in links} == set(summaries)

    fake_llm.chat_script = []
    server = ServerProcess(crash_settings, _env(crash_settings)).start()
    try:
        with httpx.Client(base_url=server.url, headers=ADMIN_HEADERS) as admin:
            report = admin.post(
                "/v1/summaries/run",
                json={"namespace_id": agent["default_namespace_id"]},
                timeout=60,
            ).json()
            assert (report["groups"], report["failures"]) == (2, [])
    finally:
        server.kill(signal.SIGTERM)
    summaries, links, statuses = _state(crash_settings)
    assert len(summaries) == 3 and set(statuses.values()) == {"archived", "summary-active"}
    assert len(links) == sum(len(ids) for ids in threads.values())
    runs = _runs(crash_settings)
    assert sorted(runs) == ["abandoned", "completed"]


def _post_quietly(url: str, namespace_id: str) -> None:
    with contextlib.suppress(httpx.TransportError):  # the server is killed under it
        httpx.post(
            url,
            json={"namespace_id": namespace_id},
            headers=ADMIN_HEADERS,
            timeout=120,
        )


def _state(settings: Settings) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT id, kind, status FROM memory")).all()
            links = connection.execute(text("SELECT summary_id, source_id FROM memory_link")).all()
    finally:
        engine.dispose()
    summaries = [row.id for row in rows if row.kind == "summary"]
    statuses = {
        row.id: ("summary-" + row.status if row.kind == "summary" else row.status) for row in rows
    }
    return summaries, [(link.summary_id, link.source_id) for link in links], statuses


def _runs(settings: Settings) -> list[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT status FROM summary_run")).scalars())
    finally:
        engine.dispose()
