from __future__ import annotations

import gc
import os
import stat
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from pydantic import ValidationError

from memory_server.auth import ensure_admin_key
from memory_server.cli import freeze_startup_heap
from memory_server.config import Settings


def _run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_")}
    return subprocess.run(
        [sys.executable, "-m", "memory_server.cli", *args],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MEMORY_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == Path("./var")
    assert settings.resolved_database_url == f"sqlite:///{Path('var/memory.db').resolve()}"
    assert settings.vector_store == "chroma-embedded"
    assert settings.embedding_model == "all-MiniLM-L6-v2"
    assert settings.embedding_runtime == "auto"


def test_settings_come_from_memory_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORY_PORT", "9999")
    monkeypatch.setenv("MEMORY_DATABASE_URL", "postgresql+psycopg://u@db:5432/mem")
    settings = Settings()
    assert settings.port == 9999
    assert settings.resolved_database_url == "postgresql+psycopg://u@db:5432/mem"


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MEMORY_PORT": "not-a-port"}, "MEMORY_PORT"),
        ({"MEMORY_DATABASE_URL": "mysql://x"}, "MEMORY_DATABASE_URL"),
        ({"MEMORY_ADMIN_KEY": "short"}, "MEMORY_ADMIN_KEY"),
        ({"MEMORY_EMBEDDING_MODEL": "/no/such/model"}, "MEMORY_EMBEDDING_MODEL"),
        ({"MEMORY_VECTOR_STORE": "faiss"}, "MEMORY_VECTOR_STORE"),
        ({"MEMORY_EMBEDDING_RUNTIME": "tensorrt"}, "MEMORY_EMBEDDING_RUNTIME"),
    ],
)
def test_invalid_settings_stop_startup_with_one_clear_line(
    tmp_path: Path, env: dict[str, str], mentions: str
) -> None:
    done = _run_cli("serve", MEMORY_DATA_DIR=str(tmp_path), **env)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("memory-server: invalid settings:") and mentions in lines[0]


def test_unreachable_database_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    done = _run_cli(
        "serve",
        MEMORY_DATA_DIR=str(tmp_path),
        MEMORY_DATABASE_URL="postgresql+psycopg://nobody:secret@127.0.0.1:1/none",
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("memory-server: cannot start: database")
    assert "secret" not in done.stderr


def test_admin_key_is_generated_once_with_private_permissions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = ensure_admin_key(settings)
    path = settings.admin_key_path
    assert path.read_text().strip() == key and len(key) > 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_admin_key(settings) == key
    assert ensure_admin_key(Settings(data_dir=tmp_path / "data", admin_key="x" * 20)) == "x" * 20


def test_settings_are_immutable() -> None:
    settings = Settings(admin_key="y" * 16)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_read_concurrency_defaults_to_the_cpus() -> None:
    assert Settings().resolved_read_concurrency == (os.cpu_count() or 1)
    assert Settings(read_concurrency=3).resolved_read_concurrency == 3
    with pytest.raises(ValidationError):
        Settings(read_concurrency=0)


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_serving_freezes_what_startup_built_after_collecting_its_garbage() -> None:
    garbage = weakref.ref(_Node())
    kept = [object()]  # a container the collector tracks, alive through the freeze
    try:
        assert freeze_startup_heap() > 0
        assert garbage() is None  # collected first, not kept forever
        # frozen: no longer in any generation a collection walks
        assert not any(tracked is kept for tracked in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(tracked is kept for tracked in gc.get_objects())
