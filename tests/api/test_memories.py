from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients
from tests.index_probe import index_ids


def _create(client: httpx.Client, **fields: object) -> dict:
    response = client.post("/v1/memories", json=fields)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_written_memory_is_readable_and_immediately_searchable(make_agent) -> None:
    agent = make_agent()
    written = _create(
        agent.client,
        content="Maria is allergic to peanuts",
        kind="fact",
        user_id="maria",
        tags=["health", "food"],
        importance=0.9,
        metadata={"source": "intake form"},
    )
    memory = written["memory"]
    assert written["created"] is True
    assert memory["namespace_id"] == agent.namespace_id
    assert memory["author_agent_id"] == agent.id
    assert memory["version"] == 1 and memory["status"] == "active"
    assert memory["token_count"] > 3 and len(memory["content_hash"]) == 64

    fetched = agent.client.get(f"/v1/memories/{memory['id']}")
    assert fetched.status_code == 200 and fetched.headers["etag"] == '"1"'
    assert fetched.json()["metadata"] == {"source": "intake form"}
    assert fetched.json()["tags"] == ["health", "food"]

    hits = agent.client.post("/v1/search", json={"query": "food allergies", "k": 3}).json()
    assert hits["results"][0]["memory"]["id"] == memory["id"]
    assert 0.2 < hits["results"][0]["similarity"] <= 1.0


def test_client_supplied_created_at_is_kept(make_agent) -> None:
    agent = make_agent()
    when = "2024-03-01T12:00:00+00:00"
    memory = _create(
        agent.client, content="old conversation turn", kind="message", role="user", created_at=when
    )["memory"]
    assert datetime.fromisoformat(memory["created_at"]) == datetime.fromisoformat(when)


