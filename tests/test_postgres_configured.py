"""CI must exercise PostgreSQL: a configured but unreachable server fails here, loudly."""

from __future__ import annotations

import os

import pytest

from tests.conftest import POSTGRES_ENV


def test_postgres_is_reachable_when_configured() -> None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI must set {POSTGRES_ENV} so the suite runs on PostgreSQL too")
        pytest.skip(f"{POSTGRES_ENV} is not set")
    import psycopg

    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=5) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError as exc:
        pytest.fail(f"{POSTGRES_ENV}={url} is set but PostgreSQL is unreachable: {exc}")
