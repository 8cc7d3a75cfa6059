"""Export and import: a round trip into a fresh server restores every memory, link and keyed-fact
version; importing twice changes nothing; a malformed file stores nothing.

"Wiping" the namespace in the round trip means a fresh server with its own new database (a new
SQLite file, or a new PostgreSQL database) and its own index: the import is the only way anything
gets there. The namespace there is new too, so the only field allowed to differ is `namespace_id`.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_server.auth import ADMIN
from memory_server.config import BUNDLED_EMBEDDING_MODEL
from memory_server.services import transfer as transfer_service
from memory_server.statements import STATEMENT_RECIPE
from tests.conftest import (
    ADMIN_KEY,
    POSTGRES_ENV,
    LiveServer,
    postgres_database,
    release_chroma_clients,
    server_settings,
)
from tests.index_probe import drop_index

# The index's model: the bundled one, fed each memory's statements (memory_server.statements).
EMBEDDING_MODEL = f"{BUNDLED_EMBEDDING_MODEL}+{STATEMENT_RECIPE}"

NDJSON = {"Content-Type": "application/x-ndjson"}


@contextlib.contextmanager
def fresh_database(database_url: str | None) -> Iterator[str | None]:
    """Another empty database of the same kind as the test's (None: SQLite in the data dir)."""
    if database_url is None:
        yield None
        return
    with postgres_database(os.environ[POSTGRES_ENV]) as url:
        yield url


@contextlib.contextmanager
def fresh_server(tmp_path: Path, database_url: str | None) -> Iterator[LiveServer]:
    with fresh_database(database_url) as url:
        live = LiveServer(server_settings(tmp_path / "fresh", url)).start()
        try:
            yield live
        finally:
            live.stop()
            release_chroma_clients()


def _agent(server: LiveServer, name: str) -> tuple[httpx.Client, dict[str, Any]]:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": name}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    return server.client(key), agent


def _export(client: httpx.Client, namespace_id: str, **params: Any) -> httpx.Response:
    response = client.get("/v1/export", params={"namespace_id": namespace_id, **params})
    assert response.status_code == 200, response.text
    return response


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _import(client: httpx.Client, namespace_id: str, body: str | bytes) -> httpx.Response:
    return client.post(
        "/v1/import", params={"namespace_id": namespace_id}, content=body, headers=NDJSON
    )


def _seed(client: httpx.Client, namespace_id: str) -> dict[str, Any]:
    """Every kind of thing a namespace holds: keyed history, messages condensed into a summary
    (archived sources, links), notes with tags and metadata, an archived and an expiring one."""

    def write(**fields: Any) -> dict[str, Any]:
        response = client.post("/v1/memories", json={"namespace_id": namespace_id, **fields})
        assert response.status_code == 201, response.text
        return dict(response.json()["memory"])

    tone = [
        write(content=text, kind="preference", key="user.tone", user_id="dana")
        for text in ("Formal, please", "Casual is fine", "Short and casual")
    ]
    long_ago = datetime.now(UTC) - timedelta(days=20)
    messages = client.post(
        "/v1/memories/batch",
        json={
            "memories": [
                {
                    "namespace_id": namespace_id,
                    "kind": "message",
                    "role": "user" if i % 2 == 0 else "assistant",
                    "user_id": "dana",
                    "thread_id": "t-1",
                    "content": " ".join(
                        f"Day {i}: the Porto trip item {j} is settled and booked." for j in range(5)
                    ),
                    "created_at": (long_ago + timedelta(minutes=i)).isoformat(),
                }
                for i in range(5)
            ]
        },
    )
    assert messages.status_code == 201, messages.text
    run = client.post("/v1/summaries/run", json={"namespace_id": namespace_id}).json()
    (summary_id,) = run["summary_ids"]
    note = write(
        content="Dana's invoices go to billing@example.com",
        kind="note",
        tags=["billing", "email"],
        metadata={"source": "call", "nested": {"a": [1, 2]}},
        importance=0.8,
        thread_id="t-2",
    )
    archived = write(content="Old office address: Main St 1", kind="fact")
    response = client.patch(
        f"/v1/memories/{archived['id']}", json={"status": "archived"}, headers={"If-Match": '"1"'}
    )
    assert response.status_code == 200
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    write(content="Dana is travelling this week", kind="fact", expires_at=later)
    return {"tone": tone, "summary_id": summary_id, "note": note}


