"""Schemathesis fuzzes every operation of /openapi.json, once with an agent's key and once with the
admin key, over real HTTP on loopback, on SQLite and on PostgreSQL (when `MEMORY_TEST_POSTGRES_URL`
is set). The checks: no 5xx, and every response's status code and body conform to the schema.
Generation is derandomized and bounded, so a run repeats the same requests and takes minutes.

The schema is loaded when the module is collected (schemathesis makes one test per operation
from it), from the app `create_app` builds; `test_served_schema_is_the_fuzzed_one` checks that the
live server serves that same document at /openapi.json. (`schemathesis.pytest.from_fixture`, which
loads the schema from a live server, fails on pytest 9.2: it sets `Function._nodeid`, which pytest
no longer has.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from memory_server.app import create_app
from memory_server.config import Settings
from tests.conftest import (
    ADMIN_KEY,
    POSTGRES_ENV,
    LiveServer,
    postgres_database,
    server_settings,
    serving,
)

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

# POST /v1/import takes a JSONL export as `application/x-ndjson`, a string in the schema: sent as
# the generated text, as `text/plain` is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def _openapi() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data_dir:
        return create_app(Settings(data_dir=data_dir, admin_key=ADMIN_KEY)).openapi()


def _schema(max_examples: int) -> schemathesis.BaseSchema:
    """The fuzzer's view of /openapi.json: valid and invalid inputs, `max_examples` per operation
    in the fuzzing phase (the examples and coverage phases add a bounded set of their own, derived
    from the schema), the same ones on every run."""
    config = schemathesis.Config.from_dict(
        {
            "request-timeout": 60,
            "generation": {"mode": "all", "max-examples": max_examples, "deterministic": True},
        }
    )
    schema = schemathesis.openapi.from_dict(OPENAPI, config=config)
    # The event stream is left out: it never ends (heartbeats until the client leaves), so a plain
    # HTTP call on it never returns. tests/api/test_events.py covers it.
    return schema.exclude(method="GET", path="/v1/events/stream")


OPENAPI = _openapi()
# PostgreSQL gets fewer examples: it repeats the SQLite run on another engine, where
# engine-specific failures (types, encodings, limits) show up early.
SQLITE_SCHEMA = _schema(max_examples=25)
POSTGRES_SCHEMA = _schema(max_examples=10)


def _seed(client: httpx.Client) -> None:
    """A few memories of every shape, so lists, search, context and export return real records."""
    for body in (
        {"content": "Maria is allergic to peanuts", "kind": "fact", "user_id": "maria"},
        {"content": "Prefers a casual tone", "kind": "preference", "key": "user.tone"},
        {"content": "Prefers a formal tone", "kind": "preference", "key": "user.tone"},
        {"content": "hello", "kind": "message", "role": "user", "thread_id": "t1"},
        {"content": "a note", "kind": "note", "tags": ["a", "b"], "metadata": {"x": [1, None]}},
    ):
        response = client.post("/v1/memories", json=body)
        assert response.status_code in (200, 201), response.text


@dataclass
class Target:
    """A live server and the keys the fuzzer calls it with, by role."""

    url: str
    keys: dict[str, str]


@contextlib.contextmanager
def _target(data_dir: Path, database_url: str | None) -> Iterator[Target]:
    """A live server on `database_url`, holding one agent whose namespace is seeded. Without the
    per-key rate limit: the fuzzer sends far more than 600 requests a minute with one key, and 429s
    would hide what it is looking for."""
    settings = server_settings(data_dir, database_url, rate_limit_per_minute=0)
    with serving(settings) as live:
        yield Target(url=live.url, keys={"agent": _seeded_agent_key(live), "admin": ADMIN_KEY})


def _seeded_agent_key(live: LiveServer) -> str:
    with live.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": f"fuzz-{secrets.token_hex(3)}"})
        assert agent.status_code == 201, agent.text
        key = admin.post(f"/v1/agents/{agent.json()['id']}/keys", json={})
        assert key.status_code == 201, key.text
    with live.client(key.json()["key"]) as client:
        _seed(client)
    return str(key.json()["key"])


@pytest.fixture(scope="module")
def sqlite_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with _target(tmp_path_factory.mktemp("fuzz-sqlite"), None) as target:
        yield target


@pytest.fixture(scope="module")
def postgres_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with (
        postgres_database(base) as url,
        _target(tmp_path_factory.mktemp("fuzz-postgres"), url) as target,
    ):
        yield target


@pytest.fixture(scope="module", params=["agent", "admin"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Headers that frame the HTTP message. A generated value (`Content-Length: Km`) makes the request
# unparsable: uvicorn answers 400 "Invalid HTTP request received." before the app sees it, so it
# tests uvicorn's parser, not this API. The HTTP client sets them from the body it sends.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "host"}


def _call_and_validate(case: schemathesis.Case, target: Target, role: str) -> None:
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in FRAMING_HEADERS}
    case.call_and_validate(
        base_url=target.url,
        headers={"Authorization": f"Bearer {target.keys[role]}"},
        checks=CHECKS,
    )


FUZZ_SETTINGS = settings(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)


@SQLITE_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_sqlite(case: schemathesis.Case, sqlite_target: Target, role: str) -> None:
    _call_and_validate(case, sqlite_target, role)


@POSTGRES_SCHEMA.parametrize()
@FUZZ_SETTINGS
def test_postgresql(case: schemathesis.Case, postgres_target: Target, role: str) -> None:
    _call_and_validate(case, postgres_target, role)


def test_served_schema_is_the_fuzzed_one(sqlite_target: Target) -> None:
    response = httpx.get(f"{sqlite_target.url}/openapi.json", timeout=60)
    assert response.status_code == 200
    assert response.json() == OPENAPI
