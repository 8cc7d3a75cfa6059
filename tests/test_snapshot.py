"""`Database.snapshot()`: every read in it sees the state its first read saw, while other
sessions commit; a plain read session sees each commit as it lands."""

from __future__ import annotations

from sqlmodel import Session, col, select

from memory_server.db import Database
from memory_server.models import Agent
from memory_server.schemas import AgentCreate
from memory_server.services.agents import AgentService


def _names(session: Session) -> set[str]:
    return set(session.exec(select(col(Agent.name))).all())


def test_a_snapshot_keeps_its_state_while_others_commit(migrated_db: Database) -> None:
    agents = AgentService(migrated_db)
    agents.create_agent(AgentCreate(name="before"))
    with migrated_db.snapshot() as snapshot, migrated_db.read() as plain:
        assert _names(snapshot) == _names(plain) == {"before"}
        agents.create_agent(AgentCreate(name="during"))  # commits in its own transaction
        assert _names(snapshot) == {"before"}
        assert _names(plain) == {"before", "during"}
    with migrated_db.snapshot() as later:
        assert _names(later) == {"before", "during"}
