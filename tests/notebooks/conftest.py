"""The notebooks run against a SQLite server only: the API tests cover PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url() -> None:
    """Overrides the root fixture's SQLite/PostgreSQL pair with SQLite alone."""
    return None
