"""The summarizer with a model: litellm really calls the fake OpenAI server on loopback."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fake_openai import (
    EMPTY,
    GOOD,
    SERVER_ERROR,
    rate_limited,
    slow,
)
from tests.summarizer.conftest import run, write_thread


@pytest.fixture
def summary_options(llm_summary_options: dict[str, Any]) -> dict[str, Any]:
    return llm_summary_options  # this module's server summarizes with the fake model


def test_model_summary_is_stored_with_its_token_counts(make_agent, fake_llm) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")

    report = run(agent.client, agent.namespace_id)
    assert (report["groups"], report["sources"], report["failures"]) == (1, len(sources), [])
    [request] = fake_llm.chat_requests
    assert request["model"] == "fake-summarizer"
    system, user = request["messages"]
    assert all(
        word in system["content"] for word in ("fact", "decision", "preference", "open item")
    )
    assert user["content"].startswith("[2025-03-01 09:00] user: I am planning the team offsite")
    assert report["prompt_tokens"] > 0 and report["completion_tokens"] > 0
    assert report["cost"] == 0.0  # litellm has no price for this model

    [summary_id] = report["summary_ids"]
    summary = agent.client.get(f"/v1/memories/{summary_id}").json()
    assert summary["content"].startswith("- [2025-03-01 09:00] user: I am planning")
    assert summary["metadata"]["summarizer"] == "llm:openai/fake-summarizer"
    assert summary["token_count"] == report["tokens_after"]


def test_unusable_answers_are_retried_then_the_group_fails_and_nothing_is_stored(
    make_agent, fake_llm
) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")
    fake_llm.chat_script = [EMPTY, EMPTY, EMPTY]

    report = run(agent.client, agent.namespace_id)
    assert len(fake_llm.chat_requests) == 3
    assert (report["groups"], report["summary_ids"]) == (0, [])
    [failure] = report["failures"]
    assert failure["source_ids"] == [s["id"] for s in sources]
    assert "empty summary" in failure["reason"]
    listed = agent.client.get("/v1/memories", params={"status": ["active", "archived"]}).json()
    assert {(m["kind"], m["status"]) for m in listed["data"]} == {("message", "active")}
    assert agent.client.get(f"/v1/summaries/runs/{report['id']}").json()["failures"] == [failure]


def test_rate_limits_server_errors_and_timeouts_are_retried(make_agent, fake_llm) -> None:
    agent = make_agent()
    for thread in ("a", "b", "c"):  # told by different users, so no two summaries are identical
        write_thread(agent.client, thread, user_id=f"user-{thread}")
    fake_llm.chat_script = [rate_limited(1), GOOD, SERVER_ERROR, GOOD, slow(2.5), GOOD]

    report = run(agent.client, agent.namespace_id)
    assert report["failures"] == []
    assert (report["groups"], len(report["summary_ids"])) == (3, 3)
    assert len(fake_llm.chat_requests) == 6


def test_a_model_that_keeps_failing_fails_the_group(make_agent, fake_llm) -> None:
    agent = make_agent()
    write_thread(agent.client, "offsite")
    fake_llm.chat_script = [SERVER_ERROR] * 3

    report = run(agent.client, agent.namespace_id)
    [failure] = report["failures"]
    assert "model call failed" in failure["reason"] and report["groups"] == 0
