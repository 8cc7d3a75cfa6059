"""The summarizer's tests: the real server with summary settings small enough for a few entries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_server.config import Settings
from tests.conftest import server_settings
from tests.fake_openai import FakeOpenAI, fake_openai_server

LONG_AGO = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

CONVERSATION = [
    (
        "user",
        "I am planning the team offsite in Lisbon. It should happen in the first week of June.",
    ),
    ("assistant", "Noted: a team offsite in Lisbon during the first week of June."),
    ("user", "Book a hotel near the river. My budget is 180 euros per night per person."),
    ("assistant", "I will look for riverside hotels under 180 euros a night."),
    ("user", "Maria is vegetarian and Tom cannot eat gluten. Please tell the restaurant."),
    ("assistant", "I will tell the restaurant about the vegetarian and gluten-free needs."),
    ("user", "We still need to decide between a sailing trip and a cooking class."),
]


@pytest.fixture
def fake_llm() -> Iterator[FakeOpenAI]:
    """The OpenAI-compatible fake on loopback that litellm really calls."""
    with fake_openai_server() as fake:
        yield fake


@pytest.fixture
def llm_summary_options(fake_llm: FakeOpenAI) -> dict[str, Any]:
    """Settings that summarize with a model: the fake one. A module opts in by overriding
    `summary_options` with these."""
    return {
        "summary_model": "openai/fake-summarizer",
        "summary_api_base": fake_llm.url,
        "summary_api_key": "sk-fake",
        "summary_timeout_seconds": 1,
    }


@pytest.fixture
def summary_options() -> dict[str, Any]:
    """Extra settings for a test module (the LLM tests point these at the fake model)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, summary_options: dict[str, Any]) -> Settings:
    options: dict[str, Any] = {
        "summary_min_age_hours": 24,
        "summary_min_group_size": 3,
        "summary_max_source_tokens": 400,
        "summary_target_tokens": 60,
    }
    return server_settings(tmp_path / "var", database_url, **(options | summary_options))


def write_thread(
    client: httpx.Client,
    thread_id: str,
    *,
    user_id: str = "ana",
    start: datetime = LONG_AGO,
    turns: list[tuple[str, str]] = CONVERSATION,
    namespace: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Store a conversation as old messages, one minute apart; return the stored memories.

    `namespace` is the agent whose default namespace to write to (for the admin key)."""
    target = {"namespace_id": namespace["default_namespace_id"]} if namespace else {}
    items = [
        {
            **target,
            "kind": "message",
            "role": role,
            "content": content,
            "user_id": user_id,
            "thread_id": thread_id,
            "created_at": (start + timedelta(minutes=i)).isoformat(),
        }
        for i, (role, content) in enumerate(turns)
    ]
    response = client.post("/v1/memories/batch", json={"memories": items})
    assert response.status_code == 201, response.text
    return [r["memory"] for r in response.json()["results"]]


def run(client: httpx.Client, namespace_id: str | None, **options: Any) -> dict[str, Any]:
    response = client.post("/v1/summaries/run", json={"namespace_id": namespace_id, **options})
    assert response.status_code == 200, response.text
    return dict(response.json())
