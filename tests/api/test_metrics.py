"""`/metrics`: the series move with real calls, routes are templates, stores are counted."""

from __future__ import annotations

import httpx

from memory_server.config import Settings
from memory_server.vectors import open_vector_store
from tests.conftest import LiveServer, release_chroma_clients
from tests.scrape import scrape, series, value

REQUESTS = "memory_http_request_duration_seconds_count"
STAGES = "memory_request_stage_seconds_count"


def _notes(count: int, topic: str) -> dict[str, object]:
    return {
        "memories": [
            {"kind": "note", "content": f"{topic} note number {i}", "user_id": "dana"}
            for i in range(count)
        ]
    }


def test_requests_and_search_and_context_stages_are_measured(server: LiveServer, make_agent):
    agent = make_agent()
    before = scrape(server.url)

    written = agent.client.post("/v1/memories/batch", json=_notes(3, "billing"))
    assert written.status_code == 201
    memory_id = written.json()["results"][0]["memory"]["id"]
    assert agent.client.get(f"/v1/memories/{memory_id}").status_code == 200
    assert agent.client.get("/v1/memories/mem_doesnotexist").status_code == 404
    assert agent.client.post("/v1/search", json={"query": "billing", "k": 2}).status_code == 200
    context = agent.client.post("/v1/context", json={"query": "billing", "budget_tokens": 100})
    assert context.status_code == 200
    assert agent.client.get("/no/such/route/mem_123").status_code == 404

    after = scrape(server.url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(REQUESTS, method="POST", route="/v1/memories/batch", status="2xx") == 1
    assert moved(REQUESTS, method="GET", route="/v1/memories/{memory_id}", status="2xx") == 1
    assert moved(REQUESTS, method="GET", route="/v1/memories/{memory_id}", status="4xx") == 1
    assert moved(REQUESTS, method="POST", route="/v1/search", status="2xx") == 1
    assert moved(REQUESTS, method="POST", route="/v1/context", status="2xx") == 1
    assert moved(REQUESTS, method="GET", route="unmatched", status="4xx") == 1
    # the histogram has buckets, and its sum moved by a positive duration
    assert (
        moved(
            "memory_http_request_duration_seconds_sum",
            method="POST",
            route="/v1/search",
            status="2xx",
        )
        > 0
    )
    assert (
        moved(
            "memory_http_request_duration_seconds_bucket",
            method="POST",
            route="/v1/search",
            status="2xx",
            le="+Inf",
        )
        == 1
    )
    # raw paths (ids) never become label values
    routes = {labels["route"] for labels in series(after, REQUESTS)}
    assert not any("mem_" in route or "/no/such" in route for route in routes), routes

    for stage in ("embedding", "vector_query", "sql", "ranking"):
        assert moved(STAGES, endpoint="search", stage=stage) == 1, stage
    for stage in ("embedding", "vector_query", "sql", "ranking", "packing"):
        assert moved(STAGES, endpoint="context", stage=stage) == 1, stage
    assert moved("memory_request_stage_seconds_sum", endpoint="context", stage="embedding") > 0
    # writes and reads that are not search or context record no stages
    assert {labels["endpoint"] for labels in series(after, STAGES)} <= {"search", "context"}


def test_memory_counts_by_status_and_kind_and_index_size(server: LiveServer, make_agent):
    agent = make_agent()
    assert agent.client.post("/v1/memories/batch", json=_notes(3, "travel")).status_code == 201
    fact = {"kind": "fact", "key": "home.city", "user_id": "dana"}
    agent.client.post("/v1/memories", json={**fact, "content": "Dana lives in Porto"})
    agent.client.post("/v1/memories", json={**fact, "content": "Dana lives in Lisbon"})
    assert agent.client.post("/v1/search", json={"query": "where does Dana live"}).is_success

    samples = scrape(server.url)  # the first scrape of this server: counted now
    assert value(samples, "memory_memories", status="active", kind="note") == 3
    assert value(samples, "memory_memories", status="active", kind="fact") == 1
    assert value(samples, "memory_memories", status="superseded", kind="fact") == 1
    assert value(samples, "memory_index_entries") == 5
    # the search copied the agent's namespace (all 5 entries) for exact search
    assert value(samples, "memory_vector_cache_vectors") == 5
    assert value(samples, "memory_vector_cache_namespaces") == 1


def test_index_drift_found_at_startup_is_reported(
    server: LiveServer, settings: Settings, make_agent
):
    agent = make_agent()
    written = agent.client.post("/v1/memories/batch", json=_notes(3, "garden")).json()
    assert value(scrape(server.url), "memory_index_drift", kind="missing") == 0
    server.stop()

    lost = written["results"][0]["memory"]["id"]
    open_vector_store(settings).delete([lost])  # the index loses one entry behind our back
    release_chroma_clients()
    restarted = LiveServer(settings).start()
    try:
        samples = scrape(restarted.url)
        assert value(samples, "memory_index_drift", kind="missing") == 1
        assert value(samples, "memory_index_drift", kind="orphaned") == 0
        assert value(samples, "memory_index_last_reconcile_timestamp_seconds") > 0
        assert value(samples, "memory_index_entries") == 3  # repaired
    finally:
        restarted.stop()


def test_metrics_can_be_switched_off(settings: Settings):
    live = LiveServer(settings.model_copy(update={"metrics_enabled": False})).start()
    try:
        assert httpx.get(f"{live.url}/metrics").status_code == 404
    finally:
        live.stop()
        release_chroma_clients()
