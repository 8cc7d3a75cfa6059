"""Bad input gets a clear 4xx and stores nothing; rows stored before the rules never break reads.

Each test reproduces an attack on the server: a lone surrogate or NUL in any string, deep or
huge metadata, empty and enormous filters, oversized bodies, and a narrowed key reaching for its
agent's powers. Every one runs on SQLite and on PostgreSQL, with the same answer on both.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import LiveServer, server_settings, serving


def _post_raw(client: httpx.Client, path: str, raw: str) -> httpx.Response:
    """POST a JSON text as written: `\\ud83d` escapes reach the server as lone surrogates."""
    return client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def _stored(client: httpx.Client) -> list[dict]:
    listed = client.get("/v1/memories", params={"status": ["active", "archived", "superseded"]})
    assert listed.status_code == 200, listed.text
    return listed.json()["data"]


@pytest.mark.parametrize(
    "raw",
    [
        '{"content": "poison", "metadata": {"k": "\\ud83d"}}',
        '{"content": "poison", "metadata": {"\\ud83d": 1}}',
        '{"content": "poison \\udfff"}',
        '{"content": "nul\\u0000byte"}',
        '{"content": "x", "user_id": "a\\u0000b"}',
        '{"content": "x", "tags": ["ok", "n\\u0000l"]}',
        '{"content": "x", "metadata": {"deep": [{"n": "\\u0000"}]}}',
    ],
)
def test_unstorable_text_is_refused_before_anything_is_stored(make_agent, raw: str) -> None:
    agent = make_agent()
    response = _post_raw(agent.client, "/v1/memories", raw)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "validation_error"
    assert "NUL" in body["detail"] or "lone surrogate" in body["detail"]
    batch = _post_raw(agent.client, "/v1/memories/batch", f'{{"memories": [{raw}]}}')
    assert batch.status_code == 422
    assert _stored(agent.client) == []


def test_metadata_is_bounded_in_depth_and_size(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    limit = server.settings.max_metadata_depth
    at_limit = agent.client.post("/v1/memories", json={"content": "a", "metadata": _nested(limit)})
    assert at_limit.status_code == 201, at_limit.text
    memory_id = at_limit.json()["memory"]["id"]

    for depth in (limit + 1, 300):
        deep = agent.client.post("/v1/memories", json={"content": "b", "metadata": _nested(depth)})
        assert deep.status_code == 422 and deep.json()["code"] == "metadata_too_deep"
    big = {"blob": "x" * server.settings.max_metadata_bytes}
    huge = agent.client.post("/v1/memories", json={"content": "c", "metadata": big})
    assert huge.status_code == 413 and huge.json()["code"] == "metadata_too_large"
    patched = agent.client.patch(
        f"/v1/memories/{memory_id}",
        json={"metadata": _nested(limit + 1)},
        headers={"If-Match": '"1"'},
    )
    assert patched.status_code == 422 and patched.json()["code"] == "metadata_too_deep"
    assert [m["content"] for m in _stored(agent.client)] == ["a"]


def test_rows_stored_before_the_rules_never_break_a_namespace(
    server: LiveServer, make_agent
) -> None:
    """A lone surrogate and metadata 300 levels deep, as an older version stored them: every
    read path still answers, with the bad text replaced and the deep part kept as JSON text."""
    agent = make_agent()
    poisoned = [
        agent.client.post("/v1/memories", json={"content": c, "kind": "note"}).json()["memory"]
        for c in ("poisoned by a surrogate", "poisoned by depth", "a healthy neighbour")
    ]
    with server.app.state.runtime.db.write() as session:
        surrogates = '{"k": "\\ud83d", "tags": ["\\udc00"], "\\ud800": 1}'
        bad_metadata = (surrogates, json.dumps(_nested(300)))
        for memory, metadata in zip(poisoned[:2], bad_metadata, strict=True):
            session.execute(
                text("UPDATE memory SET metadata = :m WHERE id = :id"),
                {"m": metadata, "id": memory["id"]},
            )

    listed = {m["id"]: m for m in _stored(agent.client)}
    assert len(listed) == 3
    assert listed[poisoned[0]["id"]]["metadata"] == {"k": "\ufffd", "tags": ["\ufffd"], "\ufffd": 1}
    deep = listed[poisoned[1]["id"]]["metadata"]
    for _ in range(64):  # kept as objects down to the readable depth, then as JSON text
        deep = deep["k"]
    assert isinstance(deep, str) and json.loads(deep)["k"]["k"] is not None

    got = agent.client.get(f"/v1/memories/{poisoned[0]['id']}")
    assert got.status_code == 200 and got.json()["metadata"]["k"] == "\ufffd"
    search = agent.client.post("/v1/search", json={"query": "poisoned", "k": 10})
    assert search.status_code == 200 and len(search.json()["results"]) == 3
    context = agent.client.post("/v1/context", json={"query": "poisoned", "budget_tokens": 500})
    assert context.status_code == 200 and "a healthy neighbour" in context.json()["context"]
    for format in ("jsonl", "markdown"):
        export = agent.client.get(
            "/v1/export", params={"namespace_id": agent.namespace_id, "format": format}
        )
        assert export.status_code == 200
        assert "a healthy neighbour" in export.text
    jsonl = agent.client.get("/v1/export", params={"namespace_id": agent.namespace_id}).text
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert records[-1]["type"] == "end"
    assert sum(1 for r in records if r["type"] == "memory") == 3


@pytest.mark.parametrize(
    "params",
    [
        {"kind": ""},
        {"tag": ""},
        {"kind": "Not A Kind"},
        {"tag": [f"t{i}" for i in range(3000)]},
        {"user_id": "a\x00b"},
        {"thread_id": "\x00"},
    ],
    ids=["empty-kind", "empty-tag", "bad-kind", "3000-tags", "nul-user", "nul-thread"],
)
def test_bad_list_filters_get_422(make_agent, params: dict) -> None:
    agent = make_agent()
    response = agent.client.get("/v1/memories", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("validation_error", "invalid_text")
    assert response.json()["detail"]


def test_nul_anywhere_in_the_url_gets_422(make_agent) -> None:
    agent = make_agent()
    for url in ("/v1/memories/mem%00x", "/v1/memories?cursor=%00"):
        response = agent.client.get(url)
        assert response.status_code == 422 and response.json()["code"] == "invalid_text"


@pytest.mark.parametrize(
    "raw",
    [
        '{"query": "q", "user_id": "\\ud800"}',
        '{"query": "q\\u0000"}',
        '{"query": "q", "tags": ["\\udfff"]}',
        '{"query": "q", "namespace_ids": ["ns\\u0000"]}',
    ],
)
def test_unstorable_text_in_search_and_context_filters_gets_422(make_agent, raw: str) -> None:
    agent = make_agent()
    search = _post_raw(agent.client, "/v1/search", raw)
    assert search.status_code == 422 and search.json()["code"] == "validation_error"
    context = _post_raw(agent.client, "/v1/context", raw[:-1] + ', "budget_tokens": 100}')
    assert context.status_code == 422 and context.json()["code"] == "validation_error"


def test_huge_filter_lists_are_refused_at_once(make_agent) -> None:
    agent = make_agent()
    tags = [f"tag-{i}" for i in range(100_000)]
    response = agent.client.post("/v1/search", json={"query": "q", "tags": tags}, timeout=10)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "tags"
    at_limit = agent.client.post("/v1/search", json={"query": "q", "tags": tags[:100]})
    assert at_limit.status_code == 200 and at_limit.json()["results"] == []


@pytest.fixture
def small_body_server(tmp_path, database_url):
    settings = server_settings(
        tmp_path / "var", database_url, max_request_bytes=4096, max_import_bytes=8192
    )
    with serving(settings) as live:
        yield live


def test_oversized_bodies_get_413_without_being_read(small_body_server: LiveServer) -> None:
    with small_body_server.client("not-a-key") as client:
        big = json.dumps({"content": "x" * 5000})
        declared = client.post(
            "/v1/memories", content=big, headers={"Content-Type": "application/json"}
        )
        assert declared.status_code == 413 and declared.json()["code"] == "request_too_large"

        def chunks():  # no Content-Length: the limit is counted as the body streams in
            for _ in range(10):
                yield b" " * 1000

        streamed = client.post(
            "/v1/memories", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413 and streamed.json()["code"] == "request_too_large"
        # an import has a limit of its own: 6000 bytes pass the body check (and fail the key)
        imported = client.post("/v1/import", params={"namespace_id": "ns"}, content=b"{}\n" * 2000)
        assert imported.status_code == 401
        too_big = client.post("/v1/import", params={"namespace_id": "ns"}, content=b"{}\n" * 3000)
        assert too_big.status_code == 413


def test_a_narrowed_key_neither_widens_nor_cuts_its_agents_powers(
    make_agent, admin: httpx.Client, server: LiveServer
) -> None:
    agent = make_agent()
    narrow = admin.post(
        f"/v1/agents/{agent.id}/keys", json={"namespace_ids": [agent.namespace_id]}
    ).json()
    with server.client(narrow["key"]) as client:
        created = client.post("/v1/namespaces", json={"name": "widened"})
        assert created.status_code == 403 and created.json()["code"] == "key_scope_limited"
        revoked = client.delete(f"/v1/keys/{agent.key_id}")
        assert revoked.status_code == 403 and revoked.json()["code"] == "key_scope_limited"
        assert agent.client.get("/v1/me").status_code == 200  # the full key still works
        assert client.post("/v1/memories", json={"content": "inside its scope"}).status_code == 201
        assert client.delete(f"/v1/keys/{narrow['id']}").status_code == 200  # itself: allowed
    names = [n["name"] for n in agent.client.get("/v1/namespaces").json()["data"]]
    assert "widened" not in names
