"""A key from one agent cannot reach another agent's private memories through any endpoint."""

from __future__ import annotations

SECRET = "Alice's bank PIN is 8675"


def test_stranger_cannot_read_or_change_private_memories(make_agent) -> None:
    alice, mallory = make_agent("alice"), make_agent("mallory")
    stored = alice.client.post(
        "/v1/memories",
        json={
            "content": SECRET,
            "kind": "fact",
            "user_id": "alice",
            "thread_id": "t1",
            "tags": ["bank"],
        },
    ).json()["memory"]
    memory_id, namespace_id = stored["id"], alice.namespace_id
    missing_id = "mem_" + "0" * 24

    def same_as_missing(method: str, path: str, missing_path: str, **kwargs: object) -> None:
        forbidden = mallory.client.request(method, path, **kwargs)
        missing = mallory.client.request(method, missing_path, **kwargs)
        assert forbidden.status_code == missing.status_code == 404, (method, path)
        assert forbidden.json()["code"] == missing.json()["code"]
        assert "PIN is" not in forbidden.text

    same_as_missing("GET", f"/v1/memories/{memory_id}", f"/v1/memories/{missing_id}")
    same_as_missing(
        "PATCH",
        f"/v1/memories/{memory_id}",
        f"/v1/memories/{missing_id}",
        json={"content": "pwned"},
        headers={"If-Match": "1"},
    )
    same_as_missing("DELETE", f"/v1/memories/{memory_id}", f"/v1/memories/{missing_id}")
    same_as_missing("GET", f"/v1/namespaces/{namespace_id}", "/v1/namespaces/ns_missing")
    same_as_missing(
        "GET", f"/v1/memories?namespace_id={namespace_id}", "/v1/memories?namespace_id=ns_missing"
    )
    planted = mallory.client.post(
        "/v1/memories", json={"content": "planted", "namespace_id": namespace_id}
    )
    assert planted.status_code == 404 and planted.json()["code"] == "namespace_not_found"
    batch = mallory.client.post(
        "/v1/memories/batch", json={"memories": [{"content": "x", "namespace_id": namespace_id}]}
    )
    assert batch.status_code == 404

    for body in (
        {"query": "bank PIN"},
        {"query": "bank PIN", "namespace_ids": [namespace_id]},
        {"query": "bank PIN", "user_id": "alice", "include_archived": True},
    ):
        response = mallory.client.post("/v1/search", json=body)
        assert response.status_code in (200, 404)
        assert "PIN is" not in response.text and memory_id not in response.text

    for body in (
        {"query": "bank PIN", "budget_tokens": 500},
        {"query": "bank PIN", "budget_tokens": 500, "namespaces": [namespace_id]},
        {"query": "bank PIN", "budget_tokens": 500, "user_id": "alice", "thread_id": "t1"},
    ):
        response = mallory.client.post("/v1/context", json=body)
        assert response.status_code in (200, 404)
        assert "PIN is" not in response.text and memory_id not in response.text

    listed = mallory.client.get("/v1/memories", params={"user_id": "alice", "tag": "bank"})
    assert listed.status_code == 200 and listed.json()["data"] == []
    namespaces = mallory.client.get("/v1/namespaces").json()
    assert [ns["id"] for ns in namespaces["data"]] == [mallory.namespace_id]
    assert mallory.client.delete(f"/v1/keys/{alice.key_id}").status_code == 404

    # and Alice's memory is untouched
    after = alice.client.get(f"/v1/memories/{memory_id}").json()
    assert after["content"] == SECRET and after["version"] == 1
    hits = alice.client.post("/v1/search", json={"query": "bank PIN"}).json()["results"]
    assert [h["memory"]["id"] for h in hits] == [memory_id]
