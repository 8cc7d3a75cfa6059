"""The README stays true: its curl walk-through runs, and its configuration table is complete."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from memory_server.config import Settings
from tests.conftest import LiveServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _walkthrough() -> str:
    text = README.read_text()
    block = text.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    return block.strip().removeprefix("```bash").removesuffix("```")


def test_readme_walkthrough_runs_as_written(server: LiveServer, settings: Settings) -> None:
    if settings.database_url:
        pytest.skip("the walk-through is for the embedded default")
    for tool in ("curl", "jq", "bash"):
        assert shutil.which(tool), f"{tool} is needed to run the README walk-through"
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
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith('"mem_') and lines[1] == "2"
    assert lines[2].endswith("Dana prefers email over phone calls")
    assert len(lines) == 4


def test_readme_configuration_table_lists_every_setting() -> None:
    documented = set(re.findall(r"`(MEMORY_[A-Z_]+)`", README.read_text()))
    settings = {f"MEMORY_{name.upper()}" for name in Settings.model_fields}
    assert settings <= documented, settings - documented
