"""The event log: every change is an event, in order, with its actor, written with the change;
readers see only namespaces they may read now; the SSE stream pushes the same events."""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from memory_server.config import Settings
from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients, server_settings
from tests.index_probe import drop_index


@pytest.fixture
def settings(tmp_path: Any, database_url: str | None) -> Settings:
    """Streams poll often and send a heartbeat every 0.3 s, so new events arrive quickly and a
    test's reader thread, blocked on the next line, notices soon that it was closed."""
    return server_settings(
        tmp_path / "var",
        database_url,
        event_stream_poll_seconds=0.1,
        event_stream_heartbeat_seconds=0.3,
    )


def _events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _write(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/memories", json=fields)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _team(owner: Any, name: str = "team") -> str:
    response = owner.client.post("/v1/namespaces", json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _runtime(server: LiveServer) -> Any:
    assert server._server is not None
    return server.app.state.runtime


def test_every_change_is_an_event_in_order_with_its_actor(make_agent) -> None:
    alice, bob = make_agent("alice"), make_agent("bob")
    ns = alice.namespace_id
    secret = "Dana's door code is 4711"
    old = _write(alice.client, content=secret, kind="fact", key="door.code", user_id="dana")
    new = _write(
        alice.client,
        content="Dana's door code is 9000",
        kind="fact",
        key="door.code",
        user_id="dana",
    )
    assert new["superseded_id"] == old["memory"]["id"]
    # the first value again: a new memory that supersedes the second
    _write(alice.client, content=secret, kind="fact", key="door.code", user_id="dana")
    note = _write(alice.client, content="Dana likes tulips", user_id="dana")["memory"]
    patched = alice.client.patch(
        f"/v1/memories/{note['id']}", json={"tags": ["flowers"]}, headers={"If-Match": '"1"'}
    )
    assert patched.status_code == 200
    archived = alice.client.patch(
        f"/v1/memories/{note['id']}", json={"status": "archived"}, headers={"If-Match": '"2"'}
    )
    assert archived.status_code == 200
    grant = alice.client.post(
        f"/v1/namespaces/{ns}/grants", json={"agent_id": bob.id, "permission": "write"}
    ).json()
    by_bob = _write(bob.client, content="Bob was here", namespace_id=ns)["memory"]
    assert alice.client.delete(f"/v1/memories/{by_bob['id']}").status_code == 200
    assert alice.client.delete(f"/v1/namespaces/{ns}/grants/{grant['id']}").status_code == 200
    forgotten = alice.client.delete("/v1/users/dana/memories", params={"namespace_id": ns})
    assert forgotten.status_code == 200

    events = _events(alice.client)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    seen = [(e["type"], e["memory_id"], e["actor"]) for e in events]
    old_id, new_id = old["memory"]["id"], new["memory"]["id"]
    third_id = [e for e in events if e["type"] == "created"][2]["memory_id"]
    assert seen[:9] == [
        ("created", old_id, alice.id),
        ("superseded", old_id, alice.id),
        ("created", new_id, alice.id),
        ("superseded", new_id, alice.id),  # writing the old value again supersedes the new one
        ("created", third_id, alice.id),
        ("created", note["id"], alice.id),
        ("updated", note["id"], alice.id),
        ("archived", note["id"], alice.id),
        ("shared", None, alice.id),
    ]
    assert seen[9:12] == [
        ("created", by_bob["id"], bob.id),
        ("deleted", by_bob["id"], alice.id),
        ("revoked", None, alice.id),
    ]
    forget = events[12:]
    assert {(e["type"], e["details"]["reason"]) for e in forget} == {("deleted", "forget_user")}
    assert sorted(e["memory_id"] for e in forget) == sorted([old_id, new_id, third_id, note["id"]])
    assert all(e["namespace_id"] == ns for e in events)
    assert all(e["key_id"] == alice.key_id for e in events if e["actor"] == alice.id)
    assert events[1]["details"]["superseded_by"] == new_id
    assert events[0]["details"] == {
        "kind": "fact",
        "version": 1,
        "status": "active",
        "key": "door.code",
    }
    assert events[6]["details"]["fields"] == ["tags"] and events[6]["details"]["version"] == 2
    assert events[8]["details"] == {
        "grant_id": grant["id"],
        "agent_id": bob.id,
        "permission": "write",
    }
    # no content of any kind, and not the user the memories were about
    dump = json.dumps(events)
    assert "door code is" not in dump and "tulips" not in dump and "dana" not in dump
    assert _events(alice.client, after=str(ids[10])) == events[11:]
    page = alice.client.get("/v1/events", params={"limit": 2}).json()
    assert [e["id"] for e in page["data"]] == ids[:2]
    assert page["next_cursor"] == str(ids[1]) and page["has_more"] is True
    end = alice.client.get("/v1/events", params={"after": ids[-1]}).json()
    assert end == {"data": [], "next_cursor": str(ids[-1]), "has_more": False}


def test_summaries_expiry_and_the_system_actor(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    long_ago = datetime.now(UTC) - timedelta(days=30)
    old = [
        {
            "content": " ".join(f"Day {i} of the Porto plan: item {j} settled." for j in range(6)),
            "kind": "message",
            "role": "user",
            "thread_id": "porto",
            "created_at": (long_ago + timedelta(minutes=i)).isoformat(),
        }
        for i in range(4)
    ]
    batch = agent.client.post("/v1/memories/batch", json={"memories": old}).json()
    sources = {r["memory"]["id"] for r in batch["results"]}
    run = agent.client.post("/v1/summaries/run", json={"namespace_id": agent.namespace_id})
    (summary_id,) = run.json()["summary_ids"]
    after = _events(agent.client)[-1]["id"]
    # what the summarizer did, and in the same transaction: the summary, then each source archived
    events = [e for e in _events(agent.client) if e["type"] in ("summarized", "archived")]
    assert [(e["type"], e["actor"]) for e in events] == [("summarized", agent.id)] + [
        ("archived", agent.id)
    ] * 4
    assert events[0]["memory_id"] == summary_id
    assert events[0]["details"]["level"] == 1 and events[0]["details"]["source_count"] == 4
    assert {e["memory_id"] for e in events[1:]} == sources
    assert {e["details"]["summary_id"] for e in events[1:]} == {summary_id}

    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    fleeting = _write(agent.client, content="Gone in a second", expires_at=soon)["memory"]
    time.sleep(1.5)
    assert _runtime(server).memories.purge_expired() == 1
    (created, purged) = _events(agent.client, after=str(after))
    assert (created["type"], created["memory_id"]) == ("created", fleeting["id"])
    assert (purged["type"], purged["memory_id"], purged["actor"]) == (
        "deleted",
        fleeting["id"],
        "system",
    )
    assert (purged["agent_id"], purged["key_id"], purged["details"]["reason"]) == (
        None,
        None,
        "expired",
    )
    deleted = agent.client.delete(f"/v1/memories/{sorted(sources)[0]}").json()
    assert deleted["also_deleted"] == [summary_id]
    tail = _events(agent.client, after=purged["id"])
    assert [(e["memory_id"], e["details"]["reason"]) for e in tail] == [
        (sorted(sources)[0], "deleted"),
        (summary_id, "derived"),
    ]


def test_a_failed_write_leaves_no_event(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    memory = _write(agent.client, content="Standup is at 9:30", kind="fact")["memory"]
    before = _events(agent.client)
    stale = agent.client.patch(
        f"/v1/memories/{memory['id']}", json={"importance": 1}, headers={"If-Match": '"7"'}
    )
    assert stale.status_code == 412
    invalid = agent.client.post("/v1/memories/batch", json={"memories": [{"content": "ok"}, {}]})
    assert invalid.status_code == 422
    drop_index(server.settings)
    failed = agent.client.post("/v1/memories", json={"content": "never stored", "key": "k"})
    assert failed.status_code == 503
    assert _events(agent.client) == before


def test_readers_see_only_namespaces_they_may_read_now(make_agent) -> None:
    alice, bob, mallory = make_agent(), make_agent(), make_agent()
    team = _team(alice)
    _write(alice.client, content="Private to Alice")
    shared = _write(alice.client, content="For the team", namespace_id=team)["memory"]
    grant = alice.client.post(
        f"/v1/namespaces/{team}/grants", json={"agent_id": bob.id, "permission": "read"}
    ).json()
    _write(mallory.client, content="Mallory's own")

    bob_sees = _events(bob.client)
    assert {e["namespace_id"] for e in bob_sees} == {team}
    assert [e["type"] for e in bob_sees] == ["created", "shared"]
    assert bob_sees[0]["memory_id"] == shared["id"]
    assert {e["namespace_id"] for e in _events(mallory.client)} == {mallory.namespace_id}
    for who in (mallory, bob):
        refused = who.client.get("/v1/events", params={"namespace_id": alice.namespace_id})
        assert refused.status_code == 404 and refused.json()["code"] == "namespace_not_found"

    alice.client.delete(f"/v1/namespaces/{team}/grants/{grant['id']}")
    assert _events(bob.client) == []  # old events of the namespace too, on the very next request
    assert bob.client.get("/v1/events", params={"namespace_id": team}).status_code == 404
    assert {e["namespace_id"] for e in _events(alice.client)} == {alice.namespace_id, team}


def test_a_bad_cursor_is_a_400_with_a_code(make_agent) -> None:
    agent = make_agent()
    for cursor in ("abc", "-1", "1.5", "9" * 20):
        response = agent.client.get("/v1/events", params={"after": cursor})
        assert response.status_code == 400, cursor
        assert response.json()["code"] == "invalid_cursor"
    stream = agent.client.get("/v1/events/stream", headers={"Last-Event-ID": "x"})
    assert stream.status_code == 400 and stream.json()["code"] == "invalid_cursor"


# ---- the stream ---------------------------------------------------------------------------------


class Stream:
    """Reads an SSE response in a thread; `next()` returns each parsed frame as a dict."""

    def __init__(self, server: LiveServer, key: str, **options: Any):
        self.frames: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.status: int | None = None
        self._client = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {key}", **options.pop("headers", {})},
            timeout=httpx.Timeout(60, read=None),
        )
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(options,), daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the stream did not open"

    def _read(self, params: dict[str, Any]) -> None:
        try:
            with self._client.stream("GET", "/v1/events/stream", params=params) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                self._ready.set()
                frame: dict[str, Any] = {}
                for line in response.iter_lines():
                    if self._closing.is_set():
                        break
                    if line == "":
                        if frame:
                            self.frames.put(frame)
                        frame = {}
                    elif line.startswith(":"):
                        frame.setdefault("comments", []).append(line[1:].strip())
                    else:
                        name, _, value = line.partition(":")
                        frame[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        finally:
            self._ready.set()
            self.frames.put(None)

    def next(self, timeout: float = 30) -> dict[str, Any] | None:
        """The next frame that is not only a comment; None when the stream ended."""
        while True:
            frame = self.frames.get(timeout=timeout)
            if frame is None or set(frame) - {"comments"}:
                return frame

    def event(self, timeout: float = 30) -> dict[str, Any]:
        """The next frame with data (the opening `retry:` frame is passed over), parsed."""
        frame = self.next(timeout)
        while frame is not None and "data" not in frame:
            frame = self.next(timeout)
        assert frame is not None, "the stream ended"
        data = json.loads(frame["data"])
        assert frame.get("id") == str(data["id"]) or frame.get("event") == "error", frame
        return dict(data)

    def close(self) -> None:
        self._closing.set()  # the reader stops at the next line (a heartbeat at the latest)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the stream reader did not stop"
        self._client.close()


def test_the_stream_delivers_new_events_and_resumes_from_last_event_id(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    before = _write(agent.client, content="Written before the stream opened")["memory"]
    stream = Stream(server, agent.key)
    try:
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        assert stream.next(timeout=5)["retry"] == "2000"  # opened "now": nothing old replayed
        written = _write(agent.client, content="Written while streaming")["memory"]
        event = stream.event()
        assert (event["type"], event["memory_id"], event["actor"]) == (
            "created",
            written["id"],
            agent.id,
        )
        again = _write(agent.client, content="And one more")["memory"]
        assert stream.event()["memory_id"] == again["id"]
    finally:
        stream.close()

    first_id = _events(agent.client)[0]["id"]
    resumed = Stream(server, agent.key, headers={"Last-Event-ID": str(first_id)})
    try:
        assert [resumed.event()["memory_id"] for _ in range(2)] == [written["id"], again["id"]]
    finally:
        resumed.close()
    replay = Stream(server, agent.key, after="0")
    try:
        assert replay.event()["memory_id"] == before["id"]
    finally:
        replay.close()


def test_the_stream_is_filtered_and_ends_when_access_is_revoked(
    server: LiveServer, make_agent
) -> None:
    alice, bob, mallory = make_agent(), make_agent(), make_agent()
    team = _team(alice)
    grant = alice.client.post(
        f"/v1/namespaces/{team}/grants", json={"agent_id": bob.id, "permission": "read"}
    ).json()
    everything = Stream(server, bob.key)
    only_team = Stream(server, bob.key, namespace_id=team)
    stranger = Stream(server, mallory.key)
    try:
        for stream in (everything, only_team, stranger):
            stream.next(timeout=5)  # the opening frame
        _write(alice.client, content="Alice's private note")
        shared = _write(alice.client, content="For the team", namespace_id=team)["memory"]
        for stream in (everything, only_team):
            assert stream.event()["memory_id"] == shared["id"]
        alice.client.delete(f"/v1/namespaces/{team}/grants/{grant['id']}")
        error = only_team.next()
        assert error is not None and error.get("event") == "error"
        assert json.loads(error["data"])["code"] == "namespace_not_found"
        assert only_team.next() is None  # and the stream ends
        _write(alice.client, content="After the revocation", namespace_id=team)
        own = _write(bob.client, content="Bob's own note")["memory"]
        assert everything.event()["memory_id"] == own["id"]  # nothing of the team's in between
        mine = _write(mallory.client, content="Mallory's own note")["memory"]
        assert stranger.event()["memory_id"] == mine["id"]  # the first one Mallory may see
    finally:
        for stream in (everything, only_team, stranger):
            stream.close()
    refused = bob.client.get("/v1/events/stream", params={"namespace_id": team})
    assert refused.status_code == 404


def test_a_quiet_stream_sends_heartbeats_and_ends_when_its_key_is_revoked(
    settings: Any,
) -> None:
    live = LiveServer(settings.model_copy(update={"event_stream_heartbeat_seconds": 0.3})).start()
    try:
        with live.client(ADMIN_KEY) as admin:
            agent = admin.post("/v1/agents", json={"name": "listener"}).json()
            key = admin.post(f"/v1/agents/{agent['id']}/keys", json={}).json()
            stream = Stream(live, key["key"])
            try:
                comments: list[str] = []
                deadline = time.monotonic() + 20
                while "heartbeat" not in comments and time.monotonic() < deadline:
                    frame = stream.frames.get(timeout=10)
                    assert frame is not None
                    comments += frame.get("comments", [])
                assert "heartbeat" in comments
                assert admin.delete(f"/v1/keys/{key['id']}").status_code == 200
                error = stream.next()
                assert error is not None and error.get("event") == "error"
                assert json.loads(error["data"])["code"] == "api_key_revoked"
                assert stream.next() is None
            finally:
                stream.close()
    finally:
        live.stop()
        release_chroma_clients()


def test_an_open_stream_does_not_hold_up_the_server_stopping(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    stream = Stream(server, agent.key)
    try:
        stream.next(timeout=5)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 15
        assert stream.next(timeout=10) is None  # the server ended the stream
    finally:
        stream.close()


def test_a_syncing_reader_misses_no_event_while_many_write(make_agent) -> None:
    """Polling with `after=next_cursor` during concurrent writes collects every event exactly once:
    ids become visible in increasing order (on PostgreSQL thanks to the event lock)."""
    agent = make_agent()
    writers, per_writer = 4, 12
    failures: list[str] = []

    def write(worker: int) -> None:
        with httpx.Client(
            base_url=str(agent.client.base_url), headers=dict(agent.client.headers), timeout=60
        ) as client:
            for i in range(per_writer):
                response = client.post(
                    "/v1/memories", json={"content": f"writer {worker} note {i}", "key": f"k{i}"}
                )
                if response.status_code != 201:
                    failures.append(response.text)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    collected: list[int] = []
    cursor = "0"

    def poll() -> None:
        nonlocal cursor
        response = agent.client.get("/v1/events", params={"after": cursor, "limit": 7})
        assert response.status_code == 200, response.text
        page = response.json()
        collected.extend(e["id"] for e in page["data"])
        cursor = page["next_cursor"]

    while any(thread.is_alive() for thread in threads):
        poll()
        time.sleep(0.05)  # a syncing agent's pace; a tight loop would hit the key's rate limit
    for _ in range(50):
        poll()
    assert failures == []
    everything = [e["id"] for e in _events(agent.client, limit=1000)]
    # 48 writes; each after the first of its key supersedes the previous value
    assert len(everything) == writers * per_writer * 2 - per_writer
    assert collected == everything
