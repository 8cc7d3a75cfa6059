"""`memory-server serve` as a child process, as an operator runs it: real signals, real stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for `settings` (data dir, database, port, admin key) plus `extra`."""
    env = os.environ | {
        "MEMORY_DATA_DIR": str(settings.data_dir),
        "MEMORY_ADMIN_KEY": ADMIN_KEY,
        "MEMORY_PORT": str(settings.port),
        "MEMORY_LOG_LEVEL": "info",
        "MEMORY_LOG_FORMAT": "json",
    }
    if settings.database_url:
        env["MEMORY_DATABASE_URL"] = settings.database_url
    return env | extra


class ServeProcess:
    """Starts the CLI server, waits for it, and stops it with a signal; stderr goes to a file."""

    def __init__(self, settings: Settings, env: dict[str, str], stderr: Path):
        self.url = f"http://127.0.0.1:{settings.port}"
        self.stderr = stderr
        self._env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        with self.stderr.open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memory_server.cli", "serve"],
                env=self._env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited: {self.stderr.read_text()}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None
