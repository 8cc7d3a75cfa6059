"""Crash safety of writes: `kill -9` a live server during single and batch writes that carry an
`Idempotency-Key`, restart it on the same stores, retry every request, and check what is stored.

    python -m bench.crash [--trials 50] [--database sqlite|postgres|both] [--postgres-url URL]
                          [--clients 4] [--seed 1] [--max-delay 2] [--json] [--progress]

One `memory-server serve` process over a fresh data dir (and, with `--database postgres`, a fresh
PostgreSQL database, dropped afterwards). Per trial, `--clients` threads send messages (kind
`message`, never deduplicated, so a write done twice is visible), one at a time through
`POST /v1/memories` or several through `POST /v1/memories/batch`, each request with its own
`Idempotency-Key`. At a random moment, while at least one request is unanswered, the server is
killed with SIGKILL and started again on the same stores. Then every request sent in the trial,
answered or not, is sent again with the same key and body until it is answered (409
`idempotency_in_progress`, 429 and 503 are waited out as their `Retry-After` says). Checked:

- every memory of an answered request (before the kill or on the retry) is readable by id;
- every one is found by `POST /v1/search` with its exact content as the query, within its thread;
- every message's content is stored exactly once (the trial's memories, listed page by page);
- a retry of a request answered before the kill returns the same memories.

Reported per database: the counts, the restart time (start to `/readyz` 200) p50 and max, and
how long the slowest trial's retries took to be answered (on PostgreSQL a claim left by the killed
process is taken over once `MEMORY_IDEMPOTENCY_CLAIM_SECONDS` has passed; SQLite frees it at the
start). `python -m pytest tests/test_crash.py` runs one trial per database.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.latency import ADMIN_KEY, DEFAULT_POSTGRES, synthetic_memory
from bench.server_process import Server

RETRY_STATUSES = {409, 429, 503}  # 409 only with code idempotency_in_progress


@dataclass
class Sent:
    """One write request of a trial: what was sent, and what came back before and after."""

    key: str
    path: str
    body: dict[str, Any]
    contents: list[str]
    thread_id: str
    acknowledged: list[str] | None = None  # memory ids answered before the kill
    retried: list[str] | None = None  # memory ids answered to the retry after the restart
    replayed: bool = False  # the retry's answer was the stored one (Idempotent-Replayed)
    retry_error: str | None = None


@dataclass
class Trial:
    number: int
    sent: list[Sent] = field(default_factory=list)
    unanswered_at_kill: int = 0
    restart_seconds: float = 0.0
    retry_seconds: float = 0.0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    unsearchable: list[str] = field(default_factory=list)
    mismatched: int = 0


@contextlib.contextmanager
def fresh_postgres(base: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `base` (a URL), dropped afterwards."""
    import psycopg

    name = f"crash_{secrets.token_hex(6)}"
    admin_url = base.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _agent_key(url: str) -> str:
    """A new agent's API key, made with the admin key."""
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
    ) as admin:
        agent = admin.post("/v1/agents", json={"name": "crash-bench"})
        agent.raise_for_status()
        key = admin.post(f"/v1/agents/{agent.json()['id']}/keys", json={"name": "crash"})
        key.raise_for_status()
        return str(key.json()["key"])


def _request(rng: random.Random, trial: int, client: int, n: int) -> Sent:
    """A single write (a third of the time) or a batch of 2-8, of messages unique by content."""
    thread_id = f"trial-{trial}-client-{client}"
    size = 1 if rng.random() < 1 / 3 else rng.randint(2, 8)
    contents = [f"{synthetic_memory(rng, n)} [t{trial} c{client} r{n} m{i}]" for i in range(size)]
    messages = [
        {
            "kind": "message",
            "role": rng.choice(["user", "assistant"]),
            "content": content,
            "user_id": f"trial-{trial}",
            "thread_id": thread_id,
        }
        for content in contents
    ]
    key = f"crash-{secrets.token_hex(8)}"
    if size == 1:
        return Sent(key, "/v1/memories", messages[0], contents, thread_id)
    return Sent(key, "/v1/memories/batch", {"memories": messages}, contents, thread_id)


def _ids(sent: Sent, body: dict[str, Any]) -> list[str]:
    results = [body] if sent.path == "/v1/memories" else body["results"]
    return [str(result["memory"]["id"]) for result in results]


