"""What the latency targets leave for the server's own work, on the machine the bench runs on.

The targets (issue #3): a lone client's p50 within 1.5x of the floor (one query embedding plus one
bare vector query, in-process), and a p95 under 50 ms at 8 concurrent clients. Both are set
against the embedding model's forward pass, which every call with a new query pays. This module
measures that pass's CPU and says how much of each target is left for everything else: HTTP, the
key check, SQL, ranking, packing and the response.

At 8 clients that never pause, Little's law gives calls/s = 8 / mean latency, and the cores give
calls/s <= cores / CPU per call, so the mean latency is at least 8 x CPU per call / cores. With the
spread a run shows (p95 = spread x mean), a p95 under 50 ms needs a CPU per call under
50 x cores / (8 x spread) ms.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memory_server.embeddings import Embedder

P50_OVER_FLOOR_TARGET = 1.5
P95_TARGET_MS = 50.0
P95_TARGET_CLIENTS = 8
CONCURRENT_BATCH = 8  # queries of concurrent calls embedded in one pass, as the server batches them


@dataclass(frozen=True)
class EmbeddingCost:
    """CPU milliseconds per query of the forward pass, all of this process's threads counted."""

    lone_cpu_ms: float  # one query per pass on every core (a lone call's query, in the server)
    lone_wall_ms: float
    batched_cpu_ms: float  # CONCURRENT_BATCH queries per pass on one thread (concurrent calls)


def embedding_cost(embedder: Embedder, queries: Sequence[str]) -> EmbeddingCost:
    """The forward pass's cost on `queries` (distinct texts: no cache), both ways the server runs
    it. `queries` should hold a few dozen, a multiple of CONCURRENT_BATCH."""
    embedder.embed(["warm up"])
    embedder.embed(["warm up"] * CONCURRENT_BATCH, threads=1)
    wall, cpu = time.perf_counter(), time.process_time()
    for query in queries:
        embedder.embed([query])
    lone_wall, lone_cpu = time.perf_counter() - wall, time.process_time() - cpu
    batches = [
        list(queries[i : i + CONCURRENT_BATCH]) for i in range(0, len(queries), CONCURRENT_BATCH)
    ]
    cpu = time.process_time()
    for batch in batches:
        embedder.embed(batch, threads=1)
    batched_cpu = time.process_time() - cpu
    per_query = 1000 / len(queries)
    return EmbeddingCost(
        lone_cpu_ms=round(lone_cpu * per_query, 2),
        lone_wall_ms=round(lone_wall * per_query, 2),
        batched_cpu_ms=round(batched_cpu * 1000 / sum(map(len, batches)), 2),
    )


@dataclass(frozen=True)
class Budgets:
    """Milliseconds each target allows, beside what a run measured."""

    # 1 client: the p50 the target allows, and its part beyond the floor
    p50_allowed_ms: float
    beyond_floor_allowed_ms: float
    beyond_floor_measured_ms: float
    # 8 clients: server CPU per call the target allows, and its part beyond the forward pass
    spread: float  # p95 / mean latency of the run at 8 clients
    cpu_allowed_ms: float
    cpu_measured_ms: float
    beyond_embedding_allowed_ms: float
    beyond_embedding_measured_ms: float


def budgets(
    floor_p50_ms: float,
    lone: dict[str, Any],
    concurrent: dict[str, Any],
    embedding: EmbeddingCost,
    cores: int,
) -> Budgets:
    """What the targets leave, from the floor, the run of one client (`lone`) and that of
    P95_TARGET_CLIENTS (`concurrent`: `Run.summary()`s with CPU readings), and the pass's cost.

    The clients' own CPU per call shares the cores and comes off what the server may spend."""
    if concurrent["concurrency"] != P95_TARGET_CLIENTS or lone["concurrency"] != 1:
        raise ValueError("budgets need the runs of 1 and of 8 clients")
    spread = max(1.0, concurrent["p95_ms"] / concurrent["mean_ms"])
    total_allowed = P95_TARGET_MS * cores / (P95_TARGET_CLIENTS * spread)
    cpu_allowed = total_allowed - concurrent["client_cpu_ms"]
    cpu_measured = concurrent["server_cpu_ms"]
    return Budgets(
        p50_allowed_ms=round(P50_OVER_FLOOR_TARGET * floor_p50_ms, 1),
        beyond_floor_allowed_ms=round((P50_OVER_FLOOR_TARGET - 1) * floor_p50_ms, 1),
        beyond_floor_measured_ms=round(lone["p50_ms"] - floor_p50_ms, 1),
        spread=round(spread, 2),
        cpu_allowed_ms=round(cpu_allowed, 1),
        cpu_measured_ms=round(cpu_measured, 1),
        beyond_embedding_allowed_ms=round(cpu_allowed - embedding.batched_cpu_ms, 1),
        beyond_embedding_measured_ms=round(cpu_measured - embedding.batched_cpu_ms, 1),
    )


def as_dict(
    embedding: EmbeddingCost, budget: Budgets, overhead: dict[str, float]
) -> dict[str, Any]:
    """`overhead`: the server's CPU per request of calls that do next to nothing
    (`bench.latency.request_overhead`)."""
    return {"embedding": asdict(embedding), "budgets": asdict(budget), "overhead": overhead}


def markdown(targets: dict[str, Any], cores: int) -> list[str]:
    """The lines `bench.latency` prints under its table."""
    cost, budget, overhead = targets["embedding"], targets["budgets"], targets["overhead"]
    return [
        "What the targets leave (`bench/targets.py`): the query's forward pass alone costs "
        f"{cost['lone_cpu_ms']} ms of CPU for a lone query on every core "
        f"({cost['lone_wall_ms']} ms of wall time), {cost['batched_cpu_ms']} ms per query in "
        f"passes of {CONCURRENT_BATCH} on one thread (concurrent calls). Beyond it, the server "
        "spends on HTTP, the key check, SQL, ranking, packing and the response:",
        "",
        "| target | allows | this run |",
        "| --- | --- | --- |",
        f"| 1 client: p50 <= {P50_OVER_FLOOR_TARGET}x the floor "
        f"| p50 {budget['p50_allowed_ms']} ms: {budget['beyond_floor_allowed_ms']} ms beyond the "
        f"floor | {budget['beyond_floor_measured_ms']} ms beyond the floor |",
        f"| {P95_TARGET_CLIENTS} clients: p95 < {P95_TARGET_MS:g} ms "
        f"| {budget['cpu_allowed_ms']} ms of server CPU per call: "
        f"{budget['beyond_embedding_allowed_ms']} ms beyond the forward pass "
        f"| {budget['cpu_measured_ms']} ms: "
        f"{budget['beyond_embedding_measured_ms']} ms beyond it |",
        "",
        f"At {P95_TARGET_CLIENTS} clients that never pause, Little's law gives a mean latency "
        f"of at least {P95_TARGET_CLIENTS} x CPU per call / {cores} cores; the CPU allowed is "
        f"the one whose mean, times this run's spread (p95 = {budget['spread']}x the mean), "
        f"stays under {P95_TARGET_MS:g} ms, less the clients' own CPU on the shared cores. "
        "For scale: a request that does next to nothing costs the server "
        f"{overhead['healthz_cpu_ms']} ms of CPU (`GET /healthz`: HTTP and routing) and "
        f"{overhead['me_cpu_ms']} ms with the key check (`GET /v1/me`).",
    ]
