"""`memory-server` command line: serve, reindex, reconcile, migrate, mcp."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .config import Settings
from .logs import adopt_library_loggers, configure_logging

if TYPE_CHECKING:
    from .runtime import Runtime

# The server's parts (`.runtime`: the model, the stores) are imported by the commands that use
# them, so that `memory-server mcp`, a client of a running server, starts without them.

log = logging.getLogger("memory_server.cli")  # not "__main__" under `python -m`


def freeze_startup_heap() -> int:
    """Exempt what startup built (the model, Chroma, the app: ~900k objects) from the garbage
    collector's full passes, which would otherwise walk all of it while holding the GIL: 540 ms
    per pass on the benchmark's server, a stall of every request in flight. Collect first so no
    garbage is kept forever. Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MEMORY_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SystemExit(f"memory-server: invalid settings: {problems}") from None


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and exit 0.

    On the signal the server stops accepting connections, lets in-flight requests finish (for up
    to `MEMORY_SHUTDOWN_TIMEOUT_SECONDS`), tells a summarizer run to stop after its current group,
    waits for the background jobs and closes the stores.
    """
    import uvicorn

    from .app import create_app
    from .runtime import StartupError, build_runtime

    try:
        runtime = build_runtime(settings)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    adopt_library_loggers()  # litellm is loaded by now and has set up its own handlers
    runtime.start_jobs()
    app = create_app(settings, runtime)
    freeze_startup_heap()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's own lines go through our handler (JSON or text)
        access_log=False,  # the app writes its own access line, with route and request id
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
    )
    server = _server_class()(config, runtime)
    # uvicorn re-raises the signal it caught once it has shut down; this handler receives it,
    # so that the stores are closed below and the process exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _signal_after_shutdown)
    log.info("serving on http://%s:%d (docs at /docs)", settings.host, settings.port)
    try:
        server.run()
    finally:
        runtime.close()
        log.info("shut down")


def _server_class() -> type[Any]:
    import uvicorn

    from .serving import Server as StreamEndingServer

    class Server(StreamEndingServer):
        """Our uvicorn server (it ends event streams when it stops), which also tells the runtime
        as soon as shutdown begins."""

        def __init__(self, config: uvicorn.Config, runtime: Runtime):
            super().__init__(config)
            self._runtime = runtime

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if not self.should_exit:
                log.info("signal %d: finishing in-flight requests, then stopping", sig)
            self._runtime.begin_shutdown()
            super().handle_exit(sig, frame)

    return Server


def _signal_after_shutdown(_sig: int, _frame: FrameType | None) -> None:
    """Nothing left to do: the server has already shut down gracefully."""


def reindex(settings: Settings) -> None:
    from .runtime import StartupError, build_runtime

    try:
        runtime = build_runtime(settings, reconcile=False, maintenance=True)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    try:
        report = runtime.index.rebuild()
        print(
            f"reindexed {report.added} memories from SQL into the vector index "
            f"({report.embedded} embedded, the rest from their stored vectors)"
        )
    finally:
        runtime.close()


def reconcile(settings: Settings) -> None:
    from .runtime import StartupError, build_runtime

    try:
        runtime = build_runtime(settings, reconcile=False, maintenance=True)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    try:
        report = runtime.index.reconcile_exclusive()
    finally:
        runtime.close()
    if report.skipped:
        print("another process is reconciling the vector index right now; nothing done")
    elif report.rebuilt:
        print(
            f"rebuilt the vector index: {report.added} memories "
            f"({report.embedded} embedded, the rest from their stored vectors)"
        )
    else:
        print(
            f"{report.sql_count} memories in SQL, {report.index_count} in the vector index; "
            f"repaired: {report.added} added, {report.refreshed} refreshed, "
            f"{report.relabeled} relabeled, {report.removed} removed; {report.embedded} embedded"
        )


def migrate_only(settings: Settings) -> None:
    from .db import Database
    from .migrations import migrate

    db = Database(settings.resolved_database_url)
    try:
        applied = migrate(db.engine)
    finally:
        db.dispose()
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def mcp_stdio() -> None:
    """Serve the MCP tools on stdin/stdout for a client that launched this process, each call
    forwarded through the Python SDK to the server at `MEMORY_URL` (default
    http://127.0.0.1:8080) as the agent whose key is in `MEMORY_API_KEY`. Logs go to stderr:
    stdout carries the protocol."""
    if not os.environ.get("MEMORY_API_KEY"):
        raise SystemExit(
            "memory-server mcp: set MEMORY_API_KEY to an agent's API key, and MEMORY_URL to the "
            "server (default http://127.0.0.1:8080)"
        )
    try:
        from memory_client import AsyncMemoryClient
    except ImportError:
        raise SystemExit(
            "memory-server mcp: needs the Python SDK (`make install` installs it; or "
            "`pip install ./clients/python`)"
        ) from None
    import anyio

    from .mcp.stdio import serve_stdio

    configure_logging(os.environ.get("MEMORY_LOG_LEVEL", "warning"), "text")

    async def run() -> None:
        async with AsyncMemoryClient() as client:
            await serve_stdio(client)

    anyio.run(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memory-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server (MEMORY_HOST:MEMORY_PORT)")
    commands.add_parser("reindex", help="rebuild the vector index from SQL")
    commands.add_parser(
        "reconcile", help="compare the vector index with SQL and repair what differs"
    )
    commands.add_parser("migrate", help="apply pending SQL migrations and exit")
    commands.add_parser(
        "mcp",
        help="speak MCP over stdio, forwarding each tool call to the server at MEMORY_URL "
        "with the API key in MEMORY_API_KEY",
    )
    args = parser.parse_args(argv)
    if args.command == "mcp":  # a client of a running server: no server settings
        mcp_stdio()
        return
    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    commands_by_name = {
        "serve": serve,
        "reindex": reindex,
        "reconcile": reconcile,
        "migrate": migrate_only,
    }
    commands_by_name[args.command](settings)


if __name__ == "__main__":
    main(sys.argv[1:])
