"""JSON logs: the real CLI server writes one JSON object per line, each request's lines carry its
`X-Request-ID`, and every request gets an access line."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from memory_server.app import create_app
from memory_server.config import Settings
from memory_server.logs import REQUEST_ID, JsonFormatter, TextFormatter
from tests.conftest import ADMIN_KEY, free_port, release_chroma_clients
from tests.processes import ServerProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line the server wrote (stdout and stderr), each of which must be one JSON object."""
    entries = []
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)  # fails the test on any line that is not JSON
            assert isinstance(entry, dict)
            entries.append(entry)
    return entries


def test_cli_server_logs_json_with_the_request_id_it_echoes(tmp_path: Path) -> None:
    server = ServerProcess.configured(tmp_path / "var", log_level="info", log_format="json").start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            agent = client.post("/v1/agents", json={"name": "logger"}, headers=ADMIN).json()
            key = client.post(f"/v1/agents/{agent['id']}/keys", json={}, headers=ADMIN).json()
            as_agent = {"Authorization": f"Bearer {key['key']}"}
            given = client.post(
                "/v1/memories",
                json={"kind": "note", "content": "The launch moved to Thursday"},
                headers=as_agent | {"X-Request-ID": "trace-7f3a-given"},
            )
            generated = client.post("/v1/search", json={"query": "launch"}, headers=as_agent)
            unauthenticated = client.get("/v1/memories")
        assert given.status_code == 201 and generated.status_code == 200
        assert given.headers["X-Request-ID"] == "trace-7f3a-given"
        generated_id = generated.headers["X-Request-ID"]
        assert generated_id.startswith("req_")
        server.send_signal()
        assert server.wait() == 0
    finally:
        server.kill()

    entries = _lines(server.log)
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    access = {e["request_id"]: e for e in entries if e["logger"] == "memory_server.access"}

    line = access["trace-7f3a-given"]
    assert line["method"] == "POST" and line["route"] == "/v1/memories"
    assert line["status"] == 201 and line["agent_id"] == agent["id"]
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["level"] == "info"

    line = access[generated_id]
    assert (line["route"], line["status"], line["agent_id"]) == ("/v1/search", 200, agent["id"])

    line = access[unauthenticated.headers["X-Request-ID"]]
    assert line["status"] == 401 and "agent_id" not in line

    loggers = {e["logger"] for e in entries}
    assert "uvicorn.error" in loggers  # uvicorn's own lines are JSON too
    assert not any(e["logger"] == "uvicorn.access" for e in entries)  # replaced by ours
    assert entries[-1]["message"] == "shut down"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Root-logger output formatted as JSON at emit time (in the emitting thread)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_lines_logged_inside_a_handler_carry_the_request_id_even_on_a_crash(
    tmp_path: Path, captured: io.StringIO
) -> None:
    settings = Settings(data_dir=tmp_path / "var", admin_key=ADMIN_KEY, port=free_port())
    app = create_app(settings)

    def broken() -> None:  # a sync handler: runs in a worker thread
        logging.getLogger("memory_server.test").warning("about to fail")
        raise RuntimeError("boom")

    app.add_api_route("/broken", broken)
    server = uvicorn.Server(uvicorn.Config(app, port=settings.port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        response = httpx.get(
            f"http://127.0.0.1:{settings.port}/broken", headers={"X-Request-ID": "crash-1"}
        )
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        release_chroma_clients()
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.headers["X-Request-ID"] == "crash-1"

    entries = [json.loads(line) for line in captured.getvalue().splitlines()]
    warned = next(e for e in entries if e["message"] == "about to fail")
    assert warned["request_id"] == "crash-1" and warned["level"] == "warning"
    crashed = next(e for e in entries if e["message"] == "unhandled error")
    assert crashed["request_id"] == "crash-1" and "RuntimeError: boom" in crashed["exception"]
    access = next(e for e in entries if e["logger"] == "memory_server.access")
    assert (access["request_id"], access["route"], access["status"]) == ("crash-1", "/broken", 500)


def test_text_format_appends_the_request_id() -> None:
    record = logging.LogRecord("memory_server.x", logging.INFO, "", 0, "hello %s", ("you",), None)
    assert TextFormatter().format(record).endswith("memory_server.x: hello you")
    token = REQUEST_ID.set("req_abc")
    try:
        assert TextFormatter().format(record).endswith("hello you [req_abc]")
        assert json.loads(JsonFormatter().format(record))["request_id"] == "req_abc"
    finally:
        REQUEST_ID.reset(token)
