"""The notebooks, run top to bottom in a real kernel against a real server, as a user would.

Each runs on an empty server (the `server` fixture, SQLite), in a kernel on this venv's Python with
`MEMORY_URL` and `MEMORY_API_KEY` set (the admin key, as `make notebooks` passes it), and must not
fail in any cell. A check cell appended to each then asserts on what it computed, and the tests
look at its outputs: the charts are images, the tables have the columns they promise.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.conftest import ADMIN_KEY, LiveServer

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["explore_memories", "summaries_and_provenance", "memory_map"]
KERNEL = "memory-server-tests"
# What a notebook may not import: the server's own code, or anything that reaches its stores or
# its HTTP API other than through the SDK.
SERVER_SIDE = {
    "memory_server", "summarizer", "bench", "tests", "httpx", "requests", "urllib", "sqlite3",
    "sqlalchemy", "sqlmodel", "psycopg", "chromadb",
}  # fmt: skip


@pytest.fixture(scope="session")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec on this interpreter, so no user-installed `python3` kernel is picked up."""
    directory = tmp_path_factory.mktemp("kernels") / KERNEL
    directory.mkdir()
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "memory-server tests",
        "language": "python",
    }
    (directory / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(directory.parent)])


Run = Callable[..., nbformat.NotebookNode]


@pytest.fixture
def run_notebook(server: LiveServer, kernel_specs: KernelSpecManager) -> Iterator[Run]:
    """Execute a notebook (plus `check`, appended as a last cell) against the live server."""
    env = {
        **os.environ,
        "MEMORY_URL": server.url,
        "MEMORY_API_KEY": ADMIN_KEY,
        "MPLBACKEND": "Agg",  # nothing may try to open a window; the notebooks plot inline
    }

    def run(name: str, check: str = "") -> nbformat.NotebookNode:
        notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        if check:
            notebook.cells.append(nbformat.v4.new_code_cell(check))
        kernel = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
        client = NotebookClient(
            notebook,
            km=kernel,
            timeout=180,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute(env=env)
        return notebook

    yield run


def _cell(notebook: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    return next(cell for cell in notebook.cells if cell.get("id") == cell_id)


def _images(cell: nbformat.NotebookNode) -> list[str]:
    return [o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {})]


def _html(cell: nbformat.NotebookNode) -> str:
    return "".join(o["data"].get("text/html", "") for o in cell.outputs if "data" in o)


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in cell.outputs if o.get("name") == "stdout")


def test_explore_memories_shows_counts_scores_drops_and_the_budget(run_notebook: Run) -> None:
    notebook = run_notebook(
        "explore_memories",
        check="""
assert NAMESPACE in set(everything.namespace)
assert len(df) == loaded.loaded and set(df.user) == {"dana", "mei", "ravi"}
assert (df.status == "superseded").sum() == 1
assert len(hits.results) == 10
assert ctx.tokens_used <= BUDGET
assert list(items.tier.unique()) == ["thread", "facts", "memories"]
ranked = items[items.tier == "memories"]
assert ranked[["score", *COMPONENTS]].notna().all().all(), ranked
assert items.content.notna().all()
assert {"over_budget", "duplicate"} <= set(dropped.reason)
assert headers > 0 and unused >= 0  # items' own tokens never exceed what the context used
assert list(tasks.status) == ["in_progress", "pending", "pending"]
served = [i.id for i in resumed.items if i.tier == "tasks"]
assert served[0] == lamp.id and set(served) <= {t.id for t in planned}
assert resumed.tokens_used <= BUDGET
""",
    )
    assert "demo-" in _html(_cell(notebook, "namespaces"))
    for column in ("score", "dense", "keyword", "recency", "importance", "frequency"):
        assert f"<th>{column}</th>" in _html(_cell(notebook, "search"))
        assert f"<th>{column}</th>" in _html(_cell(notebook, "context-items"))
    assert "<th>reason</th>" in _html(_cell(notebook, "context-dropped"))
    assert "## Relevant memories" in _stdout(_cell(notebook, "context"))
    assert len(_images(_cell(notebook, "budget-chart"))) == 1
    assert _stdout(_cell(notebook, "tasks")).startswith("## Tasks\n[in progress since")
    assert "<th>status</th>" in _html(_cell(notebook, "tasks"))


