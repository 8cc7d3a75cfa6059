"""Concurrent writers through real HTTP: nothing lost, one active value per key, no duplicates."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import LiveServer

WRITERS = 8


def _parallel(server: LiveServer, key: str, bodies: list[dict]) -> list[httpx.Response]:
    def send(body: dict) -> httpx.Response:
        with server.client(key) as client:
            return client.post("/v1/memories", json=body)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        return list(pool.map(send, bodies))


def test_concurrent_writers_lose_nothing(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    bodies = [
        {
            "content": f"turn {i} of the conversation",
            "kind": "message",
            "role": "user",
            "thread_id": f"t{i % 3}",
        }
        for i in range(48)
    ]
    responses = _parallel(server, agent.key, bodies)
    assert [r.status_code for r in responses] == [201] * len(bodies)
    listed = agent.client.get("/v1/memories", params={"limit": 100}).json()["data"]
    assert sorted(m["content"] for m in listed) == sorted(b["content"] for b in bodies)
    hits = agent.client.post(
        "/v1/search", json={"query": "turn 17 of the conversation", "k": 1}
    ).json()["results"]
    assert hits[0]["memory"]["content"] == "turn 17 of the conversation"


def test_concurrent_writes_to_one_key_leave_exactly_one_active_value(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    bodies = [
        {
            "content": f"favourite colour is shade {i}",
            "kind": "preference",
            "key": "user.favourite_colour",
            "user_id": "u1",
        }
        for i in range(16)
    ]
    responses = _parallel(server, agent.key, bodies)
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    history = agent.client.get(
        "/v1/memories", params={"user_id": "u1", "status": ["active", "superseded"], "limit": 100}
    ).json()["data"]
    assert len(history) == 16
    active = [m for m in history if m["status"] == "active"]
    assert len(active) == 1
    # the superseded chain is a single line ending at the active value
    successor = {m["id"]: m["superseded_by"] for m in history if m["status"] == "superseded"}
    assert len(successor) == 15 and set(successor.values()) <= {m["id"] for m in history}
    assert active[0]["id"] in successor.values()
    assert len(set(successor.values())) == 15


def test_concurrent_identical_facts_are_stored_once(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    body = {"content": "The deploy freeze starts Friday", "kind": "fact"}
    responses = _parallel(server, agent.key, [body] * 12)
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["memory"]["id"] for r in responses}) == 1
    assert len(agent.client.get("/v1/memories").json()["data"]) == 1
