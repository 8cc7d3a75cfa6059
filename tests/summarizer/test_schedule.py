"""The summarizer on a schedule: registered when an interval is set, over every namespace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from memory_server.auth import Principal
from memory_server.config import Settings
from memory_server.models import Memory, SummaryRun
from memory_server.runtime import build_runtime
from memory_server.schemas import AgentCreate, MemoryCreate, Role
from tests.conftest import release_chroma_clients
from tests.summarizer.conftest import CONVERSATION, LONG_AGO


@pytest.fixture
def summary_options() -> dict[str, Any]:
    return {"summary_interval_minutes": 30}


def test_scheduled_run_condenses_every_namespace(settings: Settings) -> None:
    runtime = build_runtime(settings)
    try:
        runtime.start_jobs()
        assert runtime.scheduler is not None
        job = runtime.scheduler.get_job("summarize")
        assert job is not None and job.trigger.interval == timedelta(minutes=30)

        admin = Principal(agent_id=None, key_id=None, is_admin=True)
        for name in ("one", "two"):
            agent = runtime.agents.create_agent(AgentCreate(name=name))
            items = [
                MemoryCreate(
                    namespace_id=agent.default_namespace_id,
                    kind="message",
                    role=Role(role),
                    content=content,
                    thread_id="t",
                    created_at=LONG_AGO + timedelta(minutes=i),
                )
                for i, (role, content) in enumerate(CONVERSATION)
            ]
            runtime.memories.create_many(admin, items)
        job.func()  # what the scheduler calls
        with runtime.db.read() as session:
            kinds = [m.kind for m in session.exec(select(Memory)).all()]
            [run] = session.exec(select(SummaryRun)).all()
        assert kinds.count("summary") == 2
        assert (run.namespace_id, run.triggered_by, run.groups) == (None, "schedule", 2)
    finally:
        runtime.close()
        release_chroma_clients()
