"""Every endpoint that takes an id or a scope, called by every kind of caller, and its answer.

Callers of one shared namespace: its owner, the admin, a reader, a writer, a stranger, and an agent
whose grant was revoked. Strangers and revoked agents must get exactly the answer a missing id
gets, and no body they receive may hold the namespace's content, ids or counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import httpx

SECRET = "The launch code for project Bluebird is 4417"
MISSING_MEMORY = "mem_" + "0" * 24
MISSING_NAMESPACE = "ns_" + "0" * 24
MISSING_GRANT = "grt_" + "0" * 24

CALLERS = ("owner", "admin", "reader", "writer", "stranger", "revoked")
OWNER_LIKE = {
    "get_memory": 200,
    "update_memory": 200,
    "delete_memory": 200,
    "list_memories": 200,
    "search": 200,
    "create_memory": 201,
    "batch": 201,
    "get_namespace": 200,
    "list_grants": 200,
    "create_grant": 201,
    "revoke_grant": 200,
    "audit": 200,
}
MANAGING = {"list_grants": 403, "create_grant": 403, "revoke_grant": 403, "audit": 403}
WRITING = {"update_memory": 403, "delete_memory": 403, "create_memory": 403, "batch": 403}
EXPECTED: dict[str, dict[str, int]] = {
    "owner": OWNER_LIKE,
    "admin": OWNER_LIKE,
    "writer": OWNER_LIKE | MANAGING,
    "reader": OWNER_LIKE | MANAGING | WRITING,
    "stranger": dict.fromkeys(OWNER_LIKE, 404),
    "revoked": dict.fromkeys(OWNER_LIKE, 404),
}


@dataclass
class World:
    owner: httpx.Client
    namespace_id: str
    memory_id: str
    make_target: Callable[[], str]


def _memory(world: World, content: str) -> str:
    response = world.owner.post(
        "/v1/memories",
        json={"content": content, "kind": "fact", "namespace_id": world.namespace_id},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["memory"]["id"])


def _grant(owner: httpx.Client, namespace_id: str, agent_id: str, permission: str) -> str:
    response = owner.post(
        f"/v1/namespaces/{namespace_id}/grants",
        json={"agent_id": agent_id, "permission": permission},
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


# Each case: (call as `caller` on the real world, the same call with ids that do not exist).
Call = Callable[[httpx.Client, World, str], tuple[httpx.Response, httpx.Response]]


def _get_memory(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    return c.get(f"/v1/memories/{w.memory_id}"), c.get(f"/v1/memories/{MISSING_MEMORY}")


def _update_memory(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    target = _memory(w, f"a fact for {who} to edit")
    change, if_match = {"tags": ["edited"]}, {"If-Match": '"1"'}
    return (
        c.patch(f"/v1/memories/{target}", json=change, headers=if_match),
        c.patch(f"/v1/memories/{MISSING_MEMORY}", json=change, headers=if_match),
    )


def _delete_memory(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    target = _memory(w, f"a fact for {who} to delete")
    return c.delete(f"/v1/memories/{target}"), c.delete(f"/v1/memories/{MISSING_MEMORY}")


def _list_memories(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    return (
        c.get("/v1/memories", params={"namespace_id": w.namespace_id}),
        c.get("/v1/memories", params={"namespace_id": MISSING_NAMESPACE}),
    )


def _search(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    body = {"query": "launch code for Bluebird", "k": 50}
    return (
        c.post("/v1/search", json={**body, "namespace_ids": [w.namespace_id]}),
        c.post("/v1/search", json={**body, "namespace_ids": [MISSING_NAMESPACE]}),
    )


def _create_memory(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    body = {"content": f"a note written by {who}", "kind": "note"}
    return (
        c.post("/v1/memories", json={**body, "namespace_id": w.namespace_id}),
        c.post("/v1/memories", json={**body, "namespace_id": MISSING_NAMESPACE}),
    )


def _batch(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    def body(namespace_id: str) -> dict[str, object]:
        return {"memories": [{"content": f"batched by {who}", "namespace_id": namespace_id}]}

    return (
        c.post("/v1/memories/batch", json=body(w.namespace_id)),
        c.post("/v1/memories/batch", json=body(MISSING_NAMESPACE)),
    )


def _get_namespace(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    return c.get(f"/v1/namespaces/{w.namespace_id}"), c.get(f"/v1/namespaces/{MISSING_NAMESPACE}")


def _list_grants(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    return (
        c.get(f"/v1/namespaces/{w.namespace_id}/grants"),
        c.get(f"/v1/namespaces/{MISSING_NAMESPACE}/grants"),
    )


def _create_grant(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    body = {"agent_id": w.make_target(), "permission": "read"}
    return (
        c.post(f"/v1/namespaces/{w.namespace_id}/grants", json=body),
        c.post(f"/v1/namespaces/{MISSING_NAMESPACE}/grants", json=body),
    )


def _revoke_grant(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    grant_id = _grant(w.owner, w.namespace_id, w.make_target(), "read")
    return (
        c.delete(f"/v1/namespaces/{w.namespace_id}/grants/{grant_id}"),
        c.delete(f"/v1/namespaces/{MISSING_NAMESPACE}/grants/{MISSING_GRANT}"),
    )


def _audit(c: httpx.Client, w: World, who: str) -> tuple[httpx.Response, httpx.Response]:
    return (
        c.get(f"/v1/namespaces/{w.namespace_id}/audit"),
        c.get(f"/v1/namespaces/{MISSING_NAMESPACE}/audit"),
    )


CASES: dict[str, Call] = {
    "get_memory": _get_memory,
    "update_memory": _update_memory,
    "delete_memory": _delete_memory,
    "list_memories": _list_memories,
    "search": _search,
    "create_memory": _create_memory,
    "batch": _batch,
    "get_namespace": _get_namespace,
    "list_grants": _list_grants,
    "create_grant": _create_grant,
    "revoke_grant": _revoke_grant,
    "audit": _audit,
}
ERROR_CODES = {403: "permission_denied"}


ID = re.compile(r"\b(?:mem|ns|grt|agt|key)_[0-9a-f]{24}\b")


def _assert_same_as_missing(response: httpx.Response, missing: httpx.Response) -> None:
    """Same status and body as for ids that do not exist; the only ids in it are the caller's."""
    supplied = str(response.request.url) + response.request.content.decode()
    assert set(ID.findall(response.text)) <= set(ID.findall(supplied)), response.text
    assert response.status_code == missing.status_code
    assert ID.sub("<id>", response.text) == ID.sub("<id>", missing.text)


