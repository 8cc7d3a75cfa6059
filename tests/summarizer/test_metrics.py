"""Summarizer runs, groups, tokens and cost show on `/metrics`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.fake_openai import EMPTY, GOOD, FakeOpenAI
from tests.scrape import scrape, value
from tests.summarizer.conftest import run, write_thread


@pytest.fixture
def summary_options(llm_summary_options: dict[str, Any]) -> dict[str, Any]:
    return llm_summary_options  # this module's server summarizes with the fake model


def test_a_run_with_one_condensed_and_one_failed_group(
    server: LiveServer, make_agent, fake_llm: FakeOpenAI
) -> None:
    agent = make_agent()
    write_thread(agent.client, "t1", user_id="u1")
    write_thread(agent.client, "t2", user_id="u2")
    before = scrape(server.url)
    fake_llm.chat_script = [GOOD, EMPTY, EMPTY, EMPTY]  # the second group's answers are unusable

    report = run(agent.client, agent.namespace_id)
    assert report["groups"] == 1 and len(report["failures"]) == 1

    after = scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("memory_summarizer_runs_total", status="completed") == 1
    assert moved("memory_summarizer_groups_total", outcome="condensed") == 1
    assert moved("memory_summarizer_groups_total", outcome="failed") == 1
    assert moved("memory_summarizer_tokens_total", direction="prompt") == report["prompt_tokens"]
    assert (
        moved("memory_summarizer_tokens_total", direction="completion")
        == report["completion_tokens"]
    )
    assert report["prompt_tokens"] > 0
    assert moved("memory_summarizer_cost_usd_total") == report["cost"]
