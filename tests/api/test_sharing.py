"""Sharing a namespace: grants, revocation, authorship, scope, limited keys and the audit trail."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def _grant(
    owner: httpx.Client, namespace_id: str, agent_id: str, permission: str
) -> httpx.Response:
    return owner.post(
        f"/v1/namespaces/{namespace_id}/grants",
        json={"agent_id": agent_id, "permission": permission},
    )


def _shared_namespace(owner, name: str = "team") -> str:
    response = owner.client.post("/v1/namespaces", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _write(client: httpx.Client, content: str, namespace_id: str | None = None) -> dict:
    body = {"content": content, "kind": "fact"}
    if namespace_id is not None:
        body["namespace_id"] = namespace_id
    response = client.post("/v1/memories", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json()["memory"])


def test_regranting_changes_the_permission_of_the_same_grant(make_agent) -> None:
    alice, bob = make_agent("alice"), make_agent("bob")
    namespace_id = _shared_namespace(alice)
    first = _grant(alice.client, namespace_id, bob.id, "read")
    assert first.status_code == 201
    assert first.json()["agent_id"] == bob.id and first.json()["permission"] == "read"
    seen = {ns["id"]: ns["permission"] for ns in bob.client.get("/v1/namespaces").json()["data"]}
    assert seen == {bob.namespace_id: "owner", namespace_id: "read"}

    again = _grant(alice.client, namespace_id, bob.id, "write")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["permission"] == "write"
    listed = alice.client.get(f"/v1/namespaces/{namespace_id}/grants").json()
    assert listed["count"] == 1 and listed["data"][0]["permission"] == "write"
    assert bob.client.get(f"/v1/namespaces/{namespace_id}").json()["permission"] == "write"
    assert _write(bob.client, "bob may write now", namespace_id)["author_agent_id"] == bob.id


def test_bad_grants_are_refused_with_a_code(make_agent, admin: httpx.Client) -> None:
    alice, bob, mallory = make_agent(), make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)

    def refused(response: httpx.Response, status: int, code: str) -> None:
        assert (response.status_code, response.json()["code"]) == (status, code), response.text

    refused(_grant(alice.client, namespace_id, alice.id, "write"), 422, "grantee_is_owner")
    refused(_grant(admin, namespace_id, alice.id, "read"), 422, "grantee_is_owner")
    refused(_grant(alice.client, namespace_id, "agt_nobody", "read"), 422, "agent_not_found")
    refused(_grant(alice.client, namespace_id, bob.id, "admin"), 422, "validation_error")
    refused(_grant(mallory.client, namespace_id, mallory.id, "write"), 404, "namespace_not_found")
    grant_id = _grant(alice.client, namespace_id, bob.id, "read").json()["id"]
    refused(_grant(bob.client, namespace_id, mallory.id, "read"), 403, "permission_denied")
    refused(
        bob.client.delete(f"/v1/namespaces/{namespace_id}/grants/{grant_id}"),
        403,
        "permission_denied",
    )
    # A grant id is only found under its own namespace, even by that namespace's owner.
    elsewhere = f"/v1/namespaces/{mallory.namespace_id}/grants/{grant_id}"
    refused(mallory.client.delete(elsewhere), 404, "grant_not_found")
    refused(
        alice.client.delete(f"/v1/namespaces/{namespace_id}/grants/grt_x"), 404, "grant_not_found"
    )
    read_only = admin.post(f"/v1/agents/{alice.id}/keys", json={"read_only": True}).json()["key"]
    with httpx.Client(
        base_url=str(alice.client.base_url), headers={"Authorization": f"Bearer {read_only}"}
    ) as ro:
        refused(_grant(ro, namespace_id, mallory.id, "read"), 403, "permission_denied")
    assert [
        g["agent_id"]
        for g in alice.client.get(f"/v1/namespaces/{namespace_id}/grants").json()["data"]
    ] == [bob.id]
    by_admin = _grant(admin, namespace_id, mallory.id, "read")
    assert by_admin.status_code == 201


def test_revocation_takes_effect_on_the_very_next_request(make_agent) -> None:
    alice, bob = make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)
    shared = _write(alice.client, "The staging password rotates on Fridays", namespace_id)
    grant_id = _grant(alice.client, namespace_id, bob.id, "write").json()["id"]
    own = _write(bob.client, "Bob added: rotation is at noon", namespace_id)
    assert bob.client.get(f"/v1/memories/{shared['id']}").status_code == 200
    hits = bob.client.post("/v1/search", json={"query": "staging password"}).json()["results"]
    assert shared["id"] in [h["memory"]["id"] for h in hits]

    assert (
        alice.client.delete(f"/v1/namespaces/{namespace_id}/grants/{grant_id}").status_code == 200
    )

    for memory_id in (shared["id"], own["id"]):  # even what bob wrote there himself
        response = bob.client.get(f"/v1/memories/{memory_id}")
        assert response.status_code == 404 and response.json()["code"] == "memory_not_found"
    hits = bob.client.post("/v1/search", json={"query": "staging password"}).json()["results"]
    assert [h["memory"]["namespace_id"] for h in hits] == []
    assert bob.client.get("/v1/memories").json()["data"] == []
    assert [n["id"] for n in bob.client.get("/v1/namespaces").json()["data"]] == [bob.namespace_id]
    write = bob.client.post("/v1/memories", json={"content": "x", "namespace_id": namespace_id})
    assert write.status_code == 404
    patch = bob.client.patch(
        f"/v1/memories/{own['id']}", json={"tags": ["x"]}, headers={"If-Match": '"1"'}
    )
    assert patch.status_code == 404
    assert alice.client.get(f"/v1/namespaces/{namespace_id}/grants").json()["count"] == 0


def test_grantee_writes_are_authored_by_the_grantee(make_agent) -> None:
    alice, carol = make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)
    _grant(alice.client, namespace_id, carol.id, "write")
    single = _write(carol.client, "Carol: the vendor call moved to Tuesday", namespace_id)
    batch = carol.client.post(
        "/v1/memories/batch",
        json={"memories": [{"content": "Carol: budget approved", "namespace_id": namespace_id}]},
    )
    assert batch.status_code == 201
    mine = _write(alice.client, "Alice: kickoff is on the 3rd", namespace_id)
    authors = {
        m["content"]: m["author_agent_id"]
        for m in alice.client.get("/v1/memories", params={"namespace_id": namespace_id}).json()[
            "data"
        ]
    }
    assert authors == {
        single["content"]: carol.id,
        "Carol: budget approved": carol.id,
        mine["content"]: alice.id,
    }
    edited = carol.client.patch(
        f"/v1/memories/{mine['id']}", json={"importance": 0.9}, headers={"If-Match": '"1"'}
    )
    assert edited.status_code == 200 and edited.json()["author_agent_id"] == alice.id


def test_search_and_list_cover_shared_namespaces_by_default(make_agent) -> None:
    alice, bob = make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)
    shared = _write(alice.client, "The office wifi password is on the fridge", namespace_id)
    private = _write(alice.client, "Alice's private wifi note for home")
    own = _write(bob.client, "Bob's notes: wifi drops after 6pm")
    _grant(alice.client, namespace_id, bob.id, "read")

    expected = {shared["id"]: namespace_id, own["id"]: bob.namespace_id}
    for body in (
        {"query": "wifi"},
        {"query": "wifi", "namespace_ids": list(set(expected.values()))},
    ):
        hits = bob.client.post("/v1/search", json=body).json()["results"]
        assert {h["memory"]["id"]: h["memory"]["namespace_id"] for h in hits} == expected
    listed = bob.client.get("/v1/memories").json()["data"]
    assert {m["id"]: m["namespace_id"] for m in listed} == expected
    assert private["id"] not in str(listed)
    only_shared = bob.client.post(
        "/v1/search", json={"query": "wifi", "namespace_ids": [namespace_id]}
    )
    assert [h["memory"]["id"] for h in only_shared.json()["results"]] == [shared["id"]]
    private_ns = bob.client.post(
        "/v1/search", json={"query": "wifi", "namespace_ids": [alice.namespace_id]}
    )
    assert private_ns.status_code == 404


def test_keys_may_be_limited_to_shared_namespaces(server: LiveServer, make_agent, admin) -> None:
    alice, bob = make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)
    shared = _write(alice.client, "Quarterly goals: ship sharing", namespace_id)
    _write(bob.client, "bob's own scratch note")
    grant_id = _grant(alice.client, namespace_id, bob.id, "write").json()["id"]

    def key(**options: object) -> httpx.Response:
        return admin.post(f"/v1/agents/{bob.id}/keys", json=options)

    refused = key(namespace_ids=[alice.namespace_id])
    assert refused.status_code == 422 and refused.json()["code"] == "namespace_not_shared"
    missing = key(namespace_ids=["ns_missing"])
    assert missing.status_code == 422 and missing.json()["code"] == "namespace_not_found"

    limited = key(namespace_ids=[namespace_id], read_only=True)
    assert limited.status_code == 201
    with server.client(limited.json()["key"]) as client:
        assert [m["id"] for m in client.get("/v1/memories").json()["data"]] == [shared["id"]]
        hits = client.post("/v1/search", json={"query": "scratch note goals"}).json()["results"]
        assert [h["memory"]["id"] for h in hits] == [shared["id"]]
        assert client.get(f"/v1/namespaces/{bob.namespace_id}").status_code == 404
        refused_write = client.post(
            "/v1/memories", json={"content": "x", "namespace_id": namespace_id}
        )
        assert refused_write.status_code == 403  # the key is read-only; bob's grant is not
        alice.client.delete(f"/v1/namespaces/{namespace_id}/grants/{grant_id}")
        assert client.get(f"/v1/memories/{shared['id']}").status_code == 404
        assert client.get("/v1/memories").json()["data"] == []


def test_audit_shows_grantee_reads_and_writes_with_their_key(make_agent, admin) -> None:
    alice, bob, carol = make_agent(), make_agent(), make_agent()
    namespace_id = _shared_namespace(alice)
    shared = _write(alice.client, "Deploys freeze on the 20th", namespace_id)
    _grant(alice.client, namespace_id, bob.id, "read")
    _grant(alice.client, namespace_id, carol.id, "write")
    alice.client.get(f"/v1/memories/{shared['id']}")  # the owner's own access is not audited
    alice.client.get("/v1/memories")

    bob.client.get(f"/v1/memories/{shared['id']}", headers={"X-Request-ID": "req-bob-1"})
    bob.client.get("/v1/memories")  # the shared fact, plus nothing of bob's own
    _write(bob.client, "bob's own note")  # in his own namespace: not alice's business
    written = _write(carol.client, "Carol: freeze moved to the 21st", namespace_id)
    carol.client.patch(
        f"/v1/memories/{written['id']}", json={"importance": 1.0}, headers={"If-Match": '"1"'}
    )
    carol.client.post(
        "/v1/memories/batch",
        json={
            "memories": [
                {"content": f"carol batch {i}", "namespace_id": namespace_id} for i in range(3)
            ]
        },
    )
    carol.client.delete(f"/v1/memories/{written['id']}")
    admin.get(f"/v1/memories/{shared['id']}")

    trail = alice.client.get(f"/v1/namespaces/{namespace_id}/audit")
    assert trail.status_code == 200
    events = trail.json()["data"]
    assert trail.json()["next_cursor"] is None
    seen = [
        (e["agent_id"], e["key_id"], e["action"], e["operation"], e["memory_count"]) for e in events
    ]
    assert seen == [
        (None, None, "read", "get", 1),
        (carol.id, carol.key_id, "write", "delete", 1),
        (carol.id, carol.key_id, "write", "create", 3),
        (carol.id, carol.key_id, "write", "update", 1),
        (carol.id, carol.key_id, "write", "create", 1),
        (bob.id, bob.key_id, "read", "list", 1),
        (bob.id, bob.key_id, "read", "get", 1),
    ]
    assert {e["namespace_id"] for e in events} == {namespace_id}
    assert events[-1]["request_id"] == "req-bob-1" and events[-1]["created_at"]
    assert "Deploys freeze" not in trail.text  # the trail never holds content

    pages, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = alice.client.get(f"/v1/namespaces/{namespace_id}/audit", params=params).json()
        pages.append([e["id"] for e in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for page in pages for i in page] == [e["id"] for e in events]
    only_bob = alice.client.get(f"/v1/namespaces/{namespace_id}/audit", params={"agent_id": bob.id})
    assert [e["operation"] for e in only_bob.json()["data"]] == ["list", "get"]
    bad = alice.client.get(f"/v1/namespaces/{namespace_id}/audit", params={"cursor": "nope"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"
    assert admin.get(f"/v1/namespaces/{namespace_id}/audit").json()["data"] == events
    assert alice.client.get(f"/v1/namespaces/{alice.namespace_id}/audit").json()["data"] == []
