"""docs/deployment.md stays true: its scale-out walk-through runs as written, on free ports and a
fresh PostgreSQL database (Chroma server, two server processes, an outage, reconcile)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

DOC = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def _walkthrough() -> str:
    text = DOC.read_text()
    block = text.split("<!-- deployment:start -->")[1].split("<!-- deployment:end -->")[0]
    return block.strip().removeprefix("```bash").removesuffix("```")


def _set(script: str, name: str, value: str) -> str:
    """Replace the walk-through's `NAME=...` line (the lines a reader sets for their machine)."""
    line = re.compile(rf"^{name}=.*$", re.MULTILINE)
    assert line.search(script), f"the walk-through no longer sets {name}"
    return line.sub(f"{name}={value}", script, count=1)


def test_deployment_walkthrough_runs_as_written(tmp_path: Path, database_url: str | None) -> None:
    if database_url is None:
        pytest.skip("scale-out mode runs on PostgreSQL")
    for tool in ("curl", "jq", "psql", "bash"):
        assert shutil.which(tool), f"{tool} is needed to run the deployment walk-through"
    server, _, name = database_url.removeprefix("postgresql+psycopg://").rpartition("/")
    database = f"{name}_doc"  # the fixture's fresh database is dropped, this one too (below)
    script = _walkthrough()
    for variable, value in {
        "DEPLOY": str(tmp_path / "deploy"),
        "PG": server,
        "DB": database,
        "CHROMA_PORT": str(free_port()),
        "PORT_A": str(free_port()),
        "PORT_B": str(free_port()),
    }.items():
        script = _set(script, variable, value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMORY_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # chroma, memory-server
    shell = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its background servers share its process group
    )
    try:
        stdout, stderr = shell.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        logs = {log.name: log.read_text()[-1500:] for log in (tmp_path / "deploy").glob("*.log")}
        pytest.fail(f"the walk-through did not finish in 240 s; last log lines: {logs}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGKILL)  # whatever the script left running
        subprocess.run(
            [
                "psql",
                f"postgresql://{server}/postgres",
                "-qc",
                f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            ],
            check=False,
            capture_output=True,
        )
    assert shell.returncode == 0, stderr[-3000:]
    assert stdout.strip().splitlines() == [
        '{"sql":"ok","vector_store":"ok"}',
        "The west warehouse closes at 6 pm",
        "true",
        "store_unavailable",
        "503",
        "1",
        "201",
        "2 memories in SQL, 2 in the vector index; repaired: 0 added, 0 refreshed, "
        "0 relabeled, 0 removed; 0 embedded",
    ]
