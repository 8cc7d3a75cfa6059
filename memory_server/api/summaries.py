"""Summaries: run the summarizer (or preview it), and read a run's record."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from summarizer.runner import RunReport

from ..models import SummaryRun
from ..schemas import (
    SummaryFailure,
    SummaryGroupPlan,
    SummaryRunPublic,
    SummaryRunRequest,
)
from .deps import AuditDep, IdempotencyKey, PrincipalDep, RuntimeDep, error_responses, respond_once

router = APIRouter(prefix="/v1/summaries", tags=["summaries"], responses=error_responses(404, 409))


def run_public(run: SummaryRun, report: RunReport | None = None) -> SummaryRunPublic:
    return SummaryRunPublic(
        **run.model_dump(exclude={"failures"}),
        failures=[SummaryFailure.model_validate(f) for f in run.failures],
        summary_ids=report.summary_ids if report else [],
        plan=[
            SummaryGroupPlan(
                namespace_id=g.namespace_id,
                user_id=g.user_id,
                thread_id=g.thread_id,
                source_ids=g.source_ids,
                source_tokens=g.source_tokens,
            )
            for g in (report.plan if report else [])
        ],
    )


@router.post("/run", response_model=SummaryRunPublic)
def run_summarizer(
    body: SummaryRunRequest,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Condense the namespace's old memories into summaries now, and report what was done.

    Needs write access to the namespace. With `dry_run`, lists the groups it would condense and
    writes nothing (not even the run's record). 409 while another run is in progress.
    """

    def work() -> tuple[int, SummaryRunPublic]:
        report = runtime.summarizer.run_for(principal, body.namespace_id, dry_run=body.dry_run)
        if body.namespace_id is not None and not body.dry_run:
            audit.wrote("summarize", [body.namespace_id])
        return 200, run_public(report.run, report)

    return respond_once(runtime, principal, request, idempotency_key, body, work)


@router.get("/runs/{run_id}", response_model=SummaryRunPublic)
def get_summary_run(run_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> SummaryRunPublic:
    """A run's record, for callers who may read its namespace."""
    return run_public(runtime.summarizer.get_run(principal, run_id))