def _comparable(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[tuple]]:
    memories = []
    links = set()
    for record in records:
        if record["type"] == "memory":
            memories.append({k: v for k, v in record["memory"].items() if k != "namespace_id"})
        elif record["type"] == "link":
            links.add((record["summary_id"], record["source_id"]))
    return memories, links


def test_export_wipe_import_restores_every_memory_link_and_version(
    server: LiveServer, tmp_path: Path, database_url: str | None
) -> None:
    source, _ = _agent(server, "exporter")
    namespace_id = source.get("/v1/namespaces").json()["data"][0]["id"]
    seeded = _seed(source, namespace_id)
    exported = _export(source, namespace_id, include_embeddings="true")
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    records = _records(exported.text)
    header, end = records[0], records[-1]
    assert (header["type"], header["format"], header["version"]) == (
        "header",
        "memory-server/export",
        1,
    )
    assert header["namespace"]["id"] == namespace_id
    assert (header["embedding_model"], header["embedding_dimension"]) == (EMBEDDING_MODEL, 384)
    assert datetime.fromisoformat(header["exported_at"]) <= datetime.now(UTC)
    memories, links = _comparable(records)
    assert end == {"type": "end", "memories": len(memories), "links": len(links), "tasks": 0}
    assert len(memories) == 3 + 5 + 1 + 3 and len(links) == 5
    assert {m["status"] for m in memories} == {"active", "archived", "superseded"}
    assert all(len(r["embedding"]) == 384 for r in records if r["type"] == "memory")
    plain = _records(_export(source, namespace_id).text)
    assert not any("embedding" in r for r in plain) and _comparable(plain) == (memories, links)
    source.close()

    with fresh_server(tmp_path, database_url) as fresh:
        target, agent = _agent(fresh, "importer")
        target_ns = agent["default_namespace_id"]
        result = _import(target, target_ns, exported.text)
        assert result.status_code == 200, result.text
        assert result.json() == {
            "namespace_id": target_ns,
            "created": len(memories),
            "skipped": 0,
            "links_created": len(links),
            "links_skipped": 0,
            "tasks_created": 0,
            "tasks_skipped": 0,
            "conflicts": [],
        }
        again = _comparable(_records(_export(target, target_ns).text))
        assert again == (memories, links)  # every field of every memory, every link

        # ...and it works as memory: history, provenance, search through the rebuilt index
        first, _, last = seeded["tone"]
        old = target.get(f"/v1/memories/{first['id']}").json()
        assert (old["status"], old["superseded_by"], old["version"]) == (
            "superseded",
            seeded["tone"][1]["id"],
            2,
        )
        tree = target.get(f"/v1/memories/{seeded['summary_id']}/provenance").json()
        assert len(tree["sources"]) == 5 and tree["memory"]["level"] == 1
        hits = target.post("/v1/search", json={"query": "where do invoices go?", "k": 1}).json()
        assert hits["results"][0]["memory"]["id"] == seeded["note"]["id"]
        # the search counts as an access of the note: write it now, not during the checks below
        fresh.app.state.runtime.recorder.flush()
        settled = _comparable(_records(_export(target, target_ns).text))
        note = next(m for m in settled[0] if m["id"] == seeded["note"]["id"])
        assert note["access_count"] == 1
        events = target.get("/v1/events").json()["data"]
        assert len(events) == len(memories) and {e["type"] for e in events} == {"created"}
        assert all(e["details"]["via"] == "import" for e in events)

        # importing the same file again changes nothing
        twice = _import(target, target_ns, exported.text).json()
        assert (twice["created"], twice["skipped"], twice["conflicts"]) == (0, len(memories), [])
        assert (twice["links_created"], twice["links_skipped"]) == (0, len(links))
        assert len(target.get("/v1/events").json()["data"]) == len(events)
        assert _comparable(_records(_export(target, target_ns).text)) == settled

        # a memory changed since is reported, not overwritten; ids taken elsewhere too
        changed = target.patch(
            f"/v1/memories/{last['id']}", json={"importance": 0.1}, headers={"If-Match": '"1"'}
        )
        assert changed.status_code == 200
        third = _import(target, target_ns, exported.text).json()
        assert third["created"] == 0 and third["skipped"] == len(memories) - 1
        (conflict,) = third["conflicts"]
        assert (conflict["record"], conflict["id"]) == ("memory", last["id"])
        assert "version 2" in conflict["reason"] and conflict["line"] > 1
        assert target.get(f"/v1/memories/{last['id']}").json()["importance"] == 0.1
        other = target.post("/v1/namespaces", json={"name": "other"}).json()["id"]
        elsewhere = _import(target, other, exported.text).json()
        assert elsewhere["created"] == 0 and len(elsewhere["conflicts"]) == len(memories) + len(
            links
        )
        assert target.get("/v1/memories", params={"namespace_id": other}).json()["data"] == []
        target.close()