def _write_until_killed(
    server: Server, key: str, trial: Trial, clients: int, rng: random.Random, max_delay: float
) -> None:
    """`clients` threads write until the server is killed, at a random moment with at least
    one request unanswered."""
    lock = threading.Lock()
    in_flight = [0]
    stop = threading.Event()

    def client_loop(client: int, seed: int) -> None:
        local = random.Random(seed)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            n = 0
            while not stop.is_set():
                sent = _request(local, trial.number, client, n)
                n += 1
                with lock:
                    trial.sent.append(sent)
                    in_flight[0] += 1
                try:
                    response = http.post(
                        sent.path, json=sent.body, headers={"Idempotency-Key": sent.key}
                    )
                except httpx.TransportError:
                    return  # killed: this one stays unanswered
                finally:
                    with lock:
                        in_flight[0] -= 1
                if response.status_code in (200, 201):
                    sent.acknowledged = _ids(sent, response.json())

    threads = [
        threading.Thread(target=client_loop, args=(c, rng.randrange(2**32)), daemon=True)
        for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(rng.uniform(0.2, max_delay))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with lock:
            if in_flight[0] > 0:
                break
        time.sleep(0.001)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    trial.unanswered_at_kill = sum(1 for s in trial.sent if s.acknowledged is None)


def _retry(http: httpx.Client, deadline: float, sent: Sent) -> None:
    """Send `sent` again, same key and body, until it is answered or `deadline` passes."""
    headers = {"Idempotency-Key": sent.key}
    while True:
        wait = 0.5
        try:
            response = http.post(sent.path, json=sent.body, headers=headers)
        except httpx.TransportError as exc:
            sent.retry_error = f"transport: {exc}"
        else:
            if response.status_code in (200, 201):
                sent.retried = _ids(sent, response.json())
                sent.replayed = response.headers.get("Idempotent-Replayed") == "true"
                sent.retry_error = None
                return
            sent.retry_error = f"{response.status_code} {response.text[:200]}"
            retriable = response.status_code in RETRY_STATUSES
            if response.status_code == 409:
                retriable = "idempotency_in_progress" in response.text
            if not retriable:
                return
            with contextlib.suppress(ValueError):
                wait = float(response.headers.get("Retry-After", wait))
        if time.monotonic() + wait > deadline:
            return
        time.sleep(wait)


def _listed(http: httpx.Client, user_id: str) -> Counter[str]:
    """How many times each content is stored among the trial's messages."""
    counts: Counter[str] = Counter()
    params: dict[str, Any] = {"user_id": user_id, "kind": "message", "limit": 500}
    while True:
        page = http.get("/v1/memories", params=params)
        page.raise_for_status()
        body = page.json()
        counts.update(memory["content"] for memory in body["data"])
        if not body.get("next_cursor"):
            return counts
        params["cursor"] = body["next_cursor"]


def _verify(url: str, key: str, trial: Trial, workers: int) -> None:
    """Count the trial's duplicates, lost and unsearchable memories."""
    user_id = f"trial-{trial.number}"
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        counts = _listed(http, user_id)
        trial.duplicates = sum(n - 1 for n in counts.values() if n > 1)
        # every memory a request was answered with: id -> (content, thread)
        answered: dict[str, tuple[str, str]] = {}
        lost: set[str] = set()
        for sent in trial.sent:
            if sent.acknowledged and sent.retried and sent.acknowledged != sent.retried:
                trial.mismatched += 1
            for ids in filter(None, (sent.acknowledged, sent.retried)):
                for memory_id, content in zip(ids, sent.contents, strict=True):
                    answered[memory_id] = (content, sent.thread_id)
                    if counts[content] == 0:
                        lost.add(content)

        def check(item: tuple[str, tuple[str, str]]) -> tuple[str, bool, bool]:
            memory_id, (content, thread_id) = item
            read = http.get(f"/v1/memories/{memory_id}")
            readable = read.status_code == 200 and read.json()["content"] == content
            query = {"query": content, "user_id": user_id, "thread_id": thread_id, "k": 10}
            found = http.post("/v1/search", json=query)
            found.raise_for_status()
            hits = {hit["memory"]["id"] for hit in found.json()["results"]}
            return content, readable, memory_id in hits

        with ThreadPoolExecutor(workers) as pool:
            for content, readable, searchable in pool.map(check, answered.items()):
                if not readable:
                    lost.add(content)
                elif not searchable:
                    trial.unsearchable.append(content)
        trial.lost = sorted(lost)


@dataclass(frozen=True)
class Options:
    clients: int = 4  # threads writing at once
    max_delay: float = 2.0  # the kill comes 0.2 s to this many seconds after the writes start
    retry_timeout: float = 180.0  # every retry is answered within this, or counts as unanswered
    seed: int = 1
    progress: bool = False  # each trial's figures on stderr


def _trial(server: Server, key: str, number: int, options: Options, rng: random.Random) -> Trial:
    """Write, kill, restart, retry every request, verify."""
    trial = Trial(number)
    _write_until_killed(server, key, trial, options.clients, rng, options.max_delay)
    trial.restart_seconds = server.start()
    started = time.perf_counter()
    deadline = time.monotonic() + options.retry_timeout
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=server.url, headers=headers, timeout=60) as http,
        ThreadPoolExecutor(options.clients * 2) as pool,
    ):
        list(pool.map(functools.partial(_retry, http, deadline), trial.sent))
    trial.retry_seconds = time.perf_counter() - started
    _verify(server.url, key, trial, options.clients)
    return trial


