"""Demo data for the notebooks, loaded through the SDK into a fresh namespace of its own.

`demo_data/` holds three people's multi-session conversations with an assistant
(`sessions.jsonl`: one thread per line) and what the assistant learned about them
(`facts.jsonl`: facts, keyed preferences, notes). Times are given as `days_ago`, so the data is
always as old as written: old sessions are past the server's `summary_min_age_hours` and can be
condensed, the last session of each person is from the past hour.

Every `load()` makes a new namespace, so a notebook can run again on a server that already holds
the demo data. Uses the SDK only, like the notebooks.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memory_client import (
    APIConnectionError,
    AuthenticationError,
    ConflictError,
    MemoryClient,
)

DATA_DIR = Path(__file__).resolve().parent / "demo_data"
DEMO_AGENT = "notebook-demo"
MINUTES_BETWEEN_MESSAGES = 3


@dataclass
class Demo:
    """A loaded demo: `memory` is the demo agent's client, `namespace_id` holds its memories."""

    memory: MemoryClient
    agent_id: str
    namespace_id: str
    loaded: int
    users: list[str] = field(default_factory=list)
    threads: dict[str, list[str]] = field(default_factory=dict)

    def recent_thread(self, user_id: str) -> str:
        """The user's newest conversation: the one an agent would be in right now."""
        return self.threads[user_id][-1]


def _read(name: str) -> list[dict[str, Any]]:
    with (DATA_DIR / name).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def records(now: datetime | None = None) -> list[dict[str, Any]]:
    """Every demo memory as a `create_memories` item, oldest first, with `created_at` resolved."""
    now = now or datetime.now(UTC)
    items: list[dict[str, Any]] = []
    for fact in _read("facts.jsonl"):
        item = {k: v for k, v in fact.items() if k != "days_ago"}
        item["created_at"] = now - timedelta(days=fact["days_ago"])
        items.append(item)
    for session in _read("sessions.jsonl"):
        start = now - timedelta(days=session["days_ago"])
        for index, message in enumerate(session["messages"]):
            items.append(
                {
                    "kind": "message",
                    "role": message["role"],
                    "content": message["content"],
                    "user_id": session["user_id"],
                    "thread_id": session["thread_id"],
                    "tags": session.get("tags", []),
                    "created_at": start + timedelta(minutes=MINUTES_BETWEEN_MESSAGES * index),
                }
            )
    # Oldest first, so a keyed preference written later supersedes the earlier value.
    return sorted(items, key=lambda item: item["created_at"])


def _agent_client(client: MemoryClient) -> tuple[MemoryClient, str]:
    """A client acting as an agent: this one, or (with the admin key) the demo agent's."""
    try:
        me = client.me()
    except AuthenticationError as exc:
        raise RuntimeError(
            "The server refused the API key: set MEMORY_API_KEY to the admin key "
            "(`make notebooks` reads var/admin.key) or to an agent's key."
        ) from exc
    except APIConnectionError as exc:
        raise RuntimeError(
            f"No memory server answers at {client.base_url}: start one with `make serve`, "
            "or set MEMORY_URL."
        ) from exc
    if not me.is_admin:
        assert me.agent_id is not None
        return client, me.agent_id
    agent = next((a for a in client.list_agents().data if a.name == DEMO_AGENT), None)
    if agent is None:
        try:
            agent = client.create_agent(DEMO_AGENT)
        except ConflictError:  # created meanwhile by another notebook
            agent = next(a for a in client.list_agents().data if a.name == DEMO_AGENT)
    key = client.create_key(agent.id, name="notebook")
    return MemoryClient(client.base_url, key.key), agent.id


def load(client: MemoryClient | None = None, *, now: datetime | None = None) -> Demo:
    """Load the demo data into a new namespace and return the client to explore it with.

    With the admin key the data belongs to an agent named `notebook-demo` (created once, with a
    new key per call); with an agent's key, to that agent.
    """
    memory, agent_id = _agent_client(client or MemoryClient())
    now = now or datetime.now(UTC)
    name = f"demo-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    namespace = memory.create_namespace(name, description="Notebook demo conversations")
    items = [{**item, "namespace_id": namespace.id} for item in records(now)]
    result = memory.create_memories(items)
    threads: dict[str, list[str]] = {}
    for item in items:  # oldest first, so each user's threads end with the newest
        if item.get("thread_id"):
            user_threads = threads.setdefault(item["user_id"], [])
            if item["thread_id"] not in user_threads:
                user_threads.append(item["thread_id"])
    return Demo(
        memory=memory,
        agent_id=agent_id,
        namespace_id=namespace.id,
        loaded=result.created,
        users=sorted({item["user_id"] for item in items}),
        threads=threads,
    )
