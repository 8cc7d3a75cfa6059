"""Contract tests of the event log, export and import through both clients, on the real server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from memory_client import (
    AsyncMemoryClient,
    BadRequestError,
    EventPublic,
    EventsPublic,
    ImportConflict,
    ImportResult,
    MemoryClient,
    NotFoundError,
)

from tests.sdk.loopback_http import Reply, script

Sdk = Callable[..., Any]


def test_list_and_iterate_events(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    written = [client.create_memory(f"Fact {i}", kind="fact").memory for i in range(5)]
    client.delete_memory(written[0].id)

    page = client.list_events(limit=2)
    assert isinstance(page, EventsPublic) and page.has_more
    assert all(isinstance(e, EventPublic) for e in page.data)
    assert [(e.type, e.memory_id) for e in page.data] == [
        ("created", written[0].id),
        ("created", written[1].id),
    ]
    assert page.next_cursor == str(page.data[-1].id)
    everything = client.iter_events(page_size=2)
    assert [e.type for e in everything] == ["created"] * 5 + ["deleted"]
    assert all(
        (e.actor, e.agent_id, e.key_id) == (agent.id, agent.id, agent.key_id) for e in everything
    )
    assert everything[-1].details["reason"] == "deleted"
    rest = client.iter_events(after=everything[3].id, namespace_ids=agent.namespace_id)
    assert [e.id for e in rest] == [e.id for e in everything[4:]]
    assert client.list_events(after=everything[-1].id).data == []
    with pytest.raises(BadRequestError) as caught:
        client.list_events(after="not-a-cursor")
    assert (caught.value.status_code, caught.value.code) == (400, "invalid_cursor")
    with pytest.raises(NotFoundError):
        client.list_events(namespace_ids="ns_someone_elses")


def test_stream_events_until_access_is_revoked(
    server: Any, sdk: Sdk, make_agent: Any, runner: Any
) -> None:
    alice, bob = make_agent(), make_agent()
    owner = sdk(server.url, alice.key)
    team = owner.create_namespace("team")
    grant = owner.create_grant(team.id, bob.id, "read")
    reader = sdk(server.url, bob.key)
    start = reader.list_events(namespace_ids=team.id).next_cursor
    first = owner.create_memory("Standup moved to 9:30", namespace_id=team.id).memory
    second = owner.create_memory("Retro on Friday", namespace_id=team.id).memory
    client = reader.client
    seen: list[EventPublic] = []

    def revoke() -> None:
        response = alice.client.delete(f"/v1/namespaces/{team.id}/grants/{grant.id}")
        assert response.status_code == 200

    def consume_sync(stream: Any) -> None:
        for event in stream:
            seen.append(event)
            if len(seen) == 2:
                revoke()

    async def consume_async(stream: Any) -> None:
        async for event in stream:
            seen.append(event)
            if len(seen) == 2:
                revoke()

    stream = client.stream_events(after=start, namespace_ids=[team.id])
    with pytest.raises(NotFoundError) as caught:
        if isinstance(client, AsyncMemoryClient):
            runner.run(consume_async(stream))
        else:
            assert isinstance(client, MemoryClient)
            consume_sync(stream)
    assert caught.value.code == "namespace_not_found"
    assert [(e.type, e.memory_id) for e in seen] == [
        ("created", first.id),
        ("created", second.id),
    ]

    # resuming after the first event (as a reconnecting client does) gives the second
    mine = sdk(server.url, alice.key).client
    resumed = mine.stream_events(last_event_id=seen[0].id, namespace_ids=team.id)

    async def first_async() -> EventPublic:
        try:
            async for event in resumed:
                return event
        finally:
            await resumed.aclose()
        raise AssertionError("the stream ended")

    if isinstance(mine, AsyncMemoryClient):
        event = runner.run(first_async())
    else:
        event = next(resumed)
        resumed.close()
    assert (event.id, event.memory_id) == (seen[1].id, second.id)


def test_export_and_import_records(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    client.create_memory("Prefers tea", kind="preference", key="drink")
    client.create_memory("Prefers coffee", kind="preference", key="drink")
    lines = client.export(agent.namespace_id)
    records = [json.loads(line) for line in lines if line]
    assert [r["type"] for r in records] == ["header", "memory", "memory", "end"]
    assert all("embedding" not in r for r in records)
    embedded = client.export(agent.namespace_id, include_embeddings=True)
    assert len(json.loads(embedded[1])["embedding"]) == 384
    markdown = "\n".join(client.export(agent.namespace_id, format="markdown"))
    assert markdown.startswith("# Memory: default") and "**current**" in markdown

    again = client.import_records(agent.namespace_id, lines)
    assert isinstance(again, ImportResult)
    assert (again.created, again.skipped, again.conflicts) == (0, 2, [])

    other = client.create_namespace("copy")
    now = datetime.now(UTC).isoformat()
    result = client.import_records(
        other.id,
        [
            records[0],
            {"type": "memory", "memory": {"id": "mem_sdk_1", "content": "New", "created_at": now}},
            lines[1],
        ],
        idempotency_key="import-once",
    )
    assert (result.created, result.skipped) == (1, 0)
    (conflict,) = result.conflicts
    assert isinstance(conflict, ImportConflict)
    assert (conflict.line, conflict.record, conflict.id) == (
        3,
        "memory",
        records[1]["memory"]["id"],
    )
    assert client.get_memory("mem_sdk_1").namespace_id == other.id

    with pytest.raises(BadRequestError) as caught:
        client.import_records(other.id, [records[0], "{oops"])
    error = caught.value
    assert (error.status_code, error.code) == (400, "invalid_import_line")
    assert error.errors and error.errors[0]["loc"] == ["line", 2]
    with pytest.raises(NotFoundError):
        client.export("ns_someone_elses")


def test_stream_events_reconnects_with_last_event_id(sdk: Sdk, loopback: Any, runner: Any) -> None:
    """A stream the server ends is reopened after its `retry:` delay, resuming from the last id."""

    def frames(event_id: int) -> bytes:
        event = {
            "id": event_id,
            "type": "created",
            "namespace_id": "ns_1",
            "memory_id": f"mem_{event_id}",
            "actor": "agt_1",
            "agent_id": "agt_1",
            "key_id": "key_1",
            "details": {"kind": "note"},
            "created_at": "2024-05-01T00:00:00Z",
        }
        return (
            f"retry: 10\n: connected\n\n: heartbeat\n\nid: {event_id}\n"
            f"data: {json.dumps(event)}\n\n"
        ).encode()

    sse = {"Content-Type": "text/event-stream"}
    server = loopback(
        script(
            Reply(200, headers=sse, raw=frames(41)),
            Reply(200, headers=sse, raw=frames(42)),
            Reply(
                200,
                headers=sse,
                raw=b'event: error\ndata: {"status": 404, '
                b'"code": "namespace_not_found", "detail": "gone"}\n\n',
            ),
        )
    )
    client = sdk(server.url, "mk_test").client
    seen: list[EventPublic] = []

    async def consume_async() -> None:
        async for event in client.stream_events(after=40, namespace_ids=["ns_1"]):
            seen.append(event)

    with pytest.raises(NotFoundError) as caught:
        if isinstance(client, AsyncMemoryClient):
            runner.run(consume_async())
        else:
            seen.extend(client.stream_events(after=40, namespace_ids=["ns_1"]))
    assert caught.value.detail == "gone"
    assert [(e.id, e.memory_id, e.details) for e in seen] == [
        (41, "mem_41", {"kind": "note"}),
        (42, "mem_42", {"kind": "note"}),
    ]
    first, second, third = server.seen
    assert first.target == "/v1/events/stream?after=40&namespace_id=ns_1"
    assert "last-event-id" not in first.headers
    assert first.headers["accept"] == "text/event-stream"
    assert second.target == "/v1/events/stream?namespace_id=ns_1"
    assert (second.headers["last-event-id"], third.headers["last-event-id"]) == ("41", "42")
