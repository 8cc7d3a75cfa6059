"""The floor over HTTP: the server's own app and HTTP stack, with two routes that do only the
floor's work, so that `bench.latency` can tell what HTTP costs from what the context call does.

    python -m bench.floor_server     # configured by the same MEMORY_* variables as the server

`POST /bench/floor` takes `{"query", "namespace_id"}`, checks the caller's key as every API route
does, embeds the query through the server's query embedder and asks the namespace's vectors for
its 60 nearest neighbours (as the in-process floor does); it answers their ids. `POST
/bench/floor-open` does the same without the key check. Nothing else of a context call runs: no
SQL beyond the key check, no ranking, no packing. Started by `bench.latency`, never by the server.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import json

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from memory_server.api.deps import PrincipalDep, RuntimeDep, run_read
from memory_server.app import create_app
from memory_server.cli import freeze_startup_heap
from memory_server.config import Settings
from memory_server.runtime import Runtime, build_runtime

NEIGHBOURS = 60  # as the in-process floor asks


class FloorQuery(BaseModel):
    query: str
    namespace_id: str


async def nearest(runtime: Runtime, body: FloorQuery, request: Request) -> Response:
    """The query embedded as the context route embeds it, then the bare vector query."""
    with runtime.queries.embedding(body.query) as embedding:

        def work() -> Response:
            hits = runtime.vectors.query(embedding.result(), NEIGHBOURS, [body.namespace_id])
            ids = [hit.id for hit in hits]
            return Response(json.dumps({"ids": ids}), media_type="application/json")

        return await run_read(request, work)


def floor_app(settings: Settings, runtime: Runtime) -> FastAPI:
    """The server's app with the two floor routes added."""
    app = create_app(settings, runtime)

    @app.post("/bench/floor")
    async def floor(
        body: FloorQuery, request: Request, runtime: RuntimeDep, principal: PrincipalDep
    ) -> Response:
        return await nearest(runtime, body, request)

    @app.post("/bench/floor-open")
    async def floor_open(body: FloorQuery, request: Request, runtime: RuntimeDep) -> Response:
        return await nearest(runtime, body, request)

    return app


def main() -> None:
    import uvicorn

    settings = Settings()
    runtime = build_runtime(settings)
    app = floor_app(settings, runtime)
    freeze_startup_heap()  # as `memory-server serve` does
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
