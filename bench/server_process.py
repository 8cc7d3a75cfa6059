"""`memory-server serve` as a child process for benchmarks: started, timed to ready, killed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.latency import ADMIN_KEY, free_port


class Server:
    """`memory-server serve` as a child process on one port and one set of stores."""

    def __init__(self, data_dir: Path, database_url: str | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / f"server-{self.port}.log"
        self._env = {k: v for k, v in os.environ.items() if k != "MEMORY_DATABASE_URL"}
        self._env |= {
            "MEMORY_DATA_DIR": str(data_dir),
            "MEMORY_ADMIN_KEY": ADMIN_KEY,
            "MEMORY_PORT": str(self.port),
            "MEMORY_LOG_LEVEL": "warning",
            "MEMORY_RATE_LIMIT_PER_MINUTE": "0",  # benchmarks' checks read far more than 600/min
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "ANONYMIZED_TELEMETRY": "False",
        }
        if database_url:
            self._env["MEMORY_DATABASE_URL"] = database_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> float:
        """Start the process and wait until `/readyz` answers 200; the seconds that took."""
        started = time.perf_counter()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "memory_server.cli", "serve"],
                env=self._env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited during startup:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"the server did not become ready:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=120)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