def test_every_caller_gets_exactly_its_due_on_every_endpoint(make_agent, admin) -> None:
    owner, reader, writer = make_agent("owner"), make_agent("reader"), make_agent("writer")
    stranger, revoked = make_agent("stranger"), make_agent("revoked")
    namespace_id = owner.client.post("/v1/namespaces", json={"name": "bluebird"}).json()["id"]
    world = World(
        owner=owner.client,
        namespace_id=namespace_id,
        memory_id="",
        make_target=lambda: make_agent().id,
    )
    world.memory_id = _memory(world, SECRET)
    _grant(owner.client, namespace_id, reader.id, "read")
    _grant(owner.client, namespace_id, writer.id, "write")
    revoked_grant = _grant(owner.client, namespace_id, revoked.id, "write")
    written_before = revoked.client.post(
        "/v1/memories", json={"content": "revoked agent's own note", "namespace_id": namespace_id}
    )
    assert written_before.status_code == 201
    assert owner.client.delete(f"/v1/namespaces/{namespace_id}/grants/{revoked_grant}").is_success
    clients = {
        "owner": owner.client,
        "admin": admin,
        "reader": reader.client,
        "writer": writer.client,
        "stranger": stranger.client,
        "revoked": revoked.client,
    }

    failures = []
    for who in CALLERS:
        for name, call in CASES.items():
            response, missing = call(clients[who], world, who)
            expected = EXPECTED[who][name]
            if response.status_code != expected:
                failures.append((who, name, expected, response.status_code, response.text))
                continue
            if expected in ERROR_CODES:
                assert response.json()["code"] == ERROR_CODES[expected], (who, name)
            if who in ("stranger", "revoked"):
                _assert_same_as_missing(response, missing)
                assert SECRET not in response.text and "Bluebird" not in response.text
    assert not failures, "\n".join(map(str, failures))


def test_readers_see_the_shared_content_and_strangers_see_nothing(make_agent) -> None:
    owner, reader, stranger = make_agent(), make_agent(), make_agent()
    namespace_id = owner.client.post("/v1/namespaces", json={"name": "shared"}).json()["id"]
    world = World(owner.client, namespace_id, "", lambda: "")
    memory_id = world.memory_id = _memory(world, SECRET)
    private = owner.client.post("/v1/memories", json={"content": "owner's private diary"}).json()
    _grant(owner.client, namespace_id, reader.id, "read")

    got = reader.client.get(f"/v1/memories/{memory_id}").json()
    assert got["content"] == SECRET and got["namespace_id"] == namespace_id
    listed = reader.client.get("/v1/memories", params={"namespace_id": namespace_id}).json()
    assert [m["id"] for m in listed["data"]] == [memory_id]
    hits = reader.client.post("/v1/search", json={"query": "Bluebird launch code"}).json()
    assert memory_id in [h["memory"]["id"] for h in hits["results"]]
    assert private["memory"]["id"] not in str(hits) and "diary" not in str(listed)

    # Without naming the namespace, a stranger's reads come back empty, not partial.
    for response in (
        stranger.client.get("/v1/memories"),
        stranger.client.post("/v1/search", json={"query": "Bluebird launch code"}),
        stranger.client.get("/v1/namespaces"),
    ):
        assert response.status_code == 200
        assert SECRET not in response.text and memory_id not in response.text
        assert namespace_id not in response.text
    assert stranger.client.get("/v1/memories").json()["data"] == []
    assert stranger.client.post("/v1/search", json={"query": "launch"}).json()["results"] == []
    assert stranger.client.get("/v1/namespaces").json()["count"] == 1  # only its own default
