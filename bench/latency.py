"""Latency of `POST /v1/context` on a loaded server, beside the floor it cannot beat.

Loads N memories across A agents (default 100k across 100) into an embedded-default data dir, then
measures, in one run:
- the floor: one query embedding plus one bare, namespace-filtered vector query, in-process;
- the server: context calls over real HTTP from 1, 8 and 32 concurrent clients (each query text
  distinct, so the query cache does not help), p50/p95/p99 and requests/s;
- the floor over HTTP: the floor's own work served by the server's app and HTTP stack
  (`bench/floor_server.py`), with and without the key check, from 1 and 8 clients: what serving
  the floor costs before a context call does anything of its own.

    python -m bench.latency [--memories 100000] [--agents 100] [--requests 400] [--fresh]

With `--scale-out` the same measurement runs in scale-out mode (docs/deployment.md): PostgreSQL
(`--postgres`, a fresh database per size), the index on a `chroma run` server, and two server
processes with the clients spread over both. The floor then includes the hop to Chroma.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import targets

ADMIN_KEY = "bench-admin-key-0123456789"
DEFAULT_DIR = Path("var/bench/latency")
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Stores:
    """Where the benchmark's data lives: the embedded default, or PostgreSQL + a Chroma server."""

    data_dir: Path
    database_url: str | None = None
    chroma_port: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Any:
        from memory_server.config import Settings

        options: dict[str, Any] = {"data_dir": self.data_dir, "admin_key": ADMIN_KEY}
        if self.database_url:
            options["database_url"] = self.database_url
        if self.chroma_port:
            options |= {"vector_store": "chroma-server", "chroma_port": self.chroma_port}
        return Settings(**(options | overrides))

    def env(self, data_dir: Path, port: int) -> dict[str, str]:
        env = _env(data_dir, port)
        if self.database_url:
            env["MEMORY_DATABASE_URL"] = self.database_url
        if self.chroma_port:
            env |= {
                "MEMORY_VECTOR_STORE": "chroma-server",
                "MEMORY_CHROMA_PORT": str(self.chroma_port),
            }
        return env


SUBJECTS = [
    "the billing service",
    "our Kubernetes cluster",
    "the mobile app",
    "the quarterly report",
    "the onboarding flow",
    "the data warehouse",
    "the marketing site",
    "the search index",
    "the payments provider",
    "the support queue",
    "the design system",
    "the API gateway",
    "the sales pipeline",
    "the hiring plan",
    "the security audit",
    "the office move",
]
VERBS = [
    "needs a review before",
    "was migrated on",
    "broke again after",
    "will be replaced by",
    "is owned by",
    "gets a new budget in",
    "was discussed with",
    "depends on",
    "is blocked until",
    "should be documented before",
    "was load-tested against",
]
OBJECTS = [
    "the March release",
    "Priya from platform",
    "the EU region",
    "version 2.4",
    "the new vendor",
    "the Friday deploy",
    "the legal team",
    "the Q3 planning",
    "the incident on Tuesday",
    "the customer advisory board",
    "the Postgres upgrade",
    "the Berlin office",
]
DETAILS = [
    "",
    " according to the last standup",
    " (ticket OPS-{n})",
    " per the design doc",
    " — confirm with the owner",
    " after the outage",
    " if the budget allows",
    " in week {n}",
]


def synthetic_memory(rng: random.Random, n: int) -> str:
    detail = rng.choice(DETAILS).format(n=rng.randint(10, 9999))
    return f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{detail}."


def synthetic_query(rng: random.Random) -> str:
    forms = [
        "What do we know about {s}?",
        "Who owns {s}?",
        "When is {o} happening?",
        "Any blockers for {s}?",
        "What happened with {s} and {o}?",
        "Status of {s}?",
    ]
    return rng.choice(forms).format(s=rng.choice(SUBJECTS), o=rng.choice(OBJECTS)) + (
        f" #{rng.randint(0, 10**6)}"
    )


