"""What a namespace's first context call costs after a server start, with and without the copies.

    python -m bench.cold_start [--namespaces 30] [--rounds 2] [--memories 100000] [--agents 100]

On the store `bench.latency` loads (loaded first if missing), a fresh `memory-server serve` gets
one context call for each of `--namespaces` agents (the first call of that namespace since the
start), then a second call for each, one at a time; reported: the p50 of the first calls and of
the second. Once with the in-memory copies of the vectors (the default) and once without
(`MEMORY_VECTOR_CACHE_VECTORS=0`), a fresh server each time, in turns, `--rounds` times. Also
reported: each server's seconds from launch to a ready `/readyz` (the data dir holds the compiled
embedding model by then, so these are restarts, not first starts).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.latency import (
    DEFAULT_DIR,
    _env,
    free_port,
    launch,
    load,
    open_stores,
    synthetic_query,
    wait_ready,
)

SETTINGS = {"with copies": "250000", "without": "0"}


def first_and_second_calls(
    data_dir: Path, agents: list[dict[str, str]], cache_vectors: str, seed: int
) -> tuple[list[float], list[float], int, float]:
    """Seconds of each chosen namespace's first call after a start, and of its second; how many
    namespaces the server then held copies of; and the seconds the server took to be ready."""
    port = free_port()
    launched = time.perf_counter()
    process = wait_ready(
        launch(_env(data_dir, port) | {"MEMORY_VECTOR_CACHE_VECTORS": cache_vectors}), port
    )
    ready = time.perf_counter() - launched
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            rng = random.Random(seed)

            def call(agent: dict[str, str]) -> float:
                started = time.perf_counter()
                response = client.post(
                    "/v1/context",
                    json={"query": synthetic_query(rng), "budget_tokens": 512},
                    headers={"Authorization": f"Bearer {agent['key']}"},
                )
                response.raise_for_status()
                return time.perf_counter() - started

            client.get("/readyz").raise_for_status()  # the connection is open
            first = [call(agent) for agent in agents]
            second = [call(agent) for agent in agents]
            metrics = client.get("/metrics").text
            held = re.search(r"^memory_vector_cache_namespaces (\S+)$", metrics, re.MULTILINE)
            return first, second, int(float(held.group(1))) if held else 0, ready
    finally:
        process.terminate()
        process.wait(timeout=60)


def run(
    memories: int, agents_count: int, namespaces: int, rounds: int, data_dir: Path, seed: int = 7
) -> dict[str, Any]:
    with open_stores(data_dir, scale_out=False, postgres="", fresh=False) as stores:
        agents = load(stores, memories, agents_count, seed)
    chosen = random.Random(seed).sample(agents, min(namespaces, len(agents)))
    times: dict[str, dict[str, list[float]]] = {
        name: {"first": [], "second": []} for name in SETTINGS
    }
    copied: dict[str, list[int]] = {name: [] for name in SETTINGS}
    ready: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for index in range(rounds):
        for name, cache_vectors in SETTINGS.items():
            first, second, held, seconds = first_and_second_calls(
                data_dir, chosen, cache_vectors, seed + index
            )
            times[name]["first"].append(statistics.median(first) * 1000)
            times[name]["second"].append(statistics.median(second) * 1000)
            copied[name].append(held)
            ready[name].append(round(seconds, 2))
    return {
        "memories": memories,
        "agents": agents_count,
        "namespaces": len(chosen),
        "rounds": rounds,
        "p50_ms": {
            name: {call: [round(t, 1) for t in calls] for call, calls in by_call.items()}
            for name, by_call in times.items()
        },
        "copied_namespaces": copied,  # per round: what the server held after the calls
        "ready_s": ready,  # per round: launch to a ready /readyz
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['namespaces']} namespaces of a store of {result['memories']:,} memories across "
        f"{result['agents']} agents; a fresh server per row and round; p50 over the namespaces, "
        "one value per round.",
        "",
        "| server | ready after launch, s | first call of a namespace, ms | second call, ms |",
        "| --- | --- | --- | --- |",
    ]
    for name, calls in result["p50_ms"].items():
        ready = " / ".join(f"{t:.1f}" for t in result["ready_s"][name])
        first = " / ".join(f"{t:.1f}" for t in calls["first"])
        second = " / ".join(f"{t:.1f}" for t in calls["second"])
        lines.append(f"| {name} | {ready} | {first} | {second} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--namespaces", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or DEFAULT_DIR / f"{args.memories}-{args.agents}"
    result = run(args.memories, args.agents, args.namespaces, args.rounds, data_dir)
    print(json.dumps(result) if args.json else markdown(result))
    return result


if __name__ == "__main__":
    main()
