"""The latency benchmark runs end to end at a tiny size, and accounts for the CPU of its calls."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bench.latency import LeanConnection, Run, markdown, process_cpu_seconds, run
from bench.targets import EmbeddingCost, budgets
from tests.conftest import LiveServer


def test_latency_bench_reports_percentiles_floor_and_cpu_per_call(tmp_path: Path) -> None:
    result = run(memories=40, agents_count=2, requests=6, data_dir=tmp_path / "store", fresh=True)
    assert [r["concurrency"] for r in result["runs"]] == [1, 8, 32]
    assert result["budget_tokens"] == 512 and "`budget_tokens=512`" in markdown(result)
    assert [r["concurrency"] for r in result["httpx_runs"]] == [1, 8, 32]
    for row in [*result["runs"], *result["httpx_runs"]]:
        assert row["requests"] == 6 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        # a context call costs the server CPU (the model, SQL, ranking) and the clients some
        assert row["server_cpu_ms"] > 0 and row["client_cpu_ms"] > 0
        per_call = row["server_cpu_ms"] + row["client_cpu_ms"]
        assert row["cpu_bound_rps"] == pytest.approx(os.cpu_count() * 1000 / per_call, rel=0.01)
    assert result["floor_p50_ms"] > 0 and result["floor_with_chroma_p50_ms"] > 0
    table = markdown(result)
    assert "server CPU ms/call" in table and "req/s the cores allow" in table
    assert table.count("| lean |") == 3 and table.count("| httpx |") == 3
    # what the targets leave, from this run's own numbers
    cost, budget = result["targets"]["embedding"], result["targets"]["budgets"]
    assert cost["lone_cpu_ms"] > 0 and cost["lone_wall_ms"] > 0 and cost["batched_cpu_ms"] > 0
    assert budget["beyond_floor_allowed_ms"] == pytest.approx(
        0.5 * result["floor_p50_ms"], abs=0.11
    )
    assert budget["cpu_measured_ms"] == pytest.approx(result["runs"][1]["server_cpu_ms"], abs=0.06)
    assert "What the targets leave" in table and "| 8 clients: p95 < 50 ms |" in table
    # a call that checks a key costs more than one that does not, and both less than a context call
    overhead = result["targets"]["overhead"]
    assert 0 < overhead["healthz_cpu_ms"] < overhead["me_cpu_ms"]
    assert overhead["me_cpu_ms"] < result["runs"][0]["server_cpu_ms"]
    # the floor's own work over HTTP: every call answered, with and without the key check
    floors = result["http_floor"]
    assert set(floors) == {"key_check", "open"}
    for runs in floors.values():
        assert [r["concurrency"] for r in runs] == [1, 8]
        for row in runs:
            assert row["requests"] == 6 and row["errors"] == 0 and row["server_cpu_ms"] > 0
    # (the reported floor is rounded to 0.1 ms; the ratio comes from the unrounded one)
    assert result["http_floor_p50_over_floor"] == pytest.approx(
        floors["key_check"][0]["p50_ms"] / result["floor_p50_ms"], rel=0.03
    )
    assert table.count("| floor + key check |") == 2 and table.count("| floor alone |") == 2


def _summary(concurrency: int, **values: float) -> dict[str, float]:
    return {"concurrency": concurrency, **values}


def test_budgets_follow_littles_law_and_the_runs_spread() -> None:
    lone = _summary(1, p50_ms=20.0)
    concurrent = _summary(8, p95_ms=150.0, mean_ms=100.0, server_cpu_ms=23.5, client_cpu_ms=0.5)
    cost = EmbeddingCost(lone_cpu_ms=9.0, lone_wall_ms=5.5, batched_cpu_ms=6.5)
    budget = budgets(8.0, lone, concurrent, cost, cores=2)
    assert (budget.p50_allowed_ms, budget.beyond_floor_allowed_ms) == (12.0, 4.0)
    assert budget.beyond_floor_measured_ms == 12.0
    # mean >= 8 x CPU / 2 cores, and p95 = 1.5 x mean < 50 ms: CPU < 8.33 ms, 0.5 of it the clients'
    assert budget.spread == 1.5 and budget.cpu_allowed_ms == 7.8
    assert budget.beyond_embedding_allowed_ms == 1.3
    assert (budget.cpu_measured_ms, budget.beyond_embedding_measured_ms) == (23.5, 17.0)


def test_a_spread_below_one_allows_no_more_than_the_mean_does() -> None:
    concurrent = _summary(8, p95_ms=40.0, mean_ms=50.0, server_cpu_ms=10.0, client_cpu_ms=0.0)
    cost = EmbeddingCost(lone_cpu_ms=9.0, lone_wall_ms=5.5, batched_cpu_ms=6.5)
    budget = budgets(8.0, _summary(1, p50_ms=10.0), concurrent, cost, cores=2)
    assert budget.spread == 1.0 and budget.cpu_allowed_ms == 12.5


def test_budgets_need_the_runs_the_targets_name() -> None:
    cost = EmbeddingCost(lone_cpu_ms=9.0, lone_wall_ms=5.5, batched_cpu_ms=6.5)
    four = _summary(4, p95_ms=1.0, mean_ms=1.0, server_cpu_ms=1.0, client_cpu_ms=0.0)
    with pytest.raises(ValueError, match="1 and of 8 clients"):
        budgets(8.0, _summary(1, p50_ms=10.0), four, cost, cores=2)


def test_cpu_seconds_counts_what_the_process_spent() -> None:
    before, started = process_cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - started < 0.2:  # 0.2 s of CPU, as Python counts it
        sum(range(10_000))
    spent = process_cpu_seconds(os.getpid()) - before
    assert 0.15 <= spent <= time.process_time() - started + 0.05  # /proc counts in 10 ms ticks


def test_a_run_without_cpu_readings_reports_none() -> None:
    summary = Run(1, [0.01, 0.02], wall=0.03, errors=0).summary()
    assert "server_cpu_ms" not in summary and summary["requests"] == 2


def test_the_lean_client_reads_what_httpx_reads(server: LiveServer, make_agent: Any) -> None:
    agent = make_agent()
    stored = agent.client.post(
        "/v1/memories", json={"content": "The billing service moved to the EU region."}
    )
    assert stored.status_code == 201, stored.text
    body = {"query": "where is billing hosted?", "budget_tokens": 200}

    async def calls() -> list[tuple[int, bytes]]:
        connection = LeanConnection(server.url)
        try:  # three calls on one kept-alive connection, the last with a wrong key
            return [
                await connection.post("/v1/context", body, agent.key),
                await connection.post("/v1/context", body, agent.key),
                await connection.post("/v1/context", body, "mk_not_a_key"),
            ]
        finally:
            await connection.close()

    first, second, refused = asyncio.run(calls())
    expected = agent.client.post("/v1/context", json=body).json()
    for status, payload in (first, second):
        assert status == 200
        answer = json.loads(payload)
        assert answer["context"] == expected["context"]
        assert [item["id"] for item in answer["items"]] == [i["id"] for i in expected["items"]]
    assert refused[0] == 401 and json.loads(refused[1])["code"] == "invalid_api_key"