def _env(data_dir: Path, port: int) -> dict[str, str]:
    return os.environ | {
        "MEMORY_DATA_DIR": str(data_dir),
        "MEMORY_ADMIN_KEY": ADMIN_KEY,
        "MEMORY_PORT": str(port),
        "MEMORY_LOG_LEVEL": "warning",
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def load(stores: Stores, memories: int, agents: int, seed: int) -> list[dict[str, str]]:
    """Fill the stores through the service layer (the write path, without HTTP); return agents.

    The manifest of agents is written last, so a store with one was loaded completely."""
    from memory_server.auth import Principal
    from memory_server.runtime import build_runtime
    from memory_server.schemas import AgentCreate, ApiKeyCreate, MemoryCreate

    manifest = stores.data_dir / "agents.json"
    if manifest.exists():
        return list(json.loads(manifest.read_text()))
    runtime = build_runtime(stores.settings())
    rng = random.Random(seed)
    created = []
    started = time.perf_counter()
    try:
        per_agent = memories // agents
        for index in range(agents):
            agent = runtime.agents.create_agent(AgentCreate(name=f"bench-agent-{index}"))
            _, secret = runtime.agents.create_key(agent.id, ApiKeyCreate())
            principal = Principal(agent_id=agent.id, key_id=None)
            for start in range(0, per_agent, 500):
                kinds = [rng.choice(["note", "fact", "message"]) for _ in range(per_agent)]
                batch = [
                    MemoryCreate(
                        kind=kinds[start + i],
                        role="user" if kinds[start + i] == "message" else None,
                        content=synthetic_memory(rng, start + i),
                        user_id=f"user-{rng.randint(0, 9)}",
                        importance=round(rng.random(), 2),
                    )
                    for i in range(min(500, per_agent - start))
                ]
                runtime.memories.create_many(principal, batch)
            created.append({"id": agent.id, "key": secret})
            if index % 10 == 9:
                elapsed = time.perf_counter() - started
                print(f"  loaded {index + 1}/{agents} agents ({elapsed:.0f} s)", flush=True)
    finally:
        runtime.close()
    manifest.write_text(json.dumps(created))
    return created


def floor(
    stores: Stores, agents: list[dict[str, str]], samples: int, seed: int
) -> tuple[list[float], list[float]]:
    """Seconds for one query embedding + one bare vector query of a namespace, in-process: the
    query as the server makes it (from the in-memory copies of an embedded index), and as
    Chroma answers it (for comparison with runs before the copies)."""
    from memory_server.embeddings import load_embedder
    from memory_server.vector_cache import VectorCache
    from memory_server.vectors import open_vector_store

    settings = stores.settings()
    embedder = load_embedder(settings.embedding_model)
    vectors = open_vector_store(settings)
    namespaces = list(agent_namespaces(stores, agents).values())
    rng = random.Random(seed + 1)
    warm = embedder.embed(["warm up"])[0]
    for (
        namespace
    ) in namespaces:  # steady state: every namespace's index is loaded, as in the server
        vectors.query(warm, 60, [namespace])
    index = vectors.store if isinstance(vectors, VectorCache) else vectors
    timings, chroma_timings = [], []
    for _ in range(samples):
        query = synthetic_query(rng)
        namespace = rng.choice(namespaces)
        started = time.perf_counter()
        vector = embedder.embed([query])[0]
        embedded = time.perf_counter()
        vectors.query(vector, 60, [namespace])
        answered = time.perf_counter()
        index.query(vector, 60, [namespace])
        timings.append(answered - started)
        chroma_timings.append(embedded - started + time.perf_counter() - answered)
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    return timings, chroma_timings


def forward_pass_cost(stores: Stores, seed: int) -> targets.EmbeddingCost:
    """The embedding model's CPU per query, as the server runs it (`bench/targets.py`)."""
    from memory_server.embeddings import load_embedder

    rng = random.Random(seed + 2)
    queries = [synthetic_query(rng) for _ in range(8 * targets.CONCURRENT_BATCH)]
    return targets.embedding_cost(load_embedder(stores.settings().embedding_model), queries)


def agent_namespaces(stores: Stores, agents: list[dict[str, str]]) -> dict[str, str]:
    """Each agent's default namespace id, by agent id."""
    from memory_server.db import Database
    from memory_server.models import Agent

    db = Database(stores.settings().resolved_database_url)
    try:
        with db.read() as session:
            return {
                a["id"]: session.get(Agent, a["id"]).default_namespace_id  # type: ignore[union-attr]
                for a in agents
            }
    finally:
        db.dispose()


FLOOR_ROUTES = {"key_check": "/bench/floor", "open": "/bench/floor-open"}


def http_floor(
    stores: Stores, agents: list[dict[str, str]], requests: int, seed: int
) -> dict[str, list[dict[str, float]]]:
    """The floor's own work over the server's app and HTTP stack (`bench/floor_server.py`): the
    query embedded as the context route embeds it and a bare vector query, with and without the
    key check, from 1 and 8 lean clients. Each route asks queries of its own: that server caches
    query embeddings too."""
    namespaces = agent_namespaces(stores, agents)

    def body_of(agent: dict[str, str], query: str) -> dict[str, Any]:
        return {"query": query, "namespace_id": namespaces[agent["id"]]}

    port = free_port()
    env = stores.env(stores.data_dir, port)
    process = wait_ready(launch(env, module="bench.floor_server"), port)
    url = f"http://127.0.0.1:{port}"
    try:
        return {
            name: [
                asyncio.run(
                    drive(
                        [url],
                        agents,
                        c,
                        requests,
                        seed + offset,
                        0,
                        [process.pid],
                        path=path,
                        body_of=body_of,
                    )
                ).summary()
                for c in (1, 8)
            ]
            for offset, (name, path) in enumerate(FLOOR_ROUTES.items(), start=1)
        }
    finally:
        process.terminate()
        process.wait(timeout=60)


def request_overhead(
    url: str, agents: list[dict[str, str]], pid: int, calls: int = 400
) -> dict[str, float]:
    """Server CPU ms per request of two calls that do next to nothing: `GET /healthz` (HTTP and
    routing alone) and `GET /v1/me` (that, plus the key check), one at a time."""
    cpu: dict[str, float] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for name, path, authenticated in (("healthz", "/healthz", False), ("me", "/v1/me", True)):
            keys = [agent["key"] for agent in agents] if authenticated else [""]
            headers = [{"Authorization": f"Bearer {key}"} if key else {} for key in keys]
            for index in range(len(headers)):  # warm: a first call per key
                client.get(path, headers=headers[index]).raise_for_status()
            before = process_cpu_seconds(pid)
            for index in range(calls):  # each key a few times: within any rate limit
                client.get(path, headers=headers[index % len(headers)]).raise_for_status()
            cpu[f"{name}_cpu_ms"] = round((process_cpu_seconds(pid) - before) * 1000 / calls, 2)
    return cpu


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all threads (Linux /proc); 0 elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    concurrency: int
    latencies: list[float]
    wall: float
    errors: int
    server_cpu: float | None = None  # seconds the server processes used in the timed part
    client_cpu: float | None = None  # seconds this process (the clients) used in it

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        return {
            "concurrency": self.concurrency,
            "requests": len(ordered),
            "errors": self.errors,
            "p50_ms": round(pct(0.50), 1),
            "p95_ms": round(pct(0.95), 1),
            "p99_ms": round(pct(0.99), 1),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 1),
            "rps": round(len(ordered) / self.wall, 1),
            **self._cpu_per_call(len(ordered)),
        }

    def _cpu_per_call(self, calls: int) -> dict[str, float]:
        """CPU per call: where the machine's cores went (the clients share them here)."""
        if self.server_cpu is None or self.client_cpu is None or not calls:
            return {}
        server, client = self.server_cpu * 1000 / calls, self.client_cpu * 1000 / calls
        return {
            "server_cpu_ms": round(server, 2),
            "client_cpu_ms": round(client, 2),
            # what the cores could serve if nothing but this CPU per call limited them
            "cpu_bound_rps": round((os.cpu_count() or 1) * 1000 / (server + client), 1),
        }


class LeanConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer: a load generator's
    client, which costs ~0.3 ms of CPU per call where httpx's costs ~2.4 (on the 2 cores the
    server shares with the clients here; wrk or k6 would be the tools elsewhere). It speaks only
    what this server answers a context call with: a body of known Content-Length, the connection
    kept open (uvicorn closes one idle for 5 s)."""

    def __init__(self, url: str):
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any], key: str) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        headers = await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, rest = headers.decode("latin-1").partition("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in rest.split("\r\n")
            if line.lower().startswith("content-length:")
        )
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


CLIENTS = ("lean", "httpx")


async def drive(
    urls: list[str],
    agents: list[dict[str, str]],
    concurrency: int,
    requests: int,
    seed: int,
    budget: int,
    server_pids: list[int] | None = None,
    client: str = "lean",
    path: str = "/v1/context",
    body_of: Callable[[dict[str, str], str], dict[str, Any]] | None = None,
) -> Run:
    """`requests` context calls from `concurrency` clients, spread round-robin over `urls`;
    with `server_pids`, also the CPU the servers and the clients used for them. `client`:
    `LeanConnection`s (one per client), or httpx (what the Python SDK uses). `path` and
    `body_of(agent, query)` call another route instead (the floor over HTTP)."""
    # each client kind its own queries: a query asked before is answered from the server's caches
    rng = random.Random(seed * 1000 + concurrency + CLIENTS.index(client) * 100)
    jobs = [(rng.choice(agents), synthetic_query(rng)) for _ in range(requests)]
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[tuple[dict[str, str], str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    post = (LeanPosts if client == "lean" else HttpxPosts)(urls, concurrency, path)

    def context_body(agent: dict[str, str], query: str) -> dict[str, Any]:
        return {"query": query, "budget_tokens": budget, "model": "gpt-4o-mini"}

    body = body_of or context_body

    async def worker(index: int) -> None:
        nonlocal errors
        while not queue.empty():
            agent, query = queue.get_nowait()
            started = time.perf_counter()
            status = await post.call(index, body(agent, query), agent["key"])
            latencies.append(time.perf_counter() - started)
            errors += status != 200

    try:
        # Steady state: connections open, and every agent's namespace loaded once (the first
        # query of a namespace after a start loads its index: ~45 ms, not measured).
        for index in range(concurrency):
            for agent in agents if index < len(urls) else agents[:1]:
                await post.call(index, body(agent, "warm up"), agent["key"])
        pids = server_pids or []
        server_cpu, client_cpu = sum(map(process_cpu_seconds, pids)), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker(index) for index in range(concurrency)))
        wall = time.perf_counter() - started
        server_cpu = sum(map(process_cpu_seconds, pids)) - server_cpu
        client_cpu = time.process_time() - client_cpu
    finally:
        await post.close()
    if not pids:  # nothing measured on the server side: no CPU per call
        server_cpu = client_cpu = None
    return Run(concurrency, latencies, wall, errors, server_cpu, client_cpu)


class LeanPosts:
    """POST /v1/context from client `index` of `concurrency` (spread round-robin over `urls`),
    each on its own `LeanConnection`."""

    def __init__(self, urls: list[str], concurrency: int, path: str = "/v1/context"):
        self.connections = [LeanConnection(urls[i % len(urls)]) for i in range(concurrency)]
        self.path = path

    async def call(self, index: int, body: dict[str, Any], key: str) -> int:
        status, _ = await self.connections[index].post(self.path, body, key)
        return status

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


class HttpxPosts:
    """The same through httpx: one `AsyncClient` per url, as many connections as clients."""

    def __init__(self, urls: list[str], concurrency: int, path: str = "/v1/context"):
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.clients = [httpx.AsyncClient(base_url=url, timeout=60, limits=limits) for url in urls]
        self.path = path

    async def call(self, index: int, body: dict[str, Any], key: str) -> int:
        client = self.clients[index % len(self.clients)]
        response = await client.post(
            self.path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status_code

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


def launch(env: dict[str, str], module: str = "memory_server.cli") -> subprocess.Popen[bytes]:
    """`memory-server serve` (or `python -m <module>`, which serves alike) in a new process."""
    arguments = ["serve"] if module == "memory_server.cli" else []
    return subprocess.Popen(
        [sys.executable, "-m", module, *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_ready(process: subprocess.Popen[bytes], port: int) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("server exited during startup")
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not become ready")


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`memory-server serve` on the embedded stores of `data_dir`, once it is ready."""
    return wait_ready(launch(_env(data_dir, port)), port)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def open_stores(data_dir: Path, *, scale_out: bool, postgres: str, fresh: bool) -> Iterator[Stores]:
    """The benchmark's stores; in scale-out mode a PostgreSQL database (one per data dir, kept for
    reuse like the data dir) and a `chroma run` server over `<data dir>/chroma-server`."""
    complete = (data_dir / "agents.json").exists()
    database = "bench_" + "".join(c if c.isalnum() else "_" for c in data_dir.name)
    if fresh or not complete:
        shutil.rmtree(data_dir, ignore_errors=True)
    if not scale_out:
        yield Stores(data_dir)
        return
    import psycopg

    admin_url = postgres.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if fresh or not complete:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            admin.execute(f'CREATE DATABASE "{database}"')
    data_dir.mkdir(parents=True, exist_ok=True)
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    port = free_port()
    process = subprocess.Popen(
        [chroma, "run", "--path", str(data_dir / "chroma-server"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chroma run did not start")
            time.sleep(0.2)
        yield Stores(data_dir, postgres.rsplit("/", 1)[0] + "/" + database, port)
    finally:
        process.terminate()
        process.wait(timeout=60)


def run(
    memories: int,
    agents_count: int,
    requests: int,
    data_dir: Path,
    fresh: bool,
    seed: int = 7,
    budget: int = 512,
    scale_out: bool = False,
    postgres: str = DEFAULT_POSTGRES,
) -> dict[str, Any]:
    with open_stores(data_dir, scale_out=scale_out, postgres=postgres, fresh=fresh) as stores:
        started = time.perf_counter()
        agents = load(stores, memories, agents_count, seed)
        load_seconds = time.perf_counter() - started
        floor_times, chroma_floor_times = floor(stores, agents, 200, seed)
        embedding = forward_pass_cost(stores, seed)
        ports = [free_port() for _ in range(2 if scale_out else 1)]
        homes = [data_dir / f"server-{i}" for i in range(len(ports))] if scale_out else [data_dir]
        processes = [
            launch(stores.env(home, port)) for home, port in zip(homes, ports, strict=True)
        ]
        try:
            for process, port in zip(processes, ports, strict=True):
                wait_ready(process, port)
            urls = [f"http://127.0.0.1:{port}" for port in ports]
            pids = [process.pid for process in processes]
            runs = {
                client: [
                    asyncio.run(drive(urls, agents, c, requests, seed, budget, pids, client))
                    for c in (1, 8, 32)
                ]
                for client in CLIENTS
            }
            overhead = request_overhead(urls[0], agents, pids[0])
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)
        over_http = http_floor(stores, agents, requests, seed)
    floor_p50 = statistics.median(floor_times) * 1000
    summaries = {client: [r.summary() for r in client_runs] for client, client_runs in runs.items()}
    lone, concurrent = summaries["lean"][:2]
    allowed = targets.budgets(floor_p50, lone, concurrent, embedding, os.cpu_count() or 1)
    return {
        "mode": "scale-out" if scale_out else "embedded",
        "memories": memories,
        "agents": agents_count,
        "budget_tokens": budget,
        "load_seconds": round(load_seconds, 1),
        "floor_p50_ms": round(floor_p50, 1),
        "floor_p95_ms": round(sorted(floor_times)[int(0.95 * len(floor_times))] * 1000, 1),
        "floor_with_chroma_p50_ms": round(statistics.median(chroma_floor_times) * 1000, 1),
        "runs": summaries["lean"],
        "httpx_runs": summaries["httpx"],
        "p50_over_floor": round(summaries["lean"][0]["p50_ms"] / floor_p50, 2),
        "httpx_p50_over_floor": round(summaries["httpx"][0]["p50_ms"] / floor_p50, 2),
        "http_floor": over_http,
        "http_floor_p50_over_floor": round(over_http["key_check"][0]["p50_ms"] / floor_p50, 2),
        "targets": targets.as_dict(embedding, allowed, overhead),
    }


def markdown(result: dict[str, Any]) -> str:
    where = (
        "PostgreSQL, a `chroma run` server and two server processes, clients spread over both"
        if result.get("mode") == "scale-out"
        else "SQLite and embedded Chroma, one server process"
    )
    lines = [
        f"{result['memories']:,} memories across {result['agents']} agents ({where}); context "
        f"calls with `budget_tokens={result['budget_tokens']}`, each query distinct (no cache "
        "hits).",
        "",
        "| client | clients | requests | errors | p50 ms | p95 ms | p99 ms | req/s "
        "| server CPU ms/call | client CPU ms/call | req/s the cores allow |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [("lean", run_) for run_ in result["runs"]]
    rows += [("httpx", run_) for run_ in result.get("httpx_runs", [])]
    for client, run_ in rows:
        lines.append(
            f"| {client} | {run_['concurrency']} | {run_['requests']} | {run_['errors']} "
            f"| {run_['p50_ms']} "
            f"| {run_['p95_ms']} | {run_['p99_ms']} | {run_['rps']} "
            f"| {run_.get('server_cpu_ms', '-')} | {run_.get('client_cpu_ms', '-')} "
            f"| {run_.get('cpu_bound_rps', '-')} |"
        )
    lines += [
        "",
        "Floor (query embedding + bare vector query of the namespace, in-process"
        + (", over HTTP to Chroma" if result.get("mode") == "scale-out" else "")
        + "): "
        f"p50 {result['floor_p50_ms']} ms, p95 {result['floor_p95_ms']} ms.",
        f"Single-client p50 / floor p50 = **{result['p50_over_floor']}x** (lean client; "
        f"{result.get('httpx_p50_over_floor', '-')}x through httpx). With Chroma's own "
        f"query instead of the server's: floor p50 {result['floor_with_chroma_p50_ms']} ms.",
        f"CPU per call is that of the timed calls on this machine's {os.cpu_count()} cores, which "
        "the clients share with the server; the last column is cores / CPU per call, what the "
        "cores could serve if nothing else limited them. The lean client is a bare keep-alive "
        "HTTP/1.1 connection per client (`LeanConnection`), as a load generator would use; httpx "
        "is what the Python SDK uses, and its own CPU per call is in its latencies.",
    ]
    if "http_floor" in result:
        lines += ["", *http_floor_markdown(result)]
    if "targets" in result:
        lines += ["", *targets.markdown(result["targets"], os.cpu_count() or 1)]
    return "\n".join(lines)


def http_floor_markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "The floor over HTTP (`bench/floor_server.py`): the server's own app and HTTP stack with a "
        "route that only embeds the query, as the context route does, and asks the namespace's "
        "vectors, with and without the key check every API route makes; lean clients.",
        "",
        "| route | clients | requests | errors | p50 ms | p95 ms | req/s | server CPU ms/call |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = {"key_check": "floor + key check", "open": "floor alone"}
    for name, runs in result["http_floor"].items():
        for run_ in runs:
            lines.append(
                f"| {names.get(name, name)} | {run_['concurrency']} | {run_['requests']} "
                f"| {run_['errors']} | {run_['p50_ms']} | {run_['p95_ms']} | {run_['rps']} "
                f"| {run_.get('server_cpu_ms', '-')} |"
            )
    eight = result["http_floor"]["key_check"][1]
    lines += [
        "",
        f"With the key check and nothing else of a context call, a lone call takes "
        f"**{result['http_floor_p50_over_floor']}x** the in-process floor at p50, and 8 "
        f"clients get p95 {eight['p95_ms']} ms.",
    ]
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--fresh", action="store_true", help="reload even if data exists")
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help="PostgreSQL + `chroma run` + two server processes (docs/deployment.md)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("MEMORY_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL URL whose server may create the benchmark's database (--scale-out)",
    )
    args = parser.parse_args(argv)
    suffix = "-scale-out" if args.scale_out else ""
    data_dir = args.data_dir or DEFAULT_DIR / f"{args.memories}-{args.agents}{suffix}"
    result = run(
        args.memories,
        args.agents,
        args.requests,
        data_dir,
        args.fresh,
        scale_out=args.scale_out,
        postgres=args.postgres,
    )
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