def test_importing_into_a_namespace_that_has_memories(make_agent) -> None:
    agent = make_agent()
    ns = agent.namespace_id
    kept = agent.client.post("/v1/memories", json={"content": "Already here", "kind": "fact"})
    current = agent.client.post(
        "/v1/memories", json={"content": "Prefers tea", "kind": "preference", "key": "drink"}
    ).json()["memory"]
    now = datetime.now(UTC).isoformat()
    lines = [
        {"type": "header", "format": "memory-server/export", "version": 1},
        {
            "type": "memory",
            "memory": {
                "id": "mem_a1",
                "kind": "note",
                "content": "Imported note",
                "created_at": now,
                "tags": ["x"],
            },
        },
        {
            "type": "memory",
            "memory": {
                "id": "mem_a2",
                "kind": "preference",
                "key": "drink",
                "content": "Prefers coffee",
                "created_at": now,
            },
        },
        {
            "type": "memory",
            "memory": {
                "id": "mem_a3",
                "kind": "fact",
                "content": "already here",
                "created_at": now,
            },
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    result = _import(agent.client, ns, body).json()
    assert result["created"] == 1 and result["skipped"] == 0
    reasons = {c["id"]: (c["line"], c["reason"]) for c in result["conflicts"]}
    assert reasons["mem_a2"][0] == 3 and current["id"] in reasons["mem_a2"][1]
    assert reasons["mem_a3"][0] == 4 and kept.json()["memory"]["id"] in reasons["mem_a3"][1]
    imported = agent.client.get("/v1/memories/mem_a1").json()
    assert (imported["content"], imported["tags"], imported["author_agent_id"]) == (
        "Imported note",
        ["x"],
        None,
    )
    assert imported["token_count"] > 0 and len(imported["content_hash"]) == 64


def test_a_malformed_file_is_refused_whole_with_the_line(make_agent) -> None:
    agent = make_agent()
    ns = agent.namespace_id
    now = datetime.now(UTC).isoformat()
    header = json.dumps({"type": "header", "format": "memory-server/export", "version": 1})
    good = json.dumps(
        {"type": "memory", "memory": {"id": "mem_ok", "content": "Fine", "created_at": now}}
    )

    def refused(body: str, code: str, loc: list[Any] | None = None) -> dict[str, Any]:
        response = _import(agent.client, ns, body)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["code"] == code, error
        if loc is not None:
            assert error["errors"][0]["loc"] == loc, error
        return dict(error)

    error = refused(f"{header}\n{good}\n{{not json", "invalid_import_line", ["line", 3])
    assert error["detail"].startswith("line 3:")
    bad_field = json.dumps(
        {
            "type": "memory",
            "memory": {"id": "mem_x", "content": "x", "created_at": now, "importance": 2},
        }
    )
    refused(
        f"{header}\n\n{good}\n{bad_field}",
        "invalid_import_line",
        ["line", 4, "memory", "importance"],
    )
    refused(good, "invalid_import_line", ["line", 1])
    refused(f"{header}\n{good}\n{good}", "invalid_import_line", ["line", 3])
    refused(
        f"{header}\n{json.dumps({'type': 'tombstone'})}", "invalid_import_line", ["line", 2, "type"]
    )
    cut = json.dumps({"type": "end", "memories": 2, "links": 0})
    refused(f"{header}\n{good}\n{cut}", "invalid_import_line", ["line", 3])
    old = json.dumps({"type": "header", "format": "memory-server/export", "version": 99})
    refused(old, "invalid_import_line", ["line", 1])
    refused("\n \n", "empty_import")
    two_values = [
        json.dumps(
            {
                "type": "memory",
                "memory": {
                    "id": f"mem_k{i}",
                    "content": f"v{i}",
                    "key": "k",
                    "kind": "fact",
                    "created_at": now,
                },
            }
        )
        for i in range(2)
    ]
    refused("\n".join([header, *two_values]), "invalid_import_line", ["line", 3])
    assert agent.client.get("/v1/memories").json()["data"] == []
    assert agent.client.get("/v1/events").json()["data"] == []


def test_export_and_import_need_read_and_write(make_agent, server: LiveServer) -> None:
    alice, bob, mallory = make_agent(), make_agent(), make_agent()
    team = alice.client.post("/v1/namespaces", json={"name": "team"}).json()["id"]
    alice.client.post("/v1/memories", json={"content": "Team fact", "namespace_id": team})
    alice.client.post(
        f"/v1/namespaces/{team}/grants", json={"agent_id": bob.id, "permission": "read"}
    )
    exported = _export(bob.client, team).text
    assert [r["type"] for r in _records(exported)] == ["header", "memory", "end"]
    forbidden = _import(bob.client, team, exported)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "permission_denied"
    for response in (
        mallory.client.get("/v1/export", params={"namespace_id": team}),
        _import(mallory.client, team, exported),
    ):
        assert response.status_code == 404 and response.json()["code"] == "namespace_not_found"
    audit = alice.client.get(f"/v1/namespaces/{team}/audit").json()["data"]
    assert [(a["agent_id"], a["operation"]) for a in audit] == [(bob.id, "export")]


def test_a_failing_index_leaves_nothing_imported(make_agent, server: LiveServer) -> None:
    agent = make_agent()
    now = datetime.now(UTC).isoformat()
    body = "\n".join(
        json.dumps(line)
        for line in (
            {"type": "header", "format": "memory-server/export", "version": 1},
            {"type": "memory", "memory": {"id": "mem_i1", "content": "One", "created_at": now}},
            {"type": "memory", "memory": {"id": "mem_i2", "content": "Two", "created_at": now}},
        )
    )
    drop_index(server.settings)
    failed = _import(agent.client, agent.namespace_id, body)
    assert failed.status_code == 503 and failed.json()["code"] == "store_unavailable"
    assert agent.client.get("/v1/memories").json()["data"] == []
    assert agent.client.get("/v1/events").json()["data"] == []


def test_markdown_export_is_a_readable_memory_md(make_agent) -> None:
    agent = make_agent()
    seeded = _seed(agent.client, agent.namespace_id)
    response = _export(agent.client, agent.namespace_id, format="markdown")
    assert response.headers["content-type"].startswith("text/markdown")
    assert 'filename="memory.md"' in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("# Memory: default\n")
    facts = text[text.index("## Facts by key") : text.index("## Memories by date")]
    assert "### `user.tone` (user dana)" in facts
    assert facts.index("**current**") < facts.index("Short and casual") < facts.index("Formal")
    assert facts.count("**superseded**") == 2
    memories = text[text.index("## Memories by date") : text.index("## Summaries")]
    assert "billing@example.com" in memories and "archived" in memories
    summaries = text[text.index("## Summaries") :]
    assert f"### Summary `{seeded['summary_id']}` (level 1" in summaries
    assert summaries.count("message): Day") == 5  # its sources, listed


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_export_requires_a_namespace(make_agent) -> None:
    agent = make_agent()
    missing = agent.client.get("/v1/export")
    assert missing.status_code == 422
    unknown = agent.client.get(
        "/v1/export", params={"namespace_id": agent.namespace_id, "format": "xml"}
    )
    assert unknown.status_code == 422


def test_embeddings_in_the_file_are_kept_only_when_made_by_the_same_model(make_agent) -> None:
    agent = make_agent()
    now = datetime.now(UTC).isoformat()
    marker = [0.0] * 384
    marker[7] = 1.0  # no sentence embeds to exactly this

    def memory(id_: str, text: str) -> str:
        item = {"id": id_, "content": text, "created_at": now}
        return json.dumps({"type": "memory", "memory": item, "embedding": marker})

    for model, id_, kept in (
        (EMBEDDING_MODEL, "mem_same", True),
        ("other-model", "mem_other", False),
    ):
        header = {
            "type": "header",
            "format": "memory-server/export",
            "version": 1,
            "embedding_model": model,
        }
        body = f"{json.dumps(header)}\n{memory(id_, f'Imported with {model}')}"
        assert _import(agent.client, agent.namespace_id, body).json()["created"] == 1
        records = _records(
            _export(agent.client, agent.namespace_id, include_embeddings="true").text
        )
        (stored,) = [r["embedding"] for r in records if r.get("memory", {}).get("id") == id_]
        assert (stored == pytest.approx(marker)) is kept, model


def test_an_export_is_one_snapshot_while_others_write(
    make_agent, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memories added, edited or deleted after an export began are not in it, whatever page
    the export is on; the file is the namespace as it was when its first page was read."""
    monkeypatch.setattr(transfer_service, "PAGE_SIZE", 1)  # one query per memory
    agent = make_agent()
    ids = [
        agent.client.post("/v1/memories", json={"content": f"memory {i}"}).json()["memory"]["id"]
        for i in range(3)
    ]
    transfer = server.app.state.runtime.transfer
    lines = transfer.jsonl(
        transfer.open_export(ADMIN, agent.namespace_id), include_embeddings=False
    )
    read = [json.loads(next(lines)), json.loads(next(lines))]  # the header, the first memory
    assert agent.client.post("/v1/memories", json={"content": "added during"}).status_code == 201
    assert agent.client.delete(f"/v1/memories/{ids[2]}").status_code == 200
    etag = agent.client.get(f"/v1/memories/{ids[1]}").headers["ETag"]
    edited = agent.client.patch(
        f"/v1/memories/{ids[1]}", json={"content": "edited during"}, headers={"If-Match": etag}
    )
    assert edited.status_code == 200, edited.text
    read += [json.loads(line) for line in lines]
    memories = [r["memory"] for r in read if r["type"] == "memory"]
    assert [m["id"] for m in memories] == ids
    assert [m["content"] for m in memories] == ["memory 0", "memory 1", "memory 2"]
    assert read[-1] == {"type": "end", "memories": 3, "links": 0, "tasks": 0}
    after = [r["memory"] for r in _records(_export(agent.client, agent.namespace_id).text)[1:-1]]
    assert {m["content"] for m in after} == {"memory 0", "edited during", "added during"}
