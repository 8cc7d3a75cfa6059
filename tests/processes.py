"""Real processes for tests: a `chroma run` server and `memory-server serve`, each killable."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY, free_port


class ChromaServer:
    """`chroma run` (installed by the chromadb package) on a free port, over one data path.

    `kill()` then `start()` brings it back on the same port and path, as an operator would."""

    def __init__(self, path: Path, port: int | None = None):
        self.path = path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ChromaServer:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
        assert chroma, "the chromadb package installs the `chroma` command"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        log = (self.path.parent / f"chroma-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [chroma, "run", "--path", str(self.path), "--port", str(self.port)],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            assert self.process.poll() is None, "chroma exited during startup"
            assert time.monotonic() < deadline, "chroma did not start"
            time.sleep(0.1)
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class ServerProcess:
    """`memory-server serve` as a child process (`python -m memory_server.cli serve`)."""

    def __init__(self, env: dict[str, str], port: int, log: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._env = env
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def configured(cls, data_dir: Path, **settings: str) -> ServerProcess:
        """A server on a free port with `data_dir`, the test admin key and `MEMORY_*` settings
        given by lowercase name (`database_url=...`)."""
        port = free_port()
        env = os.environ | {
            "MEMORY_DATA_DIR": str(data_dir),
            "MEMORY_ADMIN_KEY": ADMIN_KEY,
            "MEMORY_PORT": str(port),
            "MEMORY_LOG_LEVEL": "warning",
        }
        env |= {f"MEMORY_{name.upper()}": value for name, value in settings.items()}
        return cls(env, port, data_dir.parent / f"server-{port}.log")

    def launch(self) -> ServerProcess:
        """Start the process without waiting (start several, then `wait_ready` on each)."""
        self._log.parent.mkdir(parents=True, exist_ok=True)
        with self._log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memory_server.cli", "serve"],
                env=self._env,
                stdout=log,
                stderr=log,
            )
        return self

    def wait_ready(self, timeout: float = 180) -> ServerProcess:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited during startup: {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log_tail()}")

    def start(self) -> ServerProcess:
        return self.launch().wait_ready()

    def log_tail(self, lines: int = 20) -> str:
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    @property
    def log(self) -> Path:
        """Where the process writes its stdout and stderr."""
        return self._log

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` without waiting (see `wait`)."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the process to end; its exit code. It may be started again afterwards."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        self.process = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def client(self, key: str = ADMIN_KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
