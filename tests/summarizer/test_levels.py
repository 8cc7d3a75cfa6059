"""Summaries of summaries: levels, provenance down to the originals, and deletion upwards."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.summarizer.conftest import LONG_AGO, run, write_thread


@pytest.fixture
def summary_options() -> dict[str, Any]:
    # one conversation (109 tokens) per group, and summaries condensed again
    return {
        "summary_kinds": ["message", "summary"],
        "summary_max_source_tokens": 120,
        "summary_target_tokens": 40,
    }


def test_summaries_are_condensed_again_and_trace_back_to_the_originals(make_agent) -> None:
    agent = make_agent()
    weeks = [
        write_thread(agent.client, "offsite", start=LONG_AGO + timedelta(weeks=w)) for w in range(3)
    ]
    first = run(agent.client, agent.namespace_id)
    assert (first["groups"], first["failures"]) == (3, [])
    second = run(agent.client, agent.namespace_id)
    assert (second["groups"], second["sources"], second["failures"]) == (1, 3, [])
    [top_id] = second["summary_ids"]

    top = agent.client.get(f"/v1/memories/{top_id}").json()
    assert top["level"] == 2
    assert top["covers_from"] == weeks[0][0]["created_at"]
    assert top["covers_to"] == weeks[2][-1]["created_at"]

    tree = agent.client.get(f"/v1/memories/{top_id}/provenance").json()
    assert [n["memory"]["id"] for n in tree["sources"]] == first["summary_ids"]
    for node, week in zip(tree["sources"], weeks, strict=True):
        assert node["memory"]["level"] == 1 and node["memory"]["status"] == "archived"
        assert [leaf["memory"]["id"] for leaf in node["sources"]] == [m["id"] for m in week]

    deleted = agent.client.delete(f"/v1/memories/{weeks[1][0]['id']}").json()
    assert set(deleted["also_deleted"]) == {first["summary_ids"][1], top_id}
    survivor = agent.client.get(f"/v1/memories/{first['summary_ids'][0]}").json()
    assert survivor["status"] == "archived"


def test_context_reaches_the_originals_of_a_summary_of_summaries_only_through_it(
    make_agent,
) -> None:
    agent = make_agent()
    weeks = [
        write_thread(agent.client, "offsite", start=LONG_AGO + timedelta(weeks=w)) for w in range(3)
    ]
    originals = {m["id"] for week in weeks for m in week}
    first = run(agent.client, agent.namespace_id)["summary_ids"]
    [top_id] = run(agent.client, agent.namespace_id)["summary_ids"]

    body = agent.client.post(
        "/v1/context",
        json={
            "query": "Which of us cannot eat gluten?",
            "budget_tokens": 2000,
            "ranking": {"min_relevance": 0},
        },
    ).json()
    served = {item["id"] for item in body["items"]}
    # the summaries the top one condensed are its sources, and may stand in for it; the entries
    # under them are archived sources of archived summaries: out of scope
    assert served & {top_id, *first}
    assert not served & originals
    assert not (top_id in served and served & set(first))
    archived = agent.client.post(
        "/v1/context",
        json={
            "query": "Which of us cannot eat gluten?",
            "budget_tokens": 2000,
            "include_archived": True,
            "ranking": {"min_relevance": 0},
        },
    ).json()
    assert {item["id"] for item in archived["items"]} & originals
