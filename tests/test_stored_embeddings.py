"""Each memory's vector is kept in SQL, with the write: ranking reads it there, a rebuild of the
index reuses it, and rows without one (written before SQL kept them) still rank the same."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlmodel import col

from memory_server.auth import Principal
from memory_server.config import Settings
from memory_server.models import Memory
from memory_server.schemas import SearchRequest
from memory_server.stored_embeddings import memories_with_vectors
from tests.conftest import ADMIN_KEY, LiveServer, server_settings, serving
from tests.index_probe import namespace_collection

FACTS = [
    "The office wifi password is hunter2",
    "Standup is at 9:30 every weekday",
    "Bob owns the billing service",
    "The staging database is restored every Sunday night",
]


def _agent(server: LiveServer) -> tuple[httpx.Client, str]:
    with server.client(ADMIN_KEY) as admin:
        agent = admin.post("/v1/agents", json={"name": "kept"}).json()
        key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()["key"]
    return server.client(key), agent["default_namespace_id"]


def _write(client: httpx.Client, contents: list[str]) -> list[str]:
    response = client.post(
        "/v1/memories/batch", json={"memories": [{"content": c, "kind": "fact"} for c in contents]}
    )
    assert response.status_code == 201, response.text
    return [item["memory"]["id"] for item in response.json()["results"]]


def _sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def _stored(settings: Settings) -> dict[str, tuple[str, np.ndarray]]:
    rows = _sql(settings, "SELECT memory_id, model, vector FROM memory_embedding")
    return {row[0]: (row[1], np.frombuffer(row[2], dtype=np.float32)) for row in rows}


def _indexed(settings: Settings, namespace_id: str, ids: list[str]) -> dict[str, np.ndarray]:
    got = namespace_collection(settings, namespace_id).get(ids=ids, include=["embeddings"])
    pairs = zip(got["ids"], got["embeddings"], strict=True)
    return {i: np.asarray(e, dtype=np.float32) for i, e in pairs}


def test_sql_keeps_the_vector_the_index_has_through_update_and_delete(server: LiveServer) -> None:
    client, namespace_id = _agent(server)
    model = server.app.state.runtime.embedder.name
    with client:
        ids = _write(client, FACTS)
        before = _stored(server.settings)[ids[0]][1]
        memory = client.get(f"/v1/memories/{ids[0]}").json()
        updated = client.patch(
            f"/v1/memories/{ids[0]}",
            json={"content": "The guest wifi password is correcthorse"},
            headers={"If-Match": str(memory["version"])},
        )
        assert updated.status_code == 200, updated.text
        assert client.delete(f"/v1/memories/{ids[3]}").status_code == 200

    stored = _stored(server.settings)
    assert set(stored) == set(ids[:3])  # the deleted memory's vector went with it
    assert {m for m, _ in stored.values()} == {model}
    indexed = _indexed(server.settings, namespace_id, ids[:3])
    for memory_id in ids[:3]:
        np.testing.assert_allclose(stored[memory_id][1], indexed[memory_id], atol=1e-6)
    assert float(np.dot(before, stored[ids[0]][1])) < 0.99  # the update stored its new vector


def test_a_rebuild_reuses_stored_vectors_and_embeds_only_the_rest(server: LiveServer) -> None:
    client, namespace_id = _agent(server)
    with client:
        ids = _write(client, FACTS)
    runtime = server.app.state.runtime
    _sql(server.settings, "DELETE FROM memory_embedding WHERE memory_id = :id", id=ids[1])
    embedded: list[str] = []
    real_embed = runtime.embedder.embed

    def counting_embed(texts: list[str], **options: Any) -> list[list[float]]:
        embedded.extend(texts)
        return real_embed(texts, **options)

    runtime.embedder.embed = counting_embed
    try:
        report = runtime.index.rebuild()
    finally:
        runtime.embedder.embed = real_embed
    assert report.rebuilt
    assert embedded == [FACTS[1]]  # the one memory SQL had no vector for
    assert set(_stored(server.settings)) == set(ids)  # and now it has
    indexed = _indexed(server.settings, namespace_id, ids)
    assert set(indexed) == set(ids)
    for memory_id, (_, vector) in _stored(server.settings).items():
        np.testing.assert_allclose(vector, indexed[memory_id], atol=1e-6)


@pytest.fixture(params=["copies", "index"])
def copies_or_index(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str | None
) -> Iterator[LiveServer]:
    """A server whose ranking reads vectors not kept in SQL from the in-memory copies of the
    index (the default) or, with no copies, from the index itself."""
    cache = {"copies": 250_000, "index": 0}[request.param]
    with serving(
        server_settings(tmp_path / "var", database_url, vector_cache_vectors=cache)
    ) as live:
        yield live


def test_rows_without_a_stored_vector_rank_the_same_from_the_index(
    copies_or_index: LiveServer,
) -> None:
    server = copies_or_index
    client, namespace_id = _agent(server)
    runtime = server.app.state.runtime
    copies = server.settings.vector_cache_vectors > 0
    with client:
        ids = _write(client, FACTS)
        # access counts are part of a score: freeze them, so scores differ only if vectors do
        runtime.recorder.close()
        author = client.get(f"/v1/memories/{ids[0]}").json()["author_agent_id"]
        principal = Principal(agent_id=author, key_id=None)
        query = {"query": "who is in charge of billing and the wifi?", "k": 4}
        first = client.post("/v1/search", json=query).json()["results"]
        vectors = {
            r.memory.id: r.embedding for r in runtime.search.search(principal, _search(query))
        }
        context_query = {"query": query["query"], "budget_tokens": 200}
        context_first = client.post("/v1/context", json=context_query).json()
        _sql(server.settings, "DELETE FROM memory_embedding")
        again = client.post("/v1/search", json=query).json()["results"]
        fallback = {
            r.memory.id: r.embedding for r in runtime.search.search(principal, _search(query))
        }
        context_again = client.post("/v1/context", json=context_query).json()
        assert (runtime.vectors.vectors_in_memory([namespace_id]) is not None) == copies

    def scored(results: list[dict[str, Any]]) -> list[tuple[str, float]]:
        return [(r["memory"]["id"], round(r["score"], 4)) for r in results]

    assert len(first) == 4 and scored(again) == scored(first)
    assert [(i["id"], round(i["score"], 4)) for i in context_again["items"]] == [
        (i["id"], round(i["score"], 4)) for i in context_first["items"]
    ]
    # the vectors ranking used (diversity, near-duplicates) came from the index instead
    assert set(fallback) == set(vectors) and len(vectors) == 4
    for memory_id, vector in vectors.items():
        assert vector is not None and fallback[memory_id] is not None
        np.testing.assert_allclose(fallback[memory_id], vector, atol=1e-6)


def test_vectors_held_in_memory_spare_the_read_of_sql_s(server: LiveServer) -> None:
    client, _ = _agent(server)
    with client:
        ids = _write(client, FACTS[:3])
    runtime = server.app.state.runtime
    model = runtime.embedder.name
    held = {ids[0]: np.full(4, 0.5, dtype=np.float32), ids[1]: np.zeros(4, dtype=np.float32)}
    with runtime.db.read() as session:
        condition = [col(Memory.id).in_(ids)]
        rows, from_sql = memories_with_vectors(session, condition, model)
        same_rows, from_memory = memories_with_vectors(session, condition, model, held)
    assert sorted(m.id for m in rows) == sorted(m.id for m in same_rows) == sorted(ids)
    assert set(from_sql) == set(ids)  # SQL has every vector
    assert set(from_memory) == {ids[0], ids[1]}  # only what memory holds: SQL was not read
    np.testing.assert_array_equal(from_memory[ids[0]], held[ids[0]])


def _search(body: dict[str, Any]) -> SearchRequest:
    return SearchRequest.model_validate(body)


def test_a_rebuild_never_stores_a_vector_for_content_that_changed_meanwhile(
    server: LiveServer,
) -> None:
    client, _ = _agent(server)
    runtime = server.app.state.runtime
    with client:
        [memory_id] = _write(client, ["The office wifi password is hunter2"])
        _sql(server.settings, "DELETE FROM memory_embedding")  # the rebuild must embed it
        real_embed = runtime.embedder.embed
        updated: list[int] = []

        def embed_while_someone_updates(texts: list[str], **options: Any) -> list[list[float]]:
            vectors = real_embed(texts, **options)
            if not updated:  # the rebuild's call: the memory changes before its vector is kept
                updated.append(1)
                version = client.get(f"/v1/memories/{memory_id}").json()["version"]
                response = client.patch(
                    f"/v1/memories/{memory_id}",
                    json={"content": "Standup moved to 10:00"},
                    headers={"If-Match": str(version)},
                )
                assert response.status_code == 200, response.text
            return vectors

        runtime.embedder.embed = embed_while_someone_updates
        try:
            runtime.index.rebuild()
        finally:
            runtime.embedder.embed = real_embed
    assert updated
    [new_vector] = real_embed(["Standup moved to 10:00"])
    stored = _stored(server.settings)[memory_id][1]
    np.testing.assert_allclose(stored, np.asarray(new_vector, dtype=np.float32), atol=1e-5)
