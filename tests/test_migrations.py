from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

import memory_server.models  # noqa: F401  (registers the tables)
from memory_server.db import Database
from memory_server.migrations import MIGRATIONS, migrate


def test_migrations_build_the_schema_the_models_describe(database_url, tmp_path) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        applied = migrate(db.engine)
        assert applied == [m.__name__ for m in MIGRATIONS]
        assert migrate(db.engine) == []  # a second start applies nothing
        inspector = sa.inspect(db.engine)
        # columns the database derives and keeps itself, outside the models
        derived = {} if db.is_sqlite else {"memory": {"content_tsv"}}
        for table in SQLModel.metadata.sorted_tables:
            columns = {c["name"]: c for c in inspector.get_columns(table.name)}
            expected = {c.name for c in table.columns} | derived.get(table.name, set())
            assert set(columns) == expected, table.name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, (
                    table.name,
                    column.name,
                )
        catalog = (
            "SELECT name FROM sqlite_master WHERE type = 'index'"
            if db.is_sqlite
            else "SELECT indexname FROM pg_indexes WHERE tablename = 'memory'"
        )
        with db.engine.connect() as connection:
            indexes = set(connection.execute(sa.text(catalog)).scalars())
        assert {"uq_memory_active_key", "uq_memory_active_content"} <= indexes
    finally:
        db.dispose()
