"""Is this checkout's context call faster than another's? Both serve the same store, in turns.

    python -m bench.latency_ab --other PATH [--requests 300] [--clients 1] [--block 160]
                               [--memories 100000] [--agents 100] [--other-data-dir PATH]

On this machine the same code measures 30% apart from one minute to the next, so comparing two
`bench.latency` runs made minutes apart says little. Here the store `bench.latency` loads (loaded
first if missing) is served by two `memory-server serve` processes at once: this checkout's and the
one at PATH (a `git worktree` of another commit, say). Each starts in its own checkout, so
`python -m` imports that checkout's code. One client sends every distinct query to both, one request
at a time, alternating which goes first, so whatever the machine does meanwhile falls on both alike.
With `--clients N` the calls come from N concurrent clients instead, in blocks of `--block` calls,
each block to one server, alternating which server gets a block first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.latency import (
    DEFAULT_DIR,
    Stores,
    _env,
    drive,
    free_port,
    load,
    synthetic_query,
    wait_ready,
)

HERE = Path(__file__).resolve().parent.parent


def launch_checkout(checkout: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`memory-server serve` running `checkout`'s code on `data_dir`."""
    env = _env(data_dir, port) | {"PYTHONPATH": str(checkout)}
    return subprocess.Popen(
        [sys.executable, "-m", "memory_server.cli", "serve"],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def compare(
    other: Path,
    data_dir: Path,
    memories: int,
    agents_count: int,
    requests: int,
    seed: int = 7,
    *,
    concurrency: int = 1,
    block: int = 160,
    other_data_dir: Path | None = None,
) -> dict[str, Any]:
    """`requests` distinct context calls to each server. One client: one call at a time, each query
    sent to both, alternating which goes first. Several: blocks of `block` calls from
    `concurrency` clients (`bench.latency.drive`), alternating which server gets a block first.
    `other_data_dir`: the other server's own copy of the store, for a change of schema (this
    checkout's server migrates `data_dir` at its start, and the other's code cannot read it)."""
    data_dir = data_dir.resolve()  # each server runs in its own checkout
    agents = load(Stores(data_dir), memories, agents_count, seed)
    ports = {"this": free_port(), "other": free_port()}
    processes = {
        "this": launch_checkout(HERE, data_dir, ports["this"]),
        "other": launch_checkout(
            other.resolve(), (other_data_dir or data_dir).resolve(), ports["other"]
        ),
    }
    latencies: dict[str, list[float]] = {"this": [], "other": []}
    busy = {"this": 0.0, "other": 0.0}  # wall time spent serving the measured calls
    try:
        for name, process in processes.items():
            wait_ready(process, ports[name])
        if concurrency == 1:
            _one_at_a_time(ports, agents, requests, seed, latencies, busy)
        else:
            for index in range(max(1, requests // block)):
                order = ("this", "other") if index % 2 == 0 else ("other", "this")
                for name in order:
                    url = f"http://127.0.0.1:{ports[name]}"
                    run = asyncio.run(drive([url], agents, concurrency, block, seed + index, 512))
                    if run.errors:
                        raise RuntimeError(f"{run.errors} calls to {name} failed")
                    latencies[name] += run.latencies
                    busy[name] += run.wall
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)
    summary = {name: _summary(values, busy[name]) for name, values in latencies.items()}
    return {
        "other_checkout": str(other),
        "requests": len(latencies["this"]),
        "concurrency": concurrency,
        **summary,
        **{
            f"{stat}_this_over_other": round(summary["this"][stat] / summary["other"][stat], 3)
            for stat in ("p50_ms", "p95_ms", "rps")
        },
    }


def _one_at_a_time(
    ports: dict[str, int],
    agents: list[dict[str, str]],
    requests: int,
    seed: int,
    latencies: dict[str, list[float]],
    busy: dict[str, float],
) -> None:
    clients = {
        name: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        for name, port in ports.items()
    }
    try:

        def call(name: str, key: str, query: str) -> float:
            started = time.perf_counter()
            response = clients[name].post(
                "/v1/context",
                json={"query": query, "budget_tokens": 512, "model": "gpt-4o-mini"},
                headers={"Authorization": f"Bearer {key}"},
            )
            response.raise_for_status()
            return time.perf_counter() - started

        for name in clients:  # every namespace's index loaded once, in both servers
            for agent in agents:
                call(name, agent["key"], "warm up")
        rng = random.Random(seed)
        for index in range(requests):
            key, query = rng.choice(agents)["key"], synthetic_query(rng)
            order = ("this", "other") if index % 2 == 0 else ("other", "this")
            for name in order:  # a query's text differs per server: no cache hit on either
                took = call(name, key, f"{query} ({name})")
                latencies[name].append(took)
                busy[name] += took
    finally:
        for client in clients.values():
            client.close()


def _summary(values: list[float], busy: float) -> dict[str, float]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)

    return {
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "mean_ms": round(statistics.mean(ordered) * 1000, 1),
        "rps": round(len(ordered) / busy, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    if result["concurrency"] == 1:
        how = "one at a time, alternating"
    else:
        how = f"from {result['concurrency']} clients at once, in alternating blocks"
    lines = [
        f"{result['requests']} distinct context calls to each server, {how}.",
        "",
        "| code | p50 ms | p95 ms | p99 ms | max ms | mean ms | calls/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in (("this", "this checkout"), ("other", f"`{result['other_checkout']}`")):
        row = result[name]
        lines.append(
            f"| {label} | {row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {row['max_ms']} "
            f"| {row['mean_ms']} | {row['rps']} |"
        )
    lines += [
        "",
        f"this / other: p50 **{result['p50_ms_this_over_other']}**, "
        f"p95 **{result['p95_ms_this_over_other']}**, calls/s **{result['rps_this_over_other']}**",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--other", type=Path, required=True, help="another checkout of this repo")
    parser.add_argument("--requests", type=int, default=300, help="calls to each server")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients")
    parser.add_argument("--block", type=int, default=160, help="calls per block (--clients > 1)")
    parser.add_argument(
        "--other-data-dir",
        type=Path,
        default=None,
        help="the other server's copy of the store, taken before this checkout migrated it",
    )
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if not (args.other / "memory_server").is_dir():
        parser.error(f"{args.other} is not a checkout of this repository")
    data_dir = args.data_dir or DEFAULT_DIR / f"{args.memories}-{args.agents}"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = compare(
        args.other,
        data_dir,
        args.memories,
        args.agents,
        args.requests,
        concurrency=args.clients,
        block=args.block,
        other_data_dir=args.other_data_dir,
    )
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
