"""`memory-server` command line: serve, reindex, reconcile, migrate."""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from .config import Settings
from .runtime import StartupError, build_runtime


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MEMORY_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SystemExit(f"memory-server: invalid settings: {problems}") from None


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings) -> None:
    import uvicorn

    from .app import create_app
    from .serving import Server

    try:
        runtime = build_runtime(settings)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    runtime.start_jobs()
    app = create_app(settings, runtime)
    logging.getLogger(__name__).info(
        "serving on http://%s:%d (docs at /docs)", settings.host, settings.port
    )
    try:
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_level=settings.log_level
        )
        Server(config).run()
    finally:
        runtime.close()


def reindex(settings: Settings) -> None:
    try:
        runtime = build_runtime(settings, reconcile=False)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    try:
        report = runtime.index.rebuild()
        print(f"reindexed {report.added} memories from SQL into the vector index")
    finally:
        runtime.close()


def reconcile(settings: Settings) -> None:
    try:
        runtime = build_runtime(settings, reconcile=False)
    except StartupError as exc:
        raise SystemExit(f"memory-server: cannot start: {exc}") from None
    try:
        report = runtime.index.reconcile_exclusive()
    finally:
        runtime.close()
    if report.skipped:
        print("another process is reconciling the vector index right now; nothing done")
    elif report.rebuilt:
        print(f"rebuilt the vector index: {report.added} memories embedded")
    else:
        print(
            f"{report.sql_count} memories in SQL, {report.index_count} in the vector index; "
            f"repaired: {report.added} added, {report.refreshed} re-embedded, "
            f"{report.relabeled} relabeled, {report.removed} removed"
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memory-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP server (MEMORY_HOST:MEMORY_PORT)")
    commands.add_parser("reindex", help="rebuild the vector index from SQL")
    commands.add_parser(
        "reconcile", help="compare the vector index with SQL and repair what differs"
    )
    commands.add_parser("migrate", help="apply pending SQL migrations and exit")
    args = parser.parse_args(argv)
    settings = _settings()
    _configure_logging(settings.log_level)
    commands_by_name = {
        "serve": serve,
        "reindex": reindex,
        "reconcile": reconcile,
        "migrate": migrate_only,
    }
    commands_by_name[args.command](settings)


if __name__ == "__main__":
    main(sys.argv[1:])