def test_same_fact_twice_is_not_duplicated_but_messages_are_kept(make_agent) -> None:
    agent = make_agent()
    first = agent.client.post("/v1/memories", json={"content": "Likes jazz", "kind": "fact"})
    again = agent.client.post("/v1/memories", json={"content": "  likes   JAZZ ", "kind": "fact"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["memory"]["id"] == first.json()["memory"]["id"]
    message = {"content": "ok", "kind": "message", "role": "user", "thread_id": "t1"}
    ids = {_create(agent.client, **message)["memory"]["id"] for _ in range(2)}
    assert len(ids) == 2
    assert len(agent.client.get("/v1/memories").json()["data"]) == 3


def test_keyed_fact_supersedes_previous_value_which_stays_in_history(make_agent) -> None:
    agent = make_agent()
    old = _create(
        agent.client,
        content="Prefers a formal tone",
        kind="preference",
        key="user.preferred_tone",
        user_id="u1",
    )["memory"]
    new = _create(
        agent.client,
        content="Prefers a casual tone",
        kind="preference",
        key="user.preferred_tone",
        user_id="u1",
    )
    assert new["superseded_id"] == old["id"]
    other_user = _create(
        agent.client,
        content="Prefers a formal tone",
        kind="preference",
        key="user.preferred_tone",
        user_id="u2",
    )
    assert other_user["created"] is True and other_user["superseded_id"] is None

    previous = agent.client.get(f"/v1/memories/{old['id']}").json()
    assert previous["status"] == "superseded"
    assert previous["superseded_by"] == new["memory"]["id"]
    served = agent.client.get("/v1/memories", params={"user_id": "u1"}).json()["data"]
    assert [m["id"] for m in served] == [new["memory"]["id"]]
    hits = agent.client.post("/v1/search", json={"query": "formal tone", "user_id": "u1"}).json()
    assert old["id"] not in [h["memory"]["id"] for h in hits["results"]]
    history = agent.client.get(
        "/v1/memories", params={"user_id": "u1", "status": ["active", "superseded"]}
    ).json()["data"]
    assert {m["id"] for m in history} == {old["id"], new["memory"]["id"]}


def test_list_filters_and_cursor_pagination(make_agent) -> None:
    agent = make_agent()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(7):
        _create(
            agent.client,
            content=f"turn {i}",
            kind="message",
            role="user" if i % 2 == 0 else "assistant",
            thread_id="t-even" if i % 2 == 0 else "t-odd",
            tags=["tagged"] if i < 3 else [],
            created_at=(base + timedelta(minutes=i)).isoformat(),
        )
    _create(agent.client, content="a fact", kind="fact")

    pages, cursor = [], None
    while True:
        params = {"limit": 3, "kind": "message"} | ({"cursor": cursor} if cursor else {})
        body = agent.client.get("/v1/memories", params=params).json()
        pages.append([m["content"] for m in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["turn 6", "turn 5", "turn 4"], ["turn 3", "turn 2", "turn 1"], ["turn 0"]]

    def contents(**params: object) -> list[str]:
        return [
            m["content"] for m in agent.client.get("/v1/memories", params=params).json()["data"]
        ]

    assert contents(thread_id="t-odd") == ["turn 5", "turn 3", "turn 1"]
    assert contents(tag="tagged") == ["turn 2", "turn 1", "turn 0"]
    assert contents(kind="fact") == ["a fact"]
    assert contents(
        created_after=(base + timedelta(minutes=2)).isoformat(),
        created_before=(base + timedelta(minutes=4)).isoformat(),
    ) == ["turn 3", "turn 2"]
    bad = agent.client.get("/v1/memories", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


def test_search_respects_filters(make_agent) -> None:
    agent = make_agent()
    _create(
        agent.client, content="The cat sleeps on the sofa", kind="fact", user_id="a", tags=["pets"]
    )
    _create(agent.client, content="The dog sleeps in the garden", kind="fact", user_id="b")
    _create(agent.client, content="Cats like to sleep", kind="note", user_id="a")

    def found(**filters: object) -> list[str]:
        body = agent.client.post("/v1/search", json={"query": "sleeping pets", **filters}).json()
        return sorted(h["memory"]["content"] for h in body["results"])

    assert found(user_id="a") == ["Cats like to sleep", "The cat sleeps on the sofa"]
    assert found(kinds=["fact"]) == ["The cat sleeps on the sofa", "The dog sleeps in the garden"]
    assert found(tags=["pets"]) == ["The cat sleeps on the sofa"]
    assert len(found(k=1)) == 1


def test_patch_requires_current_version(make_agent) -> None:
    agent = make_agent()
    memory = _create(agent.client, content="Meeting on Monday", kind="note")["memory"]
    path = f"/v1/memories/{memory['id']}"

    missing = agent.client.patch(path, json={"content": "Meeting on Tuesday"})
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
    malformed = agent.client.patch(path, json={"importance": 1}, headers={"If-Match": "abc"})
    assert malformed.status_code == 422

    updated = agent.client.patch(
        path,
        json={"content": "Meeting on Tuesday", "tags": ["calendar"]},
        headers={"If-Match": '"1"'},
    )
    assert updated.status_code == 200 and updated.headers["etag"] == '"2"'
    assert updated.json()["content"] == "Meeting on Tuesday" and updated.json()["version"] == 2

    stale = agent.client.patch(
        path, json={"content": "Meeting on Friday"}, headers={"If-Match": "1"}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_mismatch"
    assert agent.client.get(path).json()["content"] == "Meeting on Tuesday"

    # the index follows the new content: an edited memory is found by what it now says
    hits = agent.client.post("/v1/search", json={"query": "Tuesday meeting", "k": 1}).json()
    assert hits["results"][0]["memory"]["id"] == memory["id"]
    assert (
        agent.client.get("/v1/memories", params={"tag": "calendar"}).json()["data"][0]["id"]
        == memory["id"]
    )


def test_archived_memories_are_hidden_unless_asked_for(make_agent) -> None:
    agent = make_agent()
    memory = _create(agent.client, content="Project Falcon kicked off in May", kind="fact")[
        "memory"
    ]
    archived = agent.client.patch(
        f"/v1/memories/{memory['id']}", json={"status": "archived"}, headers={"If-Match": "1"}
    )
    assert archived.json()["status"] == "archived"
    assert agent.client.get("/v1/memories").json()["data"] == []
    query = {"query": "when did Falcon start"}
    assert agent.client.post("/v1/search", json=query).json()["results"] == []
    hits = agent.client.post("/v1/search", json=query | {"include_archived": True}).json()
    assert [h["memory"]["id"] for h in hits["results"]] == [memory["id"]]


def test_delete_removes_content_everywhere_and_keeps_the_record(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    memory = _create(agent.client, content="secret code zanzibar", kind="note")["memory"]
    deleted = agent.client.delete(f"/v1/memories/{memory['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["deleted_by"] == agent.id
    assert agent.client.get(f"/v1/memories/{memory['id']}").status_code == 404
    assert agent.client.delete(f"/v1/memories/{memory['id']}").status_code == 404
    hits = agent.client.post("/v1/search", json={"query": "secret code"}).json()["results"]
    assert hits == []

    engine = create_engine(server.settings.resolved_database_url)
    with engine.connect() as connection:
        tombstone = connection.execute(text("SELECT * FROM memory_deletion")).mappings().all()
        remaining = connection.execute(text("SELECT count(*) FROM memory")).scalar_one()
    engine.dispose()
    assert remaining == 0
    assert [t["memory_id"] for t in tombstone] == [memory["id"]]
    assert tombstone[0]["deleted_by_agent_id"] == agent.id
    # a word, not digits: a timestamp's microseconds can hold any four digits
    assert "zanzibar" not in str(dict(tombstone[0]))

    assert memory["id"] not in index_ids(server.settings)


def test_expired_memories_are_not_served_and_are_purged(settings) -> None:
    live = LiveServer(settings.model_copy(update={"expiry_purge_seconds": 1})).start()
    try:
        with live.client(ADMIN_KEY) as admin:
            agent_id = admin.post("/v1/agents", json={"name": "ephemeral"}).json()["id"]
            key = admin.post(f"/v1/agents/{agent_id}/keys", json={}).json()["key"]
        with live.client(key) as agent:
            soon = datetime.now(UTC) + timedelta(seconds=4)
            memory = _create(
                agent, content="temporary door code 1234", kind="note", expires_at=soon.isoformat()
            )["memory"]
            kept = _create(agent, content="permanent note", kind="note")["memory"]
            assert agent.get(f"/v1/memories/{memory['id']}").status_code == 200
            time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
            assert agent.get(f"/v1/memories/{memory['id']}").status_code == 404
            assert [m["id"] for m in agent.get("/v1/memories").json()["data"]] == [kept["id"]]
            hits = agent.post("/v1/search", json={"query": "door code"}).json()["results"]
            assert memory["id"] not in [h["memory"]["id"] for h in hits]
            engine = create_engine(settings.resolved_database_url)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with engine.connect() as connection:
                    ids = connection.execute(text("SELECT id FROM memory")).scalars().all()
                    purged = (
                        connection.execute(text("SELECT memory_id FROM memory_deletion"))
                        .scalars()
                        .all()
                    )
                if ids == [kept["id"]]:
                    break
                time.sleep(0.2)
            engine.dispose()
            assert ids == [kept["id"]] and purged == [memory["id"]]
    finally:
        live.stop()
        release_chroma_clients()


def test_batch_is_all_or_nothing(make_agent) -> None:
    agent = make_agent()
    good = {"content": "fine", "kind": "note"}
    response = agent.client.post(
        "/v1/memories/batch",
        json={"memories": [good, {"content": "no role", "kind": "message"}]},
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    assert "memories.1" in response.json()["detail"]
    other = agent.client.post(
        "/v1/memories/batch",
        json={"memories": [good, {"content": "elsewhere", "namespace_id": "ns_nope"}]},
    )
    assert other.status_code == 404
    assert agent.client.get("/v1/memories").json()["data"] == []

    many = [{"content": f"fact number {i}", "kind": "fact"} for i in range(40)] + [good, good]
    created = agent.client.post("/v1/memories/batch", json={"memories": many})
    assert created.status_code == 201
    assert created.json()["created"] == 41 and created.json()["deduplicated"] == 1
    assert len(agent.client.get("/v1/memories", params={"limit": 100}).json()["data"]) == 41


def test_limits_give_413(make_agent, settings) -> None:
    agent = make_agent()
    huge = "x" * (settings.max_content_chars + 1)
    response = agent.client.post("/v1/memories", json={"content": huge})
    assert response.status_code == 413 and response.json()["code"] == "content_too_large"
    batch = [{"content": f"m{i}"} for i in range(settings.max_batch_size + 1)]
    response = agent.client.post("/v1/memories/batch", json={"memories": batch})
    assert response.status_code == 413 and response.json()["code"] == "batch_too_large"
    assert agent.client.get("/v1/memories").json()["data"] == []


def test_validation_errors_are_422_with_code_and_detail(make_agent) -> None:
    agent = make_agent()
    cases = [
        {"content": ""},
        {"content": "   "},
        {"content": "x", "importance": 1.5},
        {"content": "x", "kind": "Not A Kind"},
        {"content": "x", "kind": "summary"},
        {"content": "x", "kind": "fact", "role": "user"},
        {"content": "x", "unknown_field": 1},
        {"content": "x", "expires_at": "2000-01-01T00:00:00Z"},
    ]
    for body in cases:
        response = agent.client.post("/v1/memories", json=body)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error" and response.json()["detail"]
    not_json = agent.client.post(
        "/v1/memories", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert agent.client.get("/v1/memories").json()["data"] == []


def test_idempotent_retry_returns_first_response_without_writing_twice(make_agent) -> None:
    agent = make_agent()
    body = {"content": "user said hello", "kind": "message", "role": "user"}
    headers = {"Idempotency-Key": "retry-1"}
    first = agent.client.post("/v1/memories", json=body, headers=headers)
    second = agent.client.post("/v1/memories", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("idempotent-replayed") == "true"
    assert len(agent.client.get("/v1/memories").json()["data"]) == 1

    reused = agent.client.post("/v1/memories", json=body | {"content": "other"}, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"

    # keys are per caller: another agent's identical key is its own
    other = make_agent()
    assert other.client.post("/v1/memories", json=body, headers=headers).status_code == 201


def test_failed_request_does_not_burn_its_idempotency_key(make_agent) -> None:
    agent = make_agent()
    headers = {"Idempotency-Key": "k-after-failure"}
    failed = agent.client.post(
        "/v1/memories", json={"content": "x", "namespace_id": "ns_missing"}, headers=headers
    )
    assert failed.status_code == 404
    ok = agent.client.post("/v1/memories", json={"content": "x"}, headers=headers)
    assert ok.status_code == 201
