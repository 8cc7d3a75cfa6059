from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from memory_server.auth import hash_api_key
from tests.conftest import LiveServer


def test_admin_creates_agent_with_private_default_namespace(admin: httpx.Client) -> None:
    response = admin.post("/v1/agents", json={"name": "planner"})
    assert response.status_code == 201
    agent = response.json()
    assert agent["name"] == "planner" and agent["id"].startswith("agt_")
    namespaces = admin.get("/v1/namespaces").json()["data"]
    default = [ns for ns in namespaces if ns["id"] == agent["default_namespace_id"]]
    assert default and default[0]["owner_agent_id"] == agent["id"] and default[0]["is_default"]


def test_duplicate_agent_name_is_a_conflict(admin: httpx.Client) -> None:
    assert admin.post("/v1/agents", json={"name": "twin"}).status_code == 201
    response = admin.post("/v1/agents", json={"name": "twin"})
    assert response.status_code == 409
    assert response.json()["code"] == "agent_exists"


def test_key_secret_is_shown_once_and_stored_hashed(
    server: LiveServer, admin: httpx.Client
) -> None:
    agent = admin.post("/v1/agents", json={"name": "keyed"}).json()
    created = admin.post(f"/v1/agents/{agent['id']}/keys", json={"name": "ci"})
    secret = created.json()["key"]
    listed = admin.get(f"/v1/agents/{agent['id']}/keys").json()["data"]
    assert [k["id"] for k in listed] == [created.json()["id"]]
    assert "key" not in listed[0] and secret not in str(listed)
    engine = create_engine(server.settings.resolved_database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT key_hash, prefix FROM api_key")).all()
    engine.dispose()
    assert [row[0] for row in stored] == [hash_api_key(secret)]
    assert secret not in str(stored)
    with server.client(secret) as client:
        me = client.get("/v1/me").json()
    assert me["agent_id"] == agent["id"] and me["is_admin"] is False


def test_requests_without_a_valid_key_are_rejected(server: LiveServer) -> None:
    with server.client(None) as anonymous:
        response = anonymous.get("/v1/memories")
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
        assert anonymous.get("/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    with server.client("mk_not-a-real-key") as forged:
        response = forged.get("/v1/memories")
        assert response.status_code == 401
        assert response.json()["code"] == "invalid_api_key"


def test_agents_cannot_use_admin_endpoints(make_agent, admin: httpx.Client) -> None:
    agent = make_agent()
    for method, path, body in [
        ("POST", "/v1/agents", {"name": "sneaky"}),
        ("GET", "/v1/agents", None),
        ("POST", f"/v1/agents/{agent.id}/keys", {}),
        ("GET", f"/v1/agents/{agent.id}/keys", None),
    ]:
        response = agent.client.request(method, path, json=body)
        assert response.status_code == 403, (method, path)
        assert response.json()["code"] == "admin_required"
    assert "sneaky" not in [a["name"] for a in admin.get("/v1/agents").json()["data"]]


def test_revoked_key_is_refused_on_the_next_request(make_agent, admin: httpx.Client) -> None:
    agent = make_agent()
    assert agent.client.get("/v1/memories").status_code == 200
    revoked = admin.delete(f"/v1/keys/{agent.key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    response = agent.client.get("/v1/memories")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_revoked"


def test_agent_may_revoke_its_own_key_but_not_anothers(make_agent) -> None:
    alice, bob = make_agent(), make_agent()
    response = bob.client.delete(f"/v1/keys/{alice.key_id}")
    assert response.status_code == 404
    assert alice.client.get("/v1/me").status_code == 200
    assert alice.client.delete(f"/v1/keys/{alice.key_id}").status_code == 200
    assert alice.client.get("/v1/me").status_code == 401


def test_key_expires_at_its_expiry(make_agent) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=4)
    agent = make_agent(expires_at=expires.isoformat())
    assert agent.client.get("/v1/me").status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    response = agent.client.get("/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "api_key_expired"


def test_read_only_key_reads_but_cannot_write(make_agent, admin: httpx.Client) -> None:
    writer = make_agent()
    stored = writer.client.post("/v1/memories", json={"content": "the sky is blue", "kind": "fact"})
    assert stored.status_code == 201
    key = admin.post(f"/v1/agents/{writer.id}/keys", json={"read_only": True}).json()["key"]
    with httpx.Client(
        base_url=str(writer.client.base_url), headers={"Authorization": f"Bearer {key}"}
    ) as reader:
        assert reader.get(f"/v1/memories/{stored.json()['memory']['id']}").status_code == 200
        response = reader.post("/v1/memories", json={"content": "nope", "kind": "fact"})
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
    assert len(writer.client.get("/v1/memories").json()["data"]) == 1


def test_key_limited_to_namespaces_sees_only_those(make_agent, admin: httpx.Client) -> None:
    agent = make_agent()
    work = agent.client.post("/v1/namespaces", json={"name": "work"}).json()
    agent.client.post("/v1/memories", json={"content": "private default note"})
    agent.client.post("/v1/memories", json={"content": "work note", "namespace_id": work["id"]})
    key = admin.post(f"/v1/agents/{agent.id}/keys", json={"namespace_ids": [work["id"]]}).json()[
        "key"
    ]
    with httpx.Client(
        base_url=str(agent.client.base_url), headers={"Authorization": f"Bearer {key}"}
    ) as limited:
        contents = [m["content"] for m in limited.get("/v1/memories").json()["data"]]
        assert contents == ["work note"]
        assert limited.get(f"/v1/namespaces/{agent.namespace_id}").status_code == 404
        assert [ns["id"] for ns in limited.get("/v1/namespaces").json()["data"]] == [work["id"]]