def test_summaries_condense_the_old_sessions_and_draw_a_provenance_tree(run_notebook: Run) -> None:
    notebook = run_notebook(
        "summaries_and_provenance",
        check="""
sessions = demo._read("sessions.jsonl")
old = {s["thread_id"]: len(s["messages"]) for s in sessions if s["days_ago"] * 24 > 72}
assert run.status == "completed" and not run.failures
assert set(summaries.thread) == set(old) and run.groups == len(old)
assert run.sources == sum(old.values())
assert run.tokens_after < run.tokens_before
assert (summaries["tokens after"] < summaries["tokens before"]).all()
assert tree.memory.kind == "summary" and len(tree.sources) == old[THREAD]
assert after.sum().sum() < before.sum().sum()
served = {i.kind for i in ctx.items}
reasons = {d.reason for d in ctx.dropped}
assert "summary" in served or "expanded" in reasons  # the summary, or its better sources
""",
    )
    assert "fewer" in _stdout(_cell(notebook, "run"))
    assert len(_images(_cell(notebook, "tokens-chart"))) == 1
    assert len(_images(_cell(notebook, "provenance-tree"))) == 1


def test_memory_map_places_the_query_beside_its_nearest_memories(run_notebook: Run) -> None:
    notebook = run_notebook(
        "memory_map",
        check="""
assert len(points) == len(vectors) == loaded.loaded - 1  # the superseded value is not listed
assert vectors.shape[1] == page.dimensions and query_xy.shape == (2,)
assert {"message", "fact", "preference", "note"} <= set(points.kind)
assert nearest.iloc[0].user == "mei"  # the query is about Mei's deploys
assert points.similarity.max() == nearest.similarity.iloc[0]
""",
    )
    assert "<th>similarity</th>" in _html(_cell(notebook, "nearest"))
    assert len(_images(_cell(notebook, "map"))) == 1
    assert len(_images(_cell(notebook, "by-user"))) == 1


def test_a_notebook_runs_again_on_a_server_that_has_its_data(
    run_notebook: Run, admin: httpx.Client
) -> None:
    first = run_notebook("memory_map", check="print(NAMESPACE)")
    second = run_notebook("memory_map", check="print(NAMESPACE)")
    assert _stdout(first.cells[-1]) != _stdout(second.cells[-1])  # a new namespace each run
    agents = [a["name"] for a in admin.get("/v1/agents").json()["data"]]
    assert agents.count("notebook-demo") == 1  # the demo agent is reused


# ---- the committed files ------------------------------------------------------------------------


def _code_cells(name: str) -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _imports(source: str) -> set[str]:
    """Top-level modules a cell (IPython syntax, magics included) or a module imports."""
    tree = ast.parse(TransformerManager().transform_cell(source))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_every_notebook_is_listed_and_committed_without_outputs() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    for name in NAMES:
        for cell in _code_cells(name):
            assert cell.outputs == [], f"{name}: a cell has outputs; strip them"
            assert cell.execution_count is None, f"{name}: a cell has an execution count"


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_use_the_sdk_only(name: str) -> None:
    imported = set().union(*(_imports(cell.source) for cell in _code_cells(name)))
    assert {"memory_client", "demo"} <= imported
    assert not imported & SERVER_SIDE, imported & SERVER_SIDE
    helper = _imports((NOTEBOOKS / "demo.py").read_text())
    assert "memory_client" in helper and not helper & SERVER_SIDE, helper


def test_the_import_check_sees_through_magics_and_submodules() -> None:
    cell = "%matplotlib inline\nfrom memory_server.app import create_app\nimport summarizer.runner"
    assert _imports(cell) == {"memory_server", "summarizer"}
