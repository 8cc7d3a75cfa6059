"""`GET /metrics`: Prometheus text exposition (only when `MEMORY_METRICS_ENABLED`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .. import metrics
from .deps import RuntimeDep

router = APIRouter(tags=["health"])


# Left out of the OpenAPI document: Prometheus reads it, not API clients or the SDK.
@router.get("/metrics", response_class=Response, include_in_schema=False)
def prometheus_metrics(runtime: RuntimeDep) -> Response:
    """Request latency, search and context stages, summarizer, index drift, memory counts.

    Unauthenticated, like `/healthz`: keep the port off the public internet, or turn it off with
    `MEMORY_METRICS_ENABLED=false`. Counts carry no memory content and no ids.
    """
    return Response(metrics.exposition(runtime.store_metrics), media_type=CONTENT_TYPE_LATEST)
