"""The running server's parts, built once from Settings at startup and closed at shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from summarizer.runner import Summarizer

from .auth import ensure_admin_key
from .config import Settings
from .db import Database
from .embeddings import Embedder, LazyEmbedder, QueryEmbedder, load_embedder
from .metrics import StoreCollector
from .migrations import migrate
from .ratelimit import RateLimiter
from .services.agents import AgentService
from .services.audit import AuditService
from .services.context import ContextService
from .services.embeddings import EmbeddingService
from .services.events import EventService
from .services.idempotency import IdempotencyService
from .services.indexing import IndexService
from .services.memories import MemoryService
from .services.namespaces import NamespaceService
from .services.retrieval import Retriever
from .services.search import SearchService
from .services.sharing import SharingService
from .services.tasks import TaskService
from .services.transfer import TransferService
from .services.usage import AccessRecorder, recently_read_namespaces
from .sql_statistics import try_refresh_statistics
from .statements import StatementEmbedder
from .tokens import count_tokens
from .vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server cannot start; the message is one line that says why."""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    admin_key: str
    embedder: Embedder
    vectors: VectorStore
    index: IndexService
    memories: MemoryService
    agents: AgentService
    namespaces: NamespaceService
    idempotency: IdempotencyService
    queries: QueryEmbedder
    recorder: AccessRecorder
    search: SearchService
    context: ContextService
    embeddings: EmbeddingService
    sharing: SharingService
    audit: AuditService
    rate_limiter: RateLimiter
    summarizer: Summarizer
    events: EventService
    transfer: TransferService
    tasks: TaskService
    store_metrics: StoreCollector
    scheduler: BackgroundScheduler | None = None

    def start_jobs(self) -> None:
        """Start the background work: expiry purge, summaries and index checks (if scheduled),
        access bookkeeping."""
        self.recorder.start()
        scheduler = BackgroundScheduler(timezone="UTC")
        jobs = (  # (job, every so many seconds, id); 0 leaves a job out
            (self._purge_expired, self.settings.expiry_purge_seconds, "purge_expired"),
            (
                self.summarizer.run_scheduled,
                self.settings.summary_interval_minutes * 60,
                "summarize",
            ),
            (
                self.index.reconcile_scheduled,
                self.settings.reconcile_interval_minutes * 60,
                "reconcile",
            ),
            (self._refresh_statistics, self.settings.sql_statistics_minutes * 60, "statistics"),
        )
        for job, seconds, job_id in jobs:
            if seconds > 0:
                scheduler.add_job(
                    job, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True
                )
        scheduler.start()
        self.scheduler = scheduler

    def _purge_expired(self) -> None:
        purged = self.memories.purge_expired()
        if purged:
            log.info("purged %d expired memories", purged)

    def _refresh_statistics(self) -> None:
        try_refresh_statistics(self.db)

    def begin_shutdown(self) -> None:
        """Shutdown has begun: a summarizer run stops after the group it is condensing."""
        self.summarizer.stop()

    def close(self) -> None:
        """Stop the background work, waiting for a running job to end, then release the stores."""
        self.begin_shutdown()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        self.recorder.close()
        self.queries.close()
        self.db.dispose()


