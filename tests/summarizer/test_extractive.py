"""The summarizer without a model: extractive summaries picked by the real embedding model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.summarizer.conftest import run, write_thread


def test_old_thread_is_condensed_into_a_traceable_summary(make_agent) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")
    recent = write_thread(
        agent.client,
        "today",
        start=datetime.now(UTC) - timedelta(hours=1),
        turns=[("user", "Remind me to water the plants.")] * 4,
    )
    too_few = write_thread(agent.client, "short", turns=[("user", "Call me Ana, please.")] * 2)

    report = run(agent.client, agent.namespace_id)
    assert report["status"] == "completed" and report["failures"] == []
    assert (report["groups"], report["sources"]) == (1, len(sources))
    assert 0 < report["tokens_after"] < report["tokens_before"]
    [summary_id] = report["summary_ids"]

    summary = agent.client.get(f"/v1/memories/{summary_id}").json()
    assert summary["kind"] == "summary" and summary["level"] == 1
    assert (summary["user_id"], summary["thread_id"]) == ("ana", "offsite")
    assert summary["covers_from"] == sources[0]["created_at"]
    assert summary["covers_to"] == sources[-1]["created_at"]
    assert summary["metadata"]["summarizer"] == "extractive"
    day, *lines = summary["content"].splitlines()
    assert day == "2025-03-01:"  # one day's entries: dated once, above the lines
    assert lines and all(line.startswith(("- user: ", "- assistant: ")) for line in lines)
    said = " ".join(s["content"] for s in sources)
    assert all(line.split(": ", 1)[1] in said for line in lines)  # extracted verbatim
    assert report["tokens_after"] <= 0.3 * report["tokens_before"] + 10  # a share, dated

    for source in sources:
        archived = agent.client.get(f"/v1/memories/{source['id']}").json()
        assert (archived["status"], archived["version"]) == ("archived", 2)
    for untouched in recent + too_few:
        assert agent.client.get(f"/v1/memories/{untouched['id']}").json()["status"] == "active"

    tree = agent.client.get(f"/v1/memories/{summary_id}/provenance").json()
    assert tree["memory"]["id"] == summary_id and tree["hidden_sources"] == 0
    assert [node["memory"]["id"] for node in tree["sources"]] == [s["id"] for s in sources]
    assert all(node["sources"] == [] for node in tree["sources"])

    recorded = agent.client.get(f"/v1/summaries/runs/{report['id']}").json()
    assert (recorded["groups"], recorded["tokens_after"]) == (1, report["tokens_after"])

    query = {"query": "hotel budget per night near the river", "k": 20}
    served = {
        h["memory"]["id"] for h in agent.client.post("/v1/search", json=query).json()["results"]
    }
    assert summary_id in served and not served & {s["id"] for s in sources}
    query["include_archived"] = True
    served = {
        h["memory"]["id"] for h in agent.client.post("/v1/search", json=query).json()["results"]
    }
    assert served & {s["id"] for s in sources}

    context = agent.client.post(
        "/v1/context", json={"query": "offsite plans", "budget_tokens": 2000}
    ).json()
    used = {item["id"] for item in context["items"]}
    assert used & {summary_id, *(s["id"] for s in sources)}  # the summary or its sources
    assert not (summary_id in used and used & {s["id"] for s in sources})  # never both

    again = run(agent.client, agent.namespace_id)
    assert (again["groups"], again["sources"], again["summary_ids"]) == (0, 0, [])


def test_dry_run_lists_groups_and_writes_nothing(make_agent) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")

    preview = run(agent.client, agent.namespace_id, dry_run=True)
    assert preview["dry_run"] is True and preview["summary_ids"] == []
    [group] = preview["plan"]
    assert group["source_ids"] == [s["id"] for s in sources]
    assert group["source_tokens"] == sum(s["token_count"] for s in sources)
    assert (group["user_id"], group["thread_id"]) == ("ana", "offsite")

    listed = agent.client.get("/v1/memories", params={"status": ["active", "archived"]}).json()
    assert {m["status"] for m in listed["data"]} == {"active"}
    assert not [m for m in listed["data"] if m["kind"] == "summary"]
    assert agent.client.get(f"/v1/summaries/runs/{preview['id']}").status_code == 404


def test_strangers_cannot_run_or_see_runs_and_provenance(make_agent) -> None:
    owner, stranger, reader = make_agent(), make_agent(), make_agent()
    write_thread(owner.client, "offsite")
    grant = {"agent_id": reader.id, "permission": "read"}
    assert (
        owner.client.post(f"/v1/namespaces/{owner.namespace_id}/grants", json=grant).status_code
        == 201
    )
    body = {"namespace_id": owner.namespace_id}
    assert stranger.client.post("/v1/summaries/run", json=body).status_code == 404
    assert reader.client.post("/v1/summaries/run", json=body).status_code == 403
    assert stranger.client.post("/v1/summaries/run", json={}).status_code == 422

    report = run(owner.client, owner.namespace_id)
    [summary_id] = report["summary_ids"]
    for path in (f"/v1/summaries/runs/{report['id']}", f"/v1/memories/{summary_id}/provenance"):
        missing = path.replace(report["id"], "run_missing").replace(summary_id, "mem_missing")
        hidden = stranger.client.get(path)
        assert hidden.status_code == 404, path
        assert stranger.client.get(missing).json()["code"] == hidden.json()["code"]
        assert reader.client.get(path).status_code == 200, path


def test_deleting_a_source_deletes_the_summaries_built_on_it(make_agent, admin) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")
    [summary_id] = run(agent.client, agent.namespace_id)["summary_ids"]

    deleted = agent.client.delete(f"/v1/memories/{sources[2]['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["also_deleted"] == [summary_id]
    assert agent.client.get(f"/v1/memories/{summary_id}").status_code == 404
    assert agent.client.get(f"/v1/memories/{sources[3]['id']}").json()["status"] == "archived"
    hits = agent.client.post(
        "/v1/search", json={"query": "hotel budget", "k": 20, "include_archived": True}
    ).json()["results"]
    assert summary_id not in {h["memory"]["id"] for h in hits}
    plain = agent.client.delete(f"/v1/memories/{sources[3]['id']}").json()
    assert plain["also_deleted"] == []


def test_forgetting_a_user_deletes_their_memories_and_summaries(make_agent) -> None:
    agent, stranger = make_agent(), make_agent()
    sources = write_thread(agent.client, "offsite", user_id="ana")
    kept = write_thread(agent.client, "offsite", user_id="ben", turns=[("user", "Hi there!")])
    [summary_id] = run(agent.client, agent.namespace_id)["summary_ids"]
    path, params = "/v1/users/ana/memories", {"namespace_id": agent.namespace_id}
    assert stranger.client.delete(path, params=params).status_code == 404

    forgotten = agent.client.delete(path, params=params)
    assert forgotten.status_code == 200, forgotten.text
    assert set(forgotten.json()["deleted"]) == {summary_id, *(s["id"] for s in sources)}
    listed = agent.client.get("/v1/memories", params={"status": ["active", "archived"]}).json()
    assert [m["id"] for m in listed["data"]] == [kept[0]["id"]]


def test_context_never_spends_budget_on_a_summary_and_its_own_sources(make_agent) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")
    [summary_id] = run(agent.client, agent.namespace_id)["summary_ids"]
    source_ids = {s["id"] for s in sources}

    body = agent.client.post(
        "/v1/context",
        json={
            "query": "hotel budget per night near the river",
            "budget_tokens": 2000,
            "include_archived": True,
            "ranking": {"min_relevance": 0},
        },
    ).json()
    kept = {item["id"] for item in body["items"]}
    assert kept & ({summary_id} | source_ids)  # the material is served, once
    assert not (summary_id in kept and kept & source_ids)
    dropped = {d["id"]: d for d in body["dropped"]}
    if summary_id in kept:
        assert all(dropped[s]["reason"] == "summarized" for s in source_ids)
        assert all(dropped[s]["duplicate_of"] == summary_id for s in source_ids)
        item = next(i for i in body["items"] if i["id"] == summary_id)
        assert item["provenance"] == f"/v1/memories/{summary_id}/provenance"
    else:
        assert dropped[summary_id]["reason"] == "expanded"
        assert dropped[summary_id]["duplicate_of"] in kept


def test_context_expands_a_summary_into_its_sources_when_they_score_higher(make_agent) -> None:
    agent = make_agent()
    sources = write_thread(agent.client, "offsite")
    [summary_id] = run(agent.client, agent.namespace_id)["summary_ids"]
    source_ids = {s["id"] for s in sources}
    gluten = next(s["id"] for s in sources if "cannot eat gluten" in s["content"])

    def context(query: str, budget: int) -> dict:
        ranking = {"min_relevance": 0}  # the summary is ranked, whatever it kept
        body = {"query": query, "budget_tokens": budget, "ranking": ranking}
        response = agent.client.post("/v1/context", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    # A pointed question: the archived turn that answers it outranks the summary, and fits.
    body = context("Which of us cannot eat gluten?", 2000)
    served = {item["id"]: item for item in body["items"]}
    assert gluten in served and summary_id not in served
    assert agent.client.get(f"/v1/memories/{gluten}").json()["status"] == "archived"
    dropped = {d["id"]: d for d in body["dropped"]}
    assert dropped[summary_id]["reason"] == "expanded"
    assert dropped[summary_id]["duplicate_of"] in served.keys() & source_ids
    assert "cannot eat gluten" in body["context"]

    # No room for the turn: nothing of this material is served twice, whatever fits first wins.
    for budget in (40, 60, 90, 140):
        tight = context("Which of us cannot eat gluten?", budget)
        kept = {item["id"] for item in tight["items"]}
        assert tight["tokens_used"] <= budget
        assert not (summary_id in kept and kept & source_ids)

    # Without a query that favours one turn, the summary stands for its sources.
    overview = context("team offsite in Lisbon: hotel, restaurant, activities", 2000)
    served = {item["id"] for item in overview["items"]}
    assert served & ({summary_id} | source_ids)
    assert not (summary_id in served and served & source_ids)