def run(
    trials: int,
    database_url: str | None = None,
    data_dir: Path | None = None,
    options: Options = Options(),
) -> dict[str, Any]:
    """`trials` kill-restart-retry-verify rounds against one server over `data_dir` (a temporary
    dir if None) and `database_url` (SQLite in the data dir if None); the figures."""
    database = "sqlite" if database_url is None else "postgres"
    rng = random.Random(options.seed)
    done: list[Trial] = []
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-")))
        server = Server(data_dir / "var", database_url)
        stack.callback(server.kill, signal.SIGTERM)
        first_start = server.start()
        key = _agent_key(server.url)
        for number in range(trials):
            done.append(_trial(server, key, number, options, rng))
            if options.progress:
                print(json.dumps(_summary(done[-1:], database, options)), file=sys.stderr)
    return _summary(done, database, options) | {"first_start_seconds": round(first_start, 2)}


def _summary(done: list[Trial], database: str, options: Options) -> dict[str, Any]:
    restarts = [t.restart_seconds for t in done]
    sent = [s for t in done for s in t.sent]
    unresolved = [s for s in sent if s.retried is None]
    return {
        "database": database,
        "clients": options.clients,
        "trials": len(done),
        "requests_sent": len(sent),
        "memories_sent": sum(len(s.contents) for s in sent),
        "acknowledged_before_kill": sum(1 for s in sent if s.acknowledged is not None),
        "unanswered_at_kill": sum(t.unanswered_at_kill for t in done),
        "trials_killed_in_flight": sum(1 for t in done if t.unanswered_at_kill > 0),
        "retried": len(sent),
        "retries_replayed": sum(1 for s in sent if s.replayed),
        "unanswered_then_replayed": sum(1 for s in sent if s.acknowledged is None and s.replayed),
        "unresolved_retries": len(unresolved),
        "unresolved_errors": sorted({str(s.retry_error) for s in unresolved})[:5],
        "duplicates": sum(t.duplicates for t in done),
        "mismatched_replays": sum(t.mismatched for t in done),
        "lost": sum(len(t.lost) for t in done),
        "unsearchable": sum(len(t.unsearchable) for t in done),
        "restart_seconds_p50": round(statistics.median(restarts), 2) if restarts else None,
        "restart_seconds_max": round(max(restarts), 2) if restarts else None,
        "retry_seconds_max": round(max(t.retry_seconds for t in done), 2) if done else None,
    }


def markdown(results: list[dict[str, Any]]) -> str:
    columns = [
        ("database", "database"),
        ("trials", "trials"),
        ("requests_sent", "requests sent (memories)"),
        ("acknowledged_before_kill", "acknowledged before the kill"),
        ("unanswered_at_kill", "unanswered at the kill (of which committed)"),
        ("retried", "retried"),
        ("duplicates", "duplicates"),
        ("lost", "lost"),
        ("unsearchable", "unsearchable"),
        ("unresolved_retries", "retries unanswered"),
        ("restart_seconds_p50", "restart p50 / max, s"),
        ("retry_seconds_max", "retries answered within, s"),
    ]
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    for r in results:
        cells = [str(r[name]) for name, _ in columns]
        cells[2] = f"{r['requests_sent']} ({r['memories_sent']})"
        cells[4] = f"{r['unanswered_at_kill']} ({r['unanswered_then_replayed']})"
        cells[10] = f"{r['restart_seconds_p50']} / {r['restart_seconds_max']}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crash",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MEMORY_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server to create a fresh database on (dropped afterwards)",
    )
    parser.add_argument("--clients", type=int, default=Options.clients)
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument(
        "--max-delay",
        type=float,
        default=Options.max_delay,
        help="the kill comes 0.2 s to this many seconds after the writes start",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--progress", action="store_true", help="each trial's figures on stderr")
    args = parser.parse_args(argv)
    options = Options(
        clients=args.clients, max_delay=args.max_delay, seed=args.seed, progress=args.progress
    )
    results = []
    if args.database in ("sqlite", "both"):
        results.append(run(args.trials, None, options=options))
    if args.database in ("postgres", "both"):
        with fresh_postgres(args.postgres_url) as database_url:
            results.append(run(args.trials, database_url, options=options))
    print(json.dumps(results, indent=2) if args.json else markdown(results))
    return results


if __name__ == "__main__":
    main()
