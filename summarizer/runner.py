"""Running the summarizer: select groups, condense each, and store each summary with its sources
archived in one transaction, so that a run stopped at any point leaves every group whole or
untouched, and a second run never condenses the same entries twice."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import col, update

from memory_server import metrics
from memory_server.access import Action, authorize_namespace, scope_namespace_ids
from memory_server.auth import Principal
from memory_server.config import Settings
from memory_server.db import Database
from memory_server.embeddings import Embedder
from memory_server.errors import Conflict, InvalidRequest, NotFound, StoreUnavailable
from memory_server.models import SummaryRun, new_id, utcnow
from memory_server.services.events import SYSTEM, Actor
from memory_server.services.leases import Lease
from memory_server.services.memories import MemoryService, SummaryDraft

from .condense import CondenseFailed, Condenser, ExtractiveCondenser, LLMCondenser
from .selection import Group, SelectionRules, select_groups

log = logging.getLogger(__name__)

LEASE_NAME = "summarizer"


@dataclass
class RunReport:
    """A finished (or dry) run: its stored record, plus what only this caller gets to see."""

    run: SummaryRun
    summary_ids: list[str] = field(default_factory=list)
    plan: list[Group] = field(default_factory=list)


def build_condenser(settings: Settings, embedder: Embedder) -> Condenser:
    """The LLM condenser when `summary_model` is set, else the extractive one."""
    if settings.summary_model:
        return LLMCondenser(
            settings.summary_model,
            api_base=settings.summary_api_base,
            api_key=settings.summary_api_key,
            timeout=settings.summary_timeout_seconds,
            token_model=settings.default_token_model,
        )
    return ExtractiveCondenser(embedder, token_model=settings.default_token_model)


class Summarizer:
    """Condenses old memories into summaries; one run at a time across all server processes."""

    def __init__(
        self,
        db: Database,
        memories: MemoryService,
        embedder: Embedder,
        settings: Settings,
        condenser: Condenser | None = None,
    ):
        self._db = db
        self._memories = memories
        self._embedder = embedder
        self._settings = settings
        self._condenser = condenser or build_condenser(settings, embedder)
        self._lease = Lease(db, LEASE_NAME, ttl=timedelta(seconds=settings.summary_lease_seconds))
        self._stopping = threading.Event()
        self._rules = SelectionRules(
            kinds=settings.summary_kinds,
            min_age=timedelta(hours=settings.summary_min_age_hours),
            min_group_size=settings.summary_min_group_size,
            max_source_tokens=settings.summary_max_source_tokens,
        )

    # ---- entry points ------------------------------------------------------------------------

    def run_for(
        self, principal: Principal, namespace_id: str | None, *, dry_run: bool
    ) -> RunReport:
        """A run requested through the API: the caller needs write access to the namespace."""
        if namespace_id is None and not principal.is_admin:
            raise InvalidRequest(
                "namespace_id is required; only the admin key condenses every namespace.",
                code="namespace_required",
            )
        if namespace_id is not None:
            with self._db.read() as session:
                authorize_namespace(session, principal, namespace_id, Action.WRITE)
        report = self.run(
            namespace_id, dry_run=dry_run, triggered_by=principal.id, actor=Actor.of(principal)
        )
        if report is None:
            raise Conflict(
                "Another summarizer run is in progress; retry when it has finished.",
                code="summarizer_busy",
            )
        return report

    def run_scheduled(self) -> None:
        """The periodic run over every namespace; skipped when another process holds the lease."""
        report = self.run(None, dry_run=False, triggered_by="schedule")
        if report is None:
            log.info("scheduled summary run: skipped, another process holds the lease")
        elif report.run.groups:
            log.info(
                "scheduled summary run: condensed %d memories into %d summaries (%d -> %d tokens)",
                report.run.sources,
                report.run.groups,
                report.run.tokens_before,
                report.run.tokens_after,
            )
        else:
            log.info("scheduled summary run: nothing to condense")

    def get_run(self, principal: Principal, run_id: str) -> SummaryRun:
        """A run record, for a caller who may read its namespace (all namespaces: admin only)."""
        with self._db.read() as session:
            run = session.get(SummaryRun, run_id)
            visible = run is not None and (
                principal.is_admin
                or (
                    run.namespace_id is not None
                    and run.namespace_id in scope_namespace_ids(session, principal, None)
                )
            )
        if run is None or not visible:
            raise NotFound(f"Summary run {run_id!r} was not found.", code="summary_run_not_found")
        return run

    def stop(self) -> None:
        """The server is shutting down: a run in progress ends after its current group."""
        self._stopping.set()

    # ---- the run -----------------------------------------------------------------------------

    def run(
        self,
        namespace_id: str | None,
        *,
        dry_run: bool,
        triggered_by: str | None,
        actor: Actor = SYSTEM,
    ) -> RunReport | None:
        """Condense every eligible group now; None when another holder has the lease.

        `actor` is who the event log names for the summaries and archivings (scheduled: system).
        """
        scope = [namespace_id] if namespace_id is not None else None
        if dry_run:
            return self._dry_run(namespace_id, scope, triggered_by)
        if not self._lease.acquire():
            return None
        lost = threading.Event()
        stop = threading.Event()
        heartbeat = threading.Thread(
            target=self._keep_lease, args=(stop, lost), daemon=True, name="summarizer-lease"
        )
        heartbeat.start()
        try:
            self._abandon_stale_runs()
            return self._run(namespace_id, scope, triggered_by, lost, actor)
        except Exception:
            metrics.SUMMARY_RUNS.labels("error").inc()
            raise
        finally:
            stop.set()
            heartbeat.join()
            self._lease.release()

    def _keep_lease(self, stop: threading.Event, lost: threading.Event) -> None:
        """Renew the lease every third of its term until `stop`; set `lost` if it slipped away."""
        while not stop.wait(self._lease.ttl.total_seconds() / 3):
            try:
                renewed = self._lease.renew()
            except Exception:
                log.exception("could not renew the summarizer lease")
                continue
            if not renewed:
                lost.set()
                return

    def _dry_run(
        self, namespace_id: str | None, scope: Sequence[str] | None, triggered_by: str | None
    ) -> RunReport:
        with self._db.read() as session:
            groups = select_groups(session, scope, self._rules)
        now = utcnow()
        run = SummaryRun(
            id=new_id("run"),
            namespace_id=namespace_id,
            status="completed",
            started_at=now,
            finished_at=now,
            dry_run=True,
            groups=len(groups),
            sources=sum(len(g.sources) for g in groups),
            tokens_before=sum(g.source_tokens for g in groups),
            triggered_by=triggered_by,
        )
        return RunReport(run, plan=groups)

    def _run(
        self,
        namespace_id: str | None,
        scope: Sequence[str] | None,
        triggered_by: str | None,
        lost: threading.Event,
        actor: Actor,
    ) -> RunReport:
        run = SummaryRun(
            id=new_id("run"),
            namespace_id=namespace_id,
            status="running",
            started_at=utcnow(),
            triggered_by=triggered_by,
        )
        self._save(run)
        with self._db.read() as session:
            groups = select_groups(session, scope, self._rules)
        report = RunReport(run)
        failures: list[dict[str, object]] = []
        status = "completed"
        for group in groups:
            if lost.is_set():  # another process may be running now: stop before the next group
                failures.append({"source_ids": [], "reason": "lost the summarizer lease"})
                break
            if self._stopping.is_set():  # shutdown: the rest waits for the next run
                status = "interrupted"
                break
            try:
                self._condense_group(group, report, failures, actor)
            except StoreUnavailable as down:  # the index is down: nothing stored; try next run
                failures.append({"source_ids": group.source_ids, "reason": down.detail})
                break
            run.failures = list(failures)
            self._save(run)
        run.failures = failures
        run.status = status
        run.finished_at = utcnow()
        self._save(run)
        metrics.SUMMARY_RUNS.labels(run.status).inc()
        return report

    def _condense_group(
        self, group: Group, report: RunReport, failures: list[dict[str, object]], actor: Actor
    ) -> None:
        run = report.run
        target = self._settings.summary_target_tokens
        try:
            condensed = self._condenser.condense(group, target)
        except CondenseFailed as failed:
            run.prompt_tokens += failed.prompt_tokens
            run.completion_tokens += failed.completion_tokens
            _count_tokens(failed.prompt_tokens, failed.completion_tokens, 0.0)
            metrics.SUMMARY_GROUPS.labels("failed").inc()
            failures.append({"source_ids": group.source_ids, "reason": failed.reason})
            log.warning("summary of %d memories failed: %s", len(group.sources), failed.reason)
            return
        run.prompt_tokens += condensed.prompt_tokens
        run.completion_tokens += condensed.completion_tokens
        run.cost += condensed.cost
        _count_tokens(condensed.prompt_tokens, condensed.completion_tokens, condensed.cost)
        draft = SummaryDraft(
            content=condensed.text,
            embedding=self._embedder.embed([condensed.text])[0],
            source_versions={s.id: s.version for s in group.sources},
            metadata={"summarizer": self._condenser.name, "run_id": run.id},
        )
        try:
            summary = self._memories.store_summary(draft, actor)
        except Conflict as conflict:
            metrics.SUMMARY_GROUPS.labels("failed").inc()
            failures.append({"source_ids": group.source_ids, "reason": conflict.detail})
            return
        metrics.SUMMARY_GROUPS.labels("condensed").inc()
        run.groups += 1
        run.sources += len(group.sources)
        run.tokens_before += group.source_tokens
        run.tokens_after += summary.token_count
        report.summary_ids.append(summary.id)

    def _save(self, run: SummaryRun) -> None:
        with self._db.write() as session:
            session.merge(run)

    def _abandon_stale_runs(self) -> None:
        """Runs left 'running' by a process that died; we hold the lease, so none is live."""
        with self._db.write() as session:
            session.exec(
                update(SummaryRun)
                .where(col(SummaryRun.status) == "running", col(SummaryRun.dry_run).is_(False))
                .values(status="abandoned", finished_at=utcnow())
            )


def _count_tokens(prompt: int, completion: int, cost: float) -> None:
    metrics.SUMMARY_TOKENS.labels("prompt").inc(prompt)
    metrics.SUMMARY_TOKENS.labels("completion").inc(completion)
    metrics.SUMMARY_COST.inc(cost)
