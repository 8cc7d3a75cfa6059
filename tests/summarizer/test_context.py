"""Context over condensed memory: a summary's archived sources are candidates like any memory,
found by their own relevance, within what the caller may read and asked for; a call reads a
pool's worth of candidates however many sources stand behind each summary."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from memory_server.driver_reads import recorded
from tests.summarizer.conftest import run, write_thread


@pytest.fixture
def summary_options() -> dict[str, Any]:
    return {"summary_max_source_tokens": 3000, "summary_target_tokens": 200}


def notes(count: int, place: str) -> list[tuple[str, str]]:
    return [
        ("user", f"Item {i} for the {place}: it costs {7 * i} euros and sits on shelf {i % 5}.")
        for i in range(count)
    ]


def context(client: httpx.Client, query: str, **options: Any) -> dict[str, Any]:
    body = {"query": query, "budget_tokens": 2000, "ranking": {"min_relevance": 0}, **options}
    response = client.post("/v1/context", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def served(body: dict[str, Any]) -> set[str]:
    return {item["id"] for item in body["items"]}


def bound_ids(parameters: Any) -> int:
    """How many memory ids a statement was given."""
    values = parameters.values() if isinstance(parameters, dict) else parameters
    flat = [v for value in values for v in (value if isinstance(value, list | tuple) else [value])]
    return sum(isinstance(v, str) and v.startswith("mem_") for v in flat)


def test_a_call_reads_a_pool_of_candidates_however_many_sources_a_summary_has(make_agent) -> None:
    agent = make_agent()
    small = write_thread(agent.client, "garden", turns=notes(6, "garden"))
    large = write_thread(agent.client, "garage", turns=notes(60, "garage"))
    report = run(agent.client, agent.namespace_id)
    assert (report["groups"], report["sources"], report["failures"]) == (2, 66, [])
    summaries = report["summary_ids"]

    for query, material in [("garden item on shelf 3", small), ("garage item on shelf 3", large)]:
        with recorded() as statements:
            body = context(agent.client, query, max_candidates=4)
        ranked = [*body["items"], *(d for d in body["dropped"] if d["tier"] == "memories")]
        # 4 dense and 4 keyword candidates at most, summaries and sources alike: none is read
        # for being a source of a summary that is among them
        assert len(ranked) <= 8, query
        assert statements and max(bound_ids(p) for _, p in statements) <= 8, query
        assert served(body) & {*summaries, *(m["id"] for m in material)}, query


def test_sources_outside_the_scope_are_never_served(make_agent) -> None:
    owner, stranger, reader = make_agent(), make_agent(), make_agent()
    mine = {m["id"] for m in write_thread(owner.client, "offsite")}
    theirs = {m["id"] for m in write_thread(stranger.client, "offsite")}
    [my_summary] = run(owner.client, owner.namespace_id)["summary_ids"]
    [their_summary] = run(stranger.client, stranger.namespace_id)["summary_ids"]
    mine.add(my_summary)
    theirs.add(their_summary)
    # archived by hand, not condensed: not a summary's source
    [aside] = write_thread(owner.client, "aside", turns=[("user", "Ana cannot eat gluten either.")])
    archived = owner.client.patch(
        f"/v1/memories/{aside['id']}", json={"status": "archived"}, headers={"If-Match": '"1"'}
    )
    assert archived.status_code == 200, archived.text
    query = "Who cannot eat gluten?"

    body = context(owner.client, query)
    assert served(body) & (mine - {my_summary})  # the archived turn that answers, expanded
    assert served(body) <= mine  # not the stranger's, not the memory archived by hand
    assert aside["id"] in served(context(owner.client, query, include_archived=True))
    assert not served(context(stranger.client, query)) & mine

    only_summaries = context(owner.client, query, kinds=["summary"])
    assert served(only_summaries) == {my_summary}
    assert not served(context(owner.client, query, user_id="ben"))

    grant = owner.client.post(
        f"/v1/namespaces/{owner.namespace_id}/grants",
        json={"agent_id": reader.id, "permission": "read"},
    )
    assert grant.status_code == 201, grant.text
    assert served(context(reader.client, query)) & mine
    revoked = owner.client.delete(
        f"/v1/namespaces/{owner.namespace_id}/grants/{grant.json()['id']}"
    )
    assert revoked.status_code == 200, revoked.text
    assert not served(context(reader.client, query))
