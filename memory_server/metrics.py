"""Prometheus metrics: the metric objects, and one-line helpers for the code that feeds them.

Process-wide metrics live in prometheus_client's default registry (with its process and GC
collectors). What depends on one runtime's stores (memory counts, index size) is collected at
scrape time by `StoreCollector`, cached for a few seconds so frequent scrapes stay cheap.

Search and context split their latency into stages: the service names the endpoint with
`begin("search")`, then calls `lap("sql")` etc. after each stage; the time since the previous lap
is added to that stage. The HTTP middleware opens the per-request accumulator (`track_stages`) and
observes the totals when the response is done (`observe_stages`), so each request adds one
observation per stage it went through. Outside a request both calls do nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import col, select

from .db import Database
from .models import Memory
from .vector_cache import VectorCache
from .vectors import VectorStore

UNMATCHED_ROUTE = "unmatched"

REQUEST_SECONDS = Histogram(
    "memory_http_request_duration_seconds",
    "HTTP request latency by method, route template and status class (2xx, 4xx, ...).",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STAGE_SECONDS = Histogram(
    "memory_request_stage_seconds",
    "Time one search or context request spent in a stage: embedding, vector_query, sql, "
    "ranking, packing.",
    ["endpoint", "stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SUMMARY_RUNS = Counter(
    "memory_summarizer_runs_total",
    "Summarizer runs that ended, by status: completed, interrupted (shutdown) or error.",
    ["status"],
)
SUMMARY_GROUPS = Counter(
    "memory_summarizer_groups_total",
    "Groups of memories the summarizer tried to condense, by outcome: condensed or failed.",
    ["outcome"],
)
SUMMARY_TOKENS = Counter(
    "memory_summarizer_tokens_total",
    "Tokens the summary model read (prompt) and wrote (completion).",
    ["direction"],
)
SUMMARY_COST = Counter(
    "memory_summarizer_cost_usd_total", "Cost of summary model calls, USD as litellm prices them."
)
INDEX_DRIFT = Gauge(
    "memory_index_drift",
    "Vector-index entries out of step with SQL at the last reconcile (then repaired): missing, "
    "stale (old version) or orphaned (not in SQL).",
    ["kind"],
)
INDEX_RECONCILED = Gauge(
    "memory_index_last_reconcile_timestamp_seconds",
    "Unix time of the last reconcile of the vector index with SQL.",
)

# ---- search and context stages ---------------------------------------------------------------


@dataclass
class StageTimes:
    """Seconds per stage for one request; `endpoint` stays None unless a service named it."""

    endpoint: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    mark: float = 0.0


_stages: ContextVar[StageTimes | None] = ContextVar("memory_stage_times", default=None)


def track_stages() -> StageTimes:
    """Start collecting stage times for the current request (the HTTP middleware calls this)."""
    times = StageTimes()
    _stages.set(times)
    return times


def begin(endpoint: str) -> None:
    """Name the endpoint whose stages follow and start the clock."""
    times = _stages.get()
    if times is not None:
        times.endpoint = endpoint
        times.mark = time.perf_counter()


def lap(stage: str) -> None:
    """Add the time since `begin` or the previous lap to `stage`."""
    times = _stages.get()
    if times is None or times.endpoint is None:
        return
    now = time.perf_counter()
    times.seconds[stage] = times.seconds.get(stage, 0.0) + (now - times.mark)
    times.mark = now


def observe_stages(times: StageTimes) -> None:
    if times.endpoint is None:
        return
    for stage, seconds in times.seconds.items():
        STAGE_SECONDS.labels(times.endpoint, stage).observe(seconds)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(method, route, f"{status // 100}xx").observe(seconds)


# ---- index drift and stored memories ---------------------------------------------------------


def record_reconcile(missing: int, stale: int, orphaned: int) -> None:
    INDEX_DRIFT.labels("missing").set(missing)
    INDEX_DRIFT.labels("stale").set(stale)
    INDEX_DRIFT.labels("orphaned").set(orphaned)
    INDEX_RECONCILED.set_to_current_time()


class StoreCollector(Collector):
    """Memories in SQL by status and kind, and entries in the vector index, at scrape time."""

    def __init__(self, db: Database, vectors: VectorStore, ttl_seconds: float = 5.0):
        self._db = db
        self._vectors = vectors
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._cached_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._cached_at > self._ttl:
                self._cached = self._measure()
                self._cached_at = time.monotonic()
            yield from self._cached

    def _measure(self) -> list[Metric]:
        memories = GaugeMetricFamily(
            "memory_memories",
            "Memories stored in SQL, by status and kind.",
            labels=["status", "kind"],
        )
        with self._db.read() as session:
            rows = session.exec(
                select(Memory.status, Memory.kind, func.count(col(Memory.id))).group_by(
                    col(Memory.status), col(Memory.kind)
                )
            ).all()
        for status, kind, count in rows:
            memories.add_metric([str(status), str(kind)], float(count))
        metrics: list[Metric] = [memories]
        try:
            entries = self._vectors.count()
        except Exception:  # the index being down must not break the scrape; /readyz reports it
            return metrics
        metrics.append(
            GaugeMetricFamily(
                "memory_index_entries", "Entries in the vector index.", value=float(entries)
            )
        )
        if isinstance(self._vectors, VectorCache):
            metrics += [
                GaugeMetricFamily(
                    "memory_vector_cache_vectors",
                    "Vectors copied in memory for exact search.",
                    value=float(self._vectors.held_vectors),
                ),
                GaugeMetricFamily(
                    "memory_vector_cache_namespaces",
                    "Namespaces whose vectors are copied in memory.",
                    value=float(len(self._vectors.copied_namespaces())),
                ),
            ]
        return metrics


class _Combined(Collector):
    def __init__(self, *collectors: Collector):
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def exposition(stores: StoreCollector) -> bytes:
    """The text exposition of the process-wide metrics plus this runtime's store metrics."""
    return generate_latest(_Combined(REGISTRY, stores))
