"""A namespace's stored embeddings (`GET /v1/namespaces/{id}/embeddings`), for maps of memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest

from memory_server.vectors import open_vector_store
from tests.conftest import LiveServer


def _write(client: httpx.Client, memories: list[dict]) -> list[dict]:
    response = client.post("/v1/memories/batch", json={"memories": memories})
    assert response.status_code == 201, response.text
    return [r["memory"] for r in response.json()["results"]]


def _embeddings(client: httpx.Client, namespace_id: str, **params: object) -> httpx.Response:
    return client.get(f"/v1/namespaces/{namespace_id}/embeddings", params=params)


def _seed(client: httpx.Client) -> list[dict]:
    """Four memories an hour apart, oldest first: two messages, a note and a keyed preference."""
    start = datetime.now(UTC) - timedelta(hours=5)
    items = [
        {"kind": "message", "role": "user", "thread_id": "t1", "user_id": "dana",
         "content": "My order #1042 arrived damaged."},
        {"kind": "message", "role": "assistant", "thread_id": "t1", "user_id": "dana",
         "content": "Sorry! A replacement ships Monday."},
        {"kind": "note", "user_id": "sam", "content": "Sam asked for invoices as PDF files."},
        {"kind": "preference", "user_id": "dana", "key": "contact",
         "content": "Dana prefers email over phone calls."},
    ]  # fmt: skip
    for hours, item in enumerate(items):
        item["created_at"] = (start + timedelta(hours=hours)).isoformat()
    return _write(client, items)


def test_embeddings_are_the_stored_vectors_newest_first_beside_the_query(make_agent) -> None:
    agent = make_agent()
    written = _seed(agent.client)
    response = _embeddings(agent.client, agent.namespace_id, query="how do I reach Dana?")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["namespace_id"] == agent.namespace_id
    assert body["model"] == "all-MiniLM-L6-v2+statements-v1"  # memory_server.statements
    assert body["dimensions"] == 384
    assert body["next_cursor"] is None
    assert [m["id"] for m in body["data"]] == [m["id"] for m in reversed(written)]
    newest = body["data"][0]
    assert newest["kind"] == "preference" and newest["key"] == "contact"
    assert newest["preview"] == "Dana prefers email over phone calls."
    assert newest["status"] == "active" and newest["level"] == 0 and newest["user_id"] == "dana"
    vectors = np.array([m["embedding"] for m in body["data"]])
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    # The query's vector and the memories' are the ones search compares: same similarities.
    assert body["query"]["text"] == "how do I reach Dana?"
    query = np.array(body["query"]["embedding"])
    search = agent.client.post("/v1/search", json={"query": "how do I reach Dana?", "k": 4})
    similarity = {hit["memory"]["id"]: hit["similarity"] for hit in search.json()["results"]}
    for memory, vector in zip(body["data"], vectors, strict=True):
        assert float(query @ vector) == pytest.approx(similarity[memory["id"]], abs=1e-3)
    assert _embeddings(agent.client, agent.namespace_id).json()["query"] is None


def test_embeddings_filter_and_page_like_listing(make_agent) -> None:
    agent = make_agent()
    note_ns = agent.client.post("/v1/namespaces", json={"name": "other"}).json()["id"]
    _write(agent.client, [{"namespace_id": note_ns, "content": "Elsewhere entirely."}])
    first, second, note, preference = _seed(agent.client)
    archived = agent.client.patch(
        f"/v1/memories/{first['id']}", json={"status": "archived"}, headers={"If-Match": '"1"'}
    )
    assert archived.status_code == 200, archived.text
    newer = _write(
        agent.client,
        [{"kind": "preference", "user_id": "dana", "key": "contact", "content": "Phone is fine."}],
    )[0]

    def ids(**params: object) -> list[str]:
        response = _embeddings(agent.client, agent.namespace_id, **params)
        assert response.status_code == 200, response.text
        return [m["id"] for m in response.json()["data"]]

    assert ids() == [newer["id"], note["id"], second["id"]]  # active, in this namespace only
    assert ids(include_archived=True) == [newer["id"], note["id"], second["id"], first["id"]]
    assert ids(status="superseded") == [preference["id"]]
    assert ids(status=["archived", "superseded"]) == [preference["id"], first["id"]]
    assert ids(kind="message", include_archived=True) == [second["id"], first["id"]]
    assert ids(kind=["note", "preference"]) == [newer["id"], note["id"]]
    assert ids(user_id="sam") == [note["id"]]
    assert ids(thread_id="t1") == [second["id"]]

    page = _embeddings(agent.client, agent.namespace_id, limit=2).json()
    assert [m["id"] for m in page["data"]] == [newer["id"], note["id"]]
    rest = _embeddings(agent.client, agent.namespace_id, limit=2, cursor=page["next_cursor"])
    assert [m["id"] for m in rest.json()["data"]] == [second["id"]]
    assert rest.json()["next_cursor"] is None


def test_strangers_get_the_namespace_404_and_readers_see_the_map(make_agent) -> None:
    owner, stranger, reader = make_agent("owner"), make_agent("stranger"), make_agent("reader")
    _seed(owner.client)
    unknown = stranger.client.get(f"/v1/namespaces/{owner.namespace_id}")
    refused = _embeddings(stranger.client, owner.namespace_id, query="Dana")
    assert refused.status_code == unknown.status_code == 404
    assert refused.json()["code"] == unknown.json()["code"] == "namespace_not_found"
    missing = _embeddings(stranger.client, "ns_does_not_exist")
    assert (missing.status_code, missing.json()["code"]) == (404, "namespace_not_found")

    grant = owner.client.post(
        f"/v1/namespaces/{owner.namespace_id}/grants",
        json={"agent_id": reader.id, "permission": "read"},
    )
    assert grant.status_code == 201, grant.text
    seen = _embeddings(reader.client, owner.namespace_id)
    assert seen.status_code == 200 and len(seen.json()["data"]) == 4
    events = owner.client.get(f"/v1/namespaces/{owner.namespace_id}/audit").json()["data"]
    assert [(e["agent_id"], e["operation"], e["memory_count"]) for e in events] == [
        (reader.id, "embeddings", 4)
    ]

    owner.client.delete(f"/v1/namespaces/{owner.namespace_id}/grants/{grant.json()['id']}")
    assert _embeddings(reader.client, owner.namespace_id).status_code == 404


def test_a_key_limited_to_other_namespaces_cannot_map_this_one(
    server: LiveServer, admin: httpx.Client, make_agent
) -> None:
    agent = make_agent()
    other = agent.client.post("/v1/namespaces", json={"name": "other"}).json()["id"]
    key = admin.post(f"/v1/agents/{agent.id}/keys", json={"namespace_ids": [other]}).json()["key"]
    with server.client(key) as client:
        response = _embeddings(client, agent.namespace_id)
        assert (response.status_code, response.json()["code"]) == (404, "namespace_not_found")
        assert _embeddings(client, other).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"status": "forgotten"},
        {"kind": "Not A Kind"},
        {"query": ""},
        {"include_archived": "perhaps"},
    ],
)
def test_bad_parameters_are_422_with_a_code(make_agent, params: dict) -> None:
    agent = make_agent()
    response = _embeddings(agent.client, agent.namespace_id, **params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert next(iter(params)) in response.json()["errors"][0]["loc"]


def test_a_forged_cursor_is_422_invalid_cursor(make_agent) -> None:
    agent = make_agent()
    response = _embeddings(agent.client, agent.namespace_id, cursor="not-a-cursor")
    assert (response.status_code, response.json()["code"]) == (422, "invalid_cursor")


def test_a_memory_missing_from_the_index_is_embedded_not_left_off(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    written = _seed(agent.client)
    before = _embeddings(agent.client, agent.namespace_id).json()["data"]
    open_vector_store(server.settings).delete([written[0]["id"]])
    after = _embeddings(agent.client, agent.namespace_id).json()["data"]
    assert [m["id"] for m in after] == [m["id"] for m in before]
    assert np.allclose(after[-1]["embedding"], before[-1]["embedding"], atol=1e-5)
