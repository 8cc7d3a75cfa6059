"""The SDK README's marked examples run as written against the real server.

A fenced Python block right after `<!-- readme-test: NAME -->` is executed here, with the names the
README says the reader supplies (`call_llm`, `alice_key`, ...) provided by the test.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```python\n(.*?)```", re.DOTALL)


def _examples() -> dict[str, str]:
    return dict(BLOCK.findall(README.read_text()))


def _run(name: str, **names: Any) -> dict[str, Any]:
    namespace = {"__name__": f"readme_{name}", **names}
    exec(compile(_examples()[name], f"{README.name}:{name}", "exec"), namespace)
    return namespace


def test_the_marked_examples_exist() -> None:
    assert set(_examples()) == {"quickstart", "sharing", "async"}


# The examples are about the SDK, not the database: one server, on SQLite, runs them all.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_marked_examples_run_as_written(
    server: Any,
    make_agent: Any,
    admin: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MEMORY_URL", server.url)

    # quickstart: the agent loop
    agent = make_agent()
    monkeypatch.setenv("MEMORY_API_KEY", agent.key)
    prompts: list[str] = []

    def call_llm(*, system: str, user: str) -> str:
        prompts.append(system)
        return f"reply {len(prompts)}"

    _run("quickstart", call_llm=call_llm)
    assert capsys.readouterr().out.splitlines() == ["reply 1", "reply 2"]
    first, second = prompts
    assert "Keep answers short." in first and "vegetarian" not in first
    assert "Where should we eat in Lisbon tonight?" in second and "reply 1" in second
    stored = agent.client.get("/v1/memories", params={"thread_id": "trip-42"}).json()["data"]
    assert len(stored) == 4

    # async: remember and iterate
    _run("async")
    assert capsys.readouterr().out.splitlines() == ["hi"]

    # sharing: grant, upgrade, audit, revoke
    monkeypatch.delenv("MEMORY_API_KEY")
    alice, bob = make_agent("alice"), make_agent("bob")
    _run("sharing", alice_key=alice.key, bob_key=bob.key, bob_id=bob.id)
    count, *events = capsys.readouterr().out.splitlines()
    assert count == "1"
    # Bob's search found nothing in the new namespace, so only his write is in the trail.
    assert [line.split()[-4:] for line in events] == [[bob.id, "write", "create", "1"]]
    namespaces = admin.get("/v1/namespaces").json()["data"]
    team = next(ns for ns in namespaces if ns["name"] == "team-notes")
    assert admin.get(f"/v1/namespaces/{team['id']}/grants").json()["count"] == 0
