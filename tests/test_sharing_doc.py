"""The README's two-agent sharing walk-through with curl runs against a live server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from memory_server.config import Settings
from tests.conftest import LiveServer

DOC = Path(__file__).resolve().parent.parent / "README.md"


def _walkthrough() -> str:
    text = DOC.read_text()
    block = text.split("<!-- sharing-walkthrough:start -->")[1].split(
        "<!-- sharing-walkthrough:end -->"
    )[0]
    return block.strip().removeprefix("```bash").removesuffix("```")


def test_sharing_walkthrough_runs_as_written(server: LiveServer, settings: Settings) -> None:
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"{tool} is needed to run the sharing walk-through"
    (settings.data_dir / "admin.key").write_text(settings.admin_key or "")
    script = _walkthrough().replace("http://127.0.0.1:8080", server.url)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=settings.data_dir.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    audit = ["write create 1", "read list 1", "read search 1"]
    assert done.stdout.strip().splitlines() == [
        "404",
        "default owner",
        "project-apollo read",
        "The Apollo demo for the customer is on March 3",
        "1",
        "403",
        "write",
        "true",
        *audit,
        "write",
        "404",
    ]