def build_runtime(
    settings: Settings, *, reconcile: bool | None = None, maintenance: bool = False
) -> Runtime:
    """Migrate SQL, load the embedder, open the index and (by default) repair it from SQL.

    `maintenance` (the reindex and reconcile commands): the embedding model and the tokenizers
    load only if used, so repairing the index from stored vectors starts in a second or two.

    The token counter for the default token model is set up in a thread from the start,
    alongside the rest, and waited for at the end, so that no request pays for it: milliseconds
    for `gpt-4o-mini` (`tokens.py`), litellm's 3-4 s import for a model only litellm counts. The
    time of each step is logged.
    """
    phases = _Phases()
    counter = (
        None
        if maintenance
        else _in_background(count_tokens, "warm up", settings.default_token_model)
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    try:
        db.ping()
        migrate(db.engine)
    except Exception as exc:
        db.dispose()
        raise StartupError(
            f"database {_redact(settings.resolved_database_url)}: {_one_line(exc)}"
        ) from exc
    phases.done("database")
    embedder_options = (
        settings.embedding_model,
        settings.embedding_api_base,
        settings.embedding_runtime,
    )
    cache_dir = embedding_cache_dir(settings.data_dir)
    try:
        model: Embedder = (
            LazyEmbedder(*embedder_options, cache_dir=cache_dir)
            if maintenance
            else load_embedder(*embedder_options, cache_dir=cache_dir)
        )
    except Exception as exc:
        db.dispose()
        raise StartupError(
            f"embedding model {settings.embedding_model!r}: {_one_line(exc)}"
        ) from exc
    try:
        vectors = open_vector_store(settings)
    except Exception as exc:
        db.dispose()
        raise StartupError(f"vector store {settings.vector_store}: {_one_line(exc)}") from exc
    phases.done("embedding model")  # the vector store opens in well under a second
    embedder = StatementEmbedder(model)  # memories are embedded from what they state
    index = IndexService(db, vectors, embedder)
    if settings.reconcile_on_startup if reconcile is None else reconcile:
        try:
            report = index.reconcile_exclusive()
        except Exception as exc:
            db.dispose()
            raise StartupError(f"vector store {settings.vector_store}: {_one_line(exc)}") from exc
        if not report.skipped:
            log.info(
                "vector index checked: %d memories in SQL, %d repaired%s",
                report.sql_count,
                report.repaired,
                " (rebuilt)" if report.rebuilt else "",
            )
        phases.done("index check")
    if not maintenance:
        if settings.sql_statistics_minutes > 0:
            try_refresh_statistics(db)  # before the warm-up reads: their connections plan with them
        _warm(vectors, db)
        phases.done("index warm-up")
    idempotency = IdempotencyService(db, timedelta(seconds=settings.idempotency_claim_seconds))
    if db.is_sqlite and not maintenance:
        # one server process per SQLite file: no request of this start holds a key yet
        released = idempotency.release_abandoned_claims()
        if released:
            log.info("freed %d Idempotency-Keys left pending by a stopped process", released)
    queries = QueryEmbedder(model)
    recorder = AccessRecorder(db)
    retriever = Retriever(vectors, queries, embedder.name)
    memories = MemoryService(db, vectors, embedder, settings)
    if counter is not None:
        counter.result()
        phases.done("token counter")
    phases.log()
    return Runtime(
        settings=settings,
        db=db,
        admin_key=ensure_admin_key(settings),
        embedder=embedder,
        vectors=vectors,
        index=index,
        memories=memories,
        agents=AgentService(db),
        namespaces=NamespaceService(db),
        idempotency=idempotency,
        queries=queries,
        recorder=recorder,
        search=SearchService(db, retriever, recorder),
        context=ContextService(db, retriever, recorder, settings),
        embeddings=EmbeddingService(memories, vectors, embedder, queries),
        sharing=SharingService(db),
        audit=AuditService(db),
        rate_limiter=RateLimiter(settings.rate_limit_per_minute),
        summarizer=Summarizer(db, memories, embedder, settings),
        events=EventService(db),
        transfer=TransferService(db, memories, vectors, embedder, settings),
        tasks=TaskService(db, settings),
        store_metrics=StoreCollector(db, vectors),
    )


def embedding_cache_dir(data_dir: Path) -> Path:
    """Where the compiled embedding model is kept between starts (`encoder_cache`)."""
    return data_dir / "embedding-cache"


class _Phases:
    """Seconds each startup step took, logged in one line."""

    def __init__(self) -> None:
        self._started = self._last = time.perf_counter()
        self._seconds: dict[str, float] = {}

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self._seconds[name] = now - self._last
        self._last = now

    def log(self) -> None:
        steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self._seconds.items())
        log.info("runtime built in %.2f s: %s", time.perf_counter() - self._started, steps)


def _in_background(function: Callable[..., object], *args: object) -> Future[object]:
    """`function(*args)` run in a daemon thread; its result (or exception) in the future."""
    future: Future[object] = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="startup-warm").start()
    return future


STARTUP_WARM_SECONDS = 10.0


def _warm(vectors: VectorStore, db: Database) -> None:
    """Make the index ready for the namespaces read most recently before this process serves
    (at most `STARTUP_WARM_SECONDS`): their first calls then cost what later ones do."""
    started = time.monotonic()
    try:
        warmed = vectors.warm(recently_read_namespaces(db), STARTUP_WARM_SECONDS)
    except Exception:  # each namespace gets ready on its first query instead
        log.exception("could not warm the vector index")
        return
    if warmed:
        log.info(
            "vector index warm for %d namespaces in %.1f s", warmed, time.monotonic() - started
        )


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}" if ":" in credentials else url
    return url
