"""Contract tests: each endpoint through both clients against the real server (SQLite, PostgreSQL).

Every test runs with the sync and the async client (`client_kind`), through the same `Driver`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from memory_client import (
    AgentPublic,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    APIStatusError,
    AuditEventPublic,
    AuthenticationError,
    ConflictError,
    ContextItem,
    ContextResponse,
    DroppedItem,
    EmbeddingsPublic,
    ErrorBody,
    GrantPermission,
    GrantPublic,
    MemoryBatchResult,
    MemoryClientError,
    MemoryCreate,
    MemoryEmbedding,
    MemoryPublic,
    Message,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PreconditionFailedError,
    PreconditionRequiredError,
    ProvenancePublic,
    QueryEmbedding,
    RankingOptions,
    RankingWeights,
    RateLimitError,
    Role,
    ScoreComponents,
    SummaryGroupPlan,
    SummaryRunPublic,
    TaskPublic,
    TaskStatus,
    TierShares,
    UnprocessableEntityError,
    UserForgotten,
)

from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients

Sdk = Callable[..., Any]  # conftest's `sdk` fixture: returns a Driver


def test_agents_keys_and_me(
    server: Any, sdk: Sdk, monkeypatch: pytest.MonkeyPatch, client_kind: str
) -> None:
    admin = sdk(server.url, ADMIN_KEY)
    agent = admin.create_agent(f"contract-{client_kind}")
    assert isinstance(agent, AgentPublic)
    assert agent.default_namespace_id
    assert admin.get_agent(agent.id) == agent
    listed = admin.list_agents()
    assert agent.id in {a.id for a in listed.data}
    assert listed.count == len(listed.data)

    again = admin.create_agent(f"retry-{client_kind}", idempotency_key="agent-once")
    replay = admin.create_agent(f"retry-{client_kind}", idempotency_key="agent-once")
    assert replay.id == again.id
    assert admin.list_agents().count == listed.count + 1

    key = admin.create_key(agent.id, name="ci", namespace_ids=[agent.default_namespace_id])
    assert isinstance(key, ApiKeyCreated)
    assert key.key.startswith(key.prefix)
    assert key.namespace_ids == [agent.default_namespace_id]
    keys = admin.list_keys(agent.id)
    assert isinstance(keys, ApiKeysPublic)
    assert ([k.id for k in keys.data], keys.count) == ([key.id], 1)
    assert all(type(k) is ApiKeyPublic and "key" not in (k.model_extra or {}) for k in keys.data)
    assert admin.me().is_admin

    monkeypatch.setenv("MEMORY_URL", server.url)
    monkeypatch.setenv("MEMORY_API_KEY", key.key)
    from_env = sdk(None)
    assert from_env.base_url == server.url
    me = from_env.me()
    assert (me.agent_id, me.key_id, me.is_admin) == (agent.id, key.id, False)
    assert me.namespace_ids == [agent.default_namespace_id]

    revoked = from_env.revoke_key(key.id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError) as caught:
        from_env.me()
    assert caught.value.status_code == 401
    assert caught.value.code == "api_key_revoked"


def test_namespaces(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    created = client.create_namespace("projects", description="Work in progress")
    assert (created.name, created.owner_agent_id) == ("projects", agent.id)
    assert (created.permission, created.is_default) == ("owner", False)
    assert client.get_namespace(created.id) == created
    listed = client.list_namespaces()
    assert {ns.id for ns in listed.data} == {agent.namespace_id, created.id}
    assert listed.count == 2
    with pytest.raises(NotFoundError) as caught:
        client.get_namespace("ns_does_not_exist")
    assert caught.value.status_code == 404


def test_embeddings_of_a_namespace_with_the_query(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    first = client.create_memory("Dana prefers email.", kind="preference", user_id="dana")
    second = client.create_memory("Invoices go out as PDF.", user_id="sam")
    client.update_memory(first.memory.id, version=1, status="archived")
    page = client.list_embeddings(agent.namespace_id, query="contact Dana")
    assert isinstance(page, EmbeddingsPublic)
    assert (page.namespace_id, page.dimensions, page.next_cursor) == (agent.namespace_id, 384, None)
    assert [m.id for m in page.data] == [second.memory.id]
    (item,) = page.data
    assert isinstance(item, MemoryEmbedding) and len(item.embedding) == 384
    assert (item.kind, item.user_id, item.preview) == ("note", "sam", "Invoices go out as PDF.")
    assert isinstance(page.query, QueryEmbedding) and page.query.text == "contact Dana"
    both = client.list_embeddings(agent.namespace_id, include_archived=True, limit=1)
    assert [m.id for m in both.data] == [second.memory.id] and both.next_cursor
    rest = client.list_embeddings(
        agent.namespace_id, include_archived=True, cursor=both.next_cursor
    )
    assert [m.id for m in rest.data] == [first.memory.id] and rest.query is None
    archived = client.list_embeddings(agent.namespace_id, statuses="archived", kinds=["preference"])
    assert [m.status for m in archived.data] == ["archived"]
    with pytest.raises(NotFoundError):
        client.list_embeddings("ns_does_not_exist")
    with pytest.raises(UnprocessableEntityError) as caught:
        client.list_embeddings(agent.namespace_id, limit=0)
    assert caught.value.code == "validation_error"


def test_memory_lifecycle(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    written = client.create_memory(
        "The user prefers tea to coffee.",
        kind="preference",
        user_id="u-1",
        tags=["drinks", "likes"],
        metadata={"source": "chat", "nested": {"n": None}},
        importance=0.9,
    )
    assert written.created
    memory = written.memory
    assert isinstance(memory, MemoryPublic)
    assert (memory.namespace_id, memory.author_agent_id) == (agent.namespace_id, agent.id)
    assert (memory.kind, memory.user_id, memory.version, memory.status) == (
        "preference",
        "u-1",
        1,
        "active",
    )
    assert memory.metadata == {"source": "chat", "nested": {"n": None}}
    assert memory.tags == ["drinks", "likes"]

    duplicate = client.create_memory(
        "the user  PREFERS tea to coffee.", kind="preference", user_id="u-1"
    )
    assert (duplicate.created, duplicate.memory.id) == (False, memory.id)

    first_tone = client.create_memory("Formal tone.", kind="preference", key="user.tone")
    second_tone = client.create_memory("Casual tone.", kind="preference", key="user.tone")
    assert second_tone.superseded_id == first_tone.memory.id
    assert client.get_memory(first_tone.memory.id).status == "superseded"

    fetched = client.get_memory(memory.id)
    assert fetched.id == memory.id and fetched.content == memory.content

    updated = client.update_memory(
        memory.id, version=1, content="The user prefers green tea.", tags=["drinks"]
    )
    assert (updated.version, updated.content, updated.tags) == (
        2,
        "The user prefers green tea.",
        ["drinks"],
    )
    with pytest.raises(PreconditionFailedError) as caught:
        client.update_memory(memory.id, version=1, importance=0.1)
    error = caught.value
    assert (error.status_code, error.code) == (412, "version_mismatch")
    assert error.detail and "version 2" in error.detail
    assert error.request_id and error.request_id.startswith("req_")

    later = datetime.now(UTC) + timedelta(days=30)
    expiring = client.update_memory(memory.id, version=2, expires_at=later)
    assert expiring.expires_at == later
    untouched = client.update_memory(memory.id, version=3, importance=0.2)
    assert untouched.expires_at == later  # expires_at not given: left as it was
    cleared = client.update_memory(memory.id, version=4, expires_at=None)
    assert cleared.expires_at is None
    archived = client.update_memory(memory.id, version=5, status="archived")
    assert (archived.status, archived.version) == ("archived", 6)

    deleted = client.delete_memory(memory.id)
    assert (deleted.id, deleted.namespace_id, deleted.deleted_by) == (
        memory.id,
        agent.namespace_id,
        agent.id,
    )
    with pytest.raises(NotFoundError):
        client.get_memory(memory.id)


def test_batch_list_and_iterate(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    requests: list[httpx.Request] = []
    client = sdk(server.url, agent.key, on_request=requests.append)
    start = datetime(2024, 5, 1, tzinfo=UTC)
    items: list[Any] = [
        MemoryCreate(
            content=f"Fact number {i}",
            kind="fact",
            tags=["even"] if i % 2 == 0 else ["odd"],
            thread_id="t-1" if i < 3 else None,
            created_at=start + timedelta(minutes=i),
        )
        for i in range(5)
    ]
    items += [
        {
            "content": "A note in the thread",
            "thread_id": "t-1",
            "created_at": (start - timedelta(seconds=30)).isoformat(),
        },
        {"content": "A stray note", "created_at": (start - timedelta(days=1)).isoformat()},
    ]
    batch = client.create_memories(items)
    assert isinstance(batch, MemoryBatchResult)
    assert (batch.created, batch.deduplicated, len(batch.results)) == (7, 0, 7)

    page = client.list_memories(limit=3)
    assert [m.content for m in page.data] == ["Fact number 4", "Fact number 3", "Fact number 2"]
    assert page.next_cursor
    second = client.list_memories(limit=3, cursor=page.next_cursor)
    assert second.data[0].content == "Fact number 1"

    requests.clear()
    everything = client.iter_memories(page_size=3)
    assert len(requests) == 3  # pages of 3, 3 and 1
    assert [m.content for m in everything] == [f"Fact number {i}" for i in (4, 3, 2, 1)] + [
        "Fact number 0",
        "A note in the thread",
        "A stray note",
    ]
    assert all(isinstance(m, MemoryPublic) for m in everything)

    in_thread = client.iter_memories(thread_id="t-1", page_size=2)
    assert {m.content for m in in_thread} == {
        "Fact number 0",
        "Fact number 1",
        "Fact number 2",
        "A note in the thread",
    }
    assert {m.content for m in client.iter_memories(kinds="note")} == {
        "A note in the thread",
        "A stray note",
    }
    odd = client.iter_memories(tags="odd", kinds=["fact"], namespace_ids=agent.namespace_id)
    assert [m.content for m in odd] == ["Fact number 3", "Fact number 1"]
    window = client.iter_memories(
        created_after=start + timedelta(seconds=30), created_before=start + timedelta(minutes=3)
    )
    assert [m.content for m in window] == ["Fact number 2", "Fact number 1"]
    assert client.iter_memories(statuses="archived") == []


def test_remember_and_search(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    conversation: list[Any] = [
        {"role": "system", "content": "You are a helpful travel agent."},
        {"role": "user", "content": [{"type": "text", "text": "I want to visit Lisbon in May."}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}]},
        Message(role=Role.TOOL, content="Flights found: 3.", name="flights", tool_call_id="call_1"),
        {"role": "assistant", "content": "Lisbon in May is lovely; I found three flights."},
    ]
    stored = client.remember(conversation, thread_id="trip-1", user_id="u-7")
    assert (stored.created, stored.deduplicated) == (4, 0)  # the empty assistant turn is skipped
    messages = client.iter_memories(thread_id="trip-1", kinds="message")
    assert {(m.role, m.user_id, m.thread_id) for m in messages} == {
        ("system", "u-7", "trip-1"),
        ("user", "u-7", "trip-1"),
        ("tool", "u-7", "trip-1"),
        ("assistant", "u-7", "trip-1"),
    }
    tool = next(m for m in messages if m.role == "tool")
    assert tool.metadata == {"name": "flights", "tool_call_id": "call_1"}
    assert client.remember([{"role": "assistant", "content": "  "}]).created == 0

    client.create_memory("The user is vegetarian.", kind="fact", user_id="u-7")
    client.create_memory("The user's favourite colour is green.", kind="fact", user_id="u-7")
    found = client.search("what food does the user eat?", k=2, user_id="u-7", kinds="fact")
    assert found.query == "what food does the user eat?"
    assert found.results[0].memory.content == "The user is vegetarian."
    for hit in found.results:
        assert isinstance(hit.components, ScoreComponents)
        assert hit.similarity == pytest.approx(hit.components.dense, abs=1e-5)
        assert hit.score > 0 and all(
            0 <= part <= 1 for part in hit.components.model_dump().values()
        )
    assert found.results[0].score >= found.results[-1].score

    # Weights that count only the dense similarity make the score that similarity.
    dense_only = RankingOptions(
        weights=RankingWeights(dense=1, keyword=0, recency=0, importance=0, frequency=0),
        diversity=0,
        min_relevance=0,
    )
    for ranking in (dense_only, dense_only.model_dump(exclude_none=True)):
        ranked = client.search("what food does the user eat?", kinds="fact", ranking=ranking)
        assert len(ranked.results) == 2
        for hit in ranked.results:
            assert hit.score == pytest.approx(hit.similarity, abs=1e-5)
        assert ranked.results[0].score >= ranked.results[1].score
    trip = client.search("travel to Portugal", thread_id="trip-1", k=10)
    assert trip.results and all(hit.memory.thread_id == "trip-1" for hit in trip.results)
    assert client.search("anything", statuses=["archived"]).results == []


def test_context_packs_thread_facts_and_memories_under_the_budget(
    server: Any, sdk: Sdk, make_agent: Any
) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    start = datetime.now(UTC) - timedelta(minutes=10)
    turns = [
        ("user", "We land in Lisbon on Friday evening."),
        ("assistant", "Great, I will plan Friday dinner."),
        ("user", "Somewhere near the hotel in Alfama, please."),
    ]
    thread = client.remember(
        [
            {"role": role, "content": text, "created_at": start + timedelta(minutes=i)}
            for i, (role, text) in enumerate(turns)
        ],
        thread_id="trip-1",
        user_id="u-7",
    )
    formal = client.create_memory("Reply formally.", kind="preference", key="tone", user_id="u-7")
    casual = client.create_memory(
        "Reply casually and briefly.", kind="preference", key="tone", user_id="u-7"
    )
    diet = client.create_memory(
        "The user is vegetarian and avoids fish.", kind="fact", user_id="u-7", importance=0.9
    )

    query = "Which restaurant should we book for dinner?"
    context = client.context(
        query, budget_tokens=300, model="gpt-4o-mini", user_id="u-7", thread_id="trip-1"
    )
    assert isinstance(context, ContextResponse)
    assert 0 < context.tokens_used <= context.budget_tokens == 300
    assert context.model == "gpt-4o-mini"
    assert all(isinstance(item, ContextItem) for item in context.items)
    tiers = {item.id: item.tier for item in context.items}
    messages = [result.memory.id for result in thread.results]
    assert [tiers.get(memory_id) for memory_id in messages] == ["thread"] * 3
    assert tiers.get(casual.memory.id) == "facts"
    assert tiers.get(diet.memory.id) == "memories"
    assert formal.memory.id not in tiers
    # the thread verbatim, oldest first; the current keyed value, never the superseded one
    text = context.context
    assert text.index("We land in Lisbon") < text.index("near the hotel in Alfama")
    assert "Reply casually and briefly." in text and "Reply formally." not in text
    for item in context.items:
        assert item.tokens > 0 and item.namespace_id == agent.namespace_id
        if item.tier == "memories":
            assert isinstance(item.components, ScoreComponents) and item.score
        else:
            assert item.components is None and item.score is None
    assert all(isinstance(dropped, DroppedItem) for dropped in context.dropped)
    reasons = {dropped.id: dropped.reason for dropped in context.dropped}
    assert reasons.get(formal.memory.id) == "superseded"

    tight = client.context(query, budget_tokens=40, user_id="u-7", thread_id="trip-1")
    assert 0 < tight.tokens_used <= 40 and tight.model  # the server's default tokenizer
    over = [dropped for dropped in tight.dropped if dropped.reason == "over_budget"]
    assert over and not {d.id for d in over} & {item.id for item in tight.items}

    # Tiers, thread length and ranking knobs are sent: all of the budget to ranked memories.
    ranked_only = client.context(
        query,
        budget_tokens=300,
        user_id="u-7",
        thread_id="trip-1",
        tiers=TierShares(thread=0, facts=0, memories=1),
        max_thread_messages=0,
        max_candidates=10,
        ranking={"min_relevance": 0},
        kinds=["fact", "message"],
    )
    assert ranked_only.items and {item.tier for item in ranked_only.items} == {"memories"}
    assert {item.kind for item in ranked_only.items} <= {"fact", "message"}
    assert all(item.score is not None for item in ranked_only.items)

    elsewhere = client.create_namespace("elsewhere")
    empty = client.context(query, budget_tokens=100, namespace_ids=elsewhere.id, user_id="u-7")
    assert (empty.context, empty.tokens_used, empty.items, empty.dropped) == ("", 0, [], [])
    with pytest.raises(UnprocessableEntityError) as invalid:
        client.context(query, budget_tokens=0)
    assert invalid.value.code == "validation_error"
    assert invalid.value.errors and invalid.value.errors[0]["loc"] == ["body", "budget_tokens"]


def test_sharing_grants_and_the_audit_trail(server: Any, sdk: Sdk, make_agent: Any) -> None:
    alice_agent, bob_agent = make_agent(), make_agent()
    alice = sdk(server.url, alice_agent.key)
    bob = sdk(server.url, bob_agent.key)
    team = alice.create_namespace("team")

    grant = alice.create_grant(team.id, bob_agent.id, GrantPermission.READ)
    assert isinstance(grant, GrantPublic)
    assert (grant.namespace_id, grant.agent_id, grant.permission) == (team.id, bob_agent.id, "read")
    assert bob.get_namespace(team.id).permission == "read"
    with pytest.raises(PermissionDeniedError):
        bob.create_memory("Bob cannot write yet.", namespace_id=team.id)

    upgraded = alice.create_grant(team.id, bob_agent.id, "write")
    assert (upgraded.id, upgraded.permission) == (grant.id, GrantPermission.WRITE)
    listed = alice.list_grants(team.id)
    assert (listed.count, [g.id for g in listed.data]) == (1, [grant.id])
    assert listed.data[0].permission == "write"

    written = bob.create_memory("The team standup moved to 9:30.", namespace_id=team.id)
    assert written.memory.author_agent_id == bob_agent.id
    assert [m.id for m in bob.iter_memories(namespace_ids=team.id)] == [written.memory.id]
    bob.search("standup time", namespace_ids=[team.id])

    first = alice.list_audit_events(team.id, limit=2)
    assert len(first.data) == 2 and first.next_cursor
    events = alice.iter_audit_events(team.id, page_size=2)
    assert all(isinstance(event, AuditEventPublic) for event in events)
    assert [(e.action, e.operation) for e in events] == [
        ("read", "search"),
        ("read", "list"),
        ("write", "create"),
    ]
    assert [e.id for e in events[:2]] == [e.id for e in first.data]
    assert all((e.agent_id, e.key_id) == (bob_agent.id, bob_agent.key_id) for e in events)
    assert all(e.namespace_id == team.id and e.memory_count == 1 for e in events)
    assert all(e.request_id and e.request_id.startswith("req_") for e in events)
    assert alice.iter_audit_events(team.id, agent_id=alice_agent.id) == []

    with pytest.raises(PermissionDeniedError):
        bob.list_grants(team.id)  # write includes read, not managing the namespace
    with pytest.raises(UnprocessableEntityError) as to_owner:
        alice.create_grant(team.id, alice_agent.id, "read")
    assert to_owner.value.code == "grantee_is_owner"

    revoked = alice.revoke_grant(team.id, grant.id)
    assert (revoked.id, revoked.agent_id) == (grant.id, bob_agent.id)
    assert alice.list_grants(team.id).count == 0
    with pytest.raises(NotFoundError):
        bob.get_namespace(team.id)  # gone on the very next request
    with pytest.raises(NotFoundError) as again:
        alice.revoke_grant(team.id, grant.id)
    assert again.value.code == "grant_not_found"
    with pytest.raises(NotFoundError):
        bob.list_audit_events(team.id)


def test_summaries_provenance_and_forgetting(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    long_ago = datetime.now(UTC) - timedelta(days=10)  # the server summarizes after 72 hours
    written = client.create_memories(
        [
            MemoryCreate(
                content=" ".join(
                    f"On day {i} of planning the Porto trip, item {j} of the list was settled."
                    for j in range(6)
                ),
                kind="message",
                role="user",
                user_id="ana",
                thread_id="porto",
                created_at=long_ago + timedelta(minutes=i),
            )
            for i in range(6)
        ]
    )
    source_ids = [r.memory.id for r in written.results]
    bystander = client.create_memory("Bruno likes trains.", user_id="bruno").memory

    preview = client.run_summaries(agent.namespace_id, dry_run=True, idempotency_key="preview")
    assert isinstance(preview, SummaryRunPublic)
    assert (preview.dry_run, preview.groups, preview.sources) == (True, 1, 6)
    (group,) = preview.plan
    assert isinstance(group, SummaryGroupPlan)
    assert (group.user_id, group.thread_id, sorted(group.source_ids)) == (
        "ana",
        "porto",
        sorted(source_ids),
    )
    assert preview.summary_ids == []
    replay = client.run_summaries(agent.namespace_id, dry_run=True, idempotency_key="preview")
    assert replay.id == preview.id
    assert client.list_memories(kinds="summary").data == []
    assert {m.status for m in client.iter_memories(thread_id="porto")} == {"active"}

    run = client.run_summaries(agent.namespace_id)
    assert (run.status, run.dry_run, run.groups, run.sources, run.failures) == (
        "completed",
        False,
        1,
        6,
        [],
    )
    (summary_id,) = run.summary_ids
    summary = client.get_memory(summary_id)
    assert (summary.kind, summary.level, summary.user_id) == ("summary", 1, "ana")
    assert summary.covers_from is not None and summary.covers_to is not None
    assert summary.covers_from < summary.covers_to < datetime.now(UTC) - timedelta(days=9)
    assert client.get_memory(source_ids[0]).level == 0
    stored = client.get_summary_run(run.id)
    assert (stored.id, stored.status, stored.groups) == (run.id, "completed", 1)
    with pytest.raises(NotFoundError):
        client.get_summary_run("run_does_not_exist")

    tree = client.get_provenance(summary_id)
    assert isinstance(tree, ProvenancePublic)
    assert (tree.memory.id, tree.hidden_sources) == (summary_id, 0)
    assert sorted(s.memory.id for s in tree.sources) == sorted(source_ids)
    assert all(s.sources == [] and s.memory.status == "archived" for s in tree.sources)

    deleted = client.delete_memory(source_ids[0])
    assert (deleted.id, deleted.also_deleted) == (source_ids[0], [summary_id])
    with pytest.raises(NotFoundError):
        client.get_memory(summary_id)

    forgotten = client.forget_user("ana", namespace_id=agent.namespace_id)
    assert isinstance(forgotten, UserForgotten)
    assert (forgotten.user_id, forgotten.namespace_id) == ("ana", agent.namespace_id)
    assert sorted(forgotten.deleted) == sorted(source_ids[1:])
    assert client.list_memories(user_id="ana", statuses=["active", "archived"]).data == []
    assert client.get_memory(bystander.id).user_id == "bruno"


@pytest.fixture
def limited_server(settings: Any) -> Any:
    """A server allowing 3 requests a minute per key: a burst of 3, then one every 20 s."""
    live = LiveServer(settings.model_copy(update={"rate_limit_per_minute": 3})).start()
    try:
        yield live
    finally:
        live.stop()
        release_chroma_clients()


# The limiter is per process and never touches the database: SQLite is enough. Waiting out a
# Retry-After and retrying is covered against a scripted server in test_retry.py.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rate_limit_raises_with_retry_after(limited_server: Any, sdk: Sdk) -> None:
    with limited_server.client(ADMIN_KEY) as admin:
        agent_id = admin.post("/v1/agents", json={"name": "chatty"}).json()["id"]
        key = admin.post(f"/v1/agents/{agent_id}/keys", json={}).json()["key"]
    requests: list[httpx.Request] = []
    client = sdk(limited_server.url, key, max_retries=0, on_request=requests.append)
    assert [client.me().agent_id for _ in range(3)] == [agent_id] * 3
    with pytest.raises(RateLimitError) as caught:
        client.me()
    error = caught.value
    assert (error.status_code, error.code, error.retry_after) == (429, "rate_limited", 20.0)
    assert ErrorBody.model_validate(error.body).detail == error.detail
    assert error.request_id and error.request_id.startswith("req_")
    assert len(requests) == 4


def test_errors_map_to_exceptions(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    requests: list[httpx.Request] = []
    client = sdk(server.url, agent.key, on_request=requests.append)

    def expect(
        kind: type[APIStatusError], status: int, code: str, call: Callable[[], Any]
    ) -> APIStatusError:
        before = len(requests)
        with pytest.raises(kind) as caught:
            call()
        error = caught.value
        assert isinstance(error, MemoryClientError)
        assert (error.status_code, error.code) == (status, code)
        assert error.detail and error.detail in str(error)
        assert error.request_id and error.request_id.startswith("req_")
        assert error.request_id in str(error)
        assert isinstance(error.body, dict) and error.body["code"] == code
        assert len(requests) == before + 1, "a 4xx is not retried"
        return error

    bad_key = sdk(server.url, "mk_not-a-real-key")
    with pytest.raises(AuthenticationError) as unauthenticated:
        bad_key.me()
    assert (unauthenticated.value.status_code, unauthenticated.value.code) == (
        401,
        "invalid_api_key",
    )
    expect(PermissionDeniedError, 403, "admin_required", client.list_agents)
    expect(NotFoundError, 404, "memory_not_found", lambda: client.get_memory("mem_missing"))

    old = client.create_memory("Likes jazz.", kind="preference", key="music").memory
    client.create_memory("Likes blues.", kind="preference", key="music")
    expect(
        ConflictError,
        409,
        "memory_superseded",
        lambda: client.update_memory(old.id, version=2, status="archived"),
    )
    expect(
        PayloadTooLargeError,
        413,
        "content_too_large",
        lambda: client.create_memory("x" * (server.settings.max_content_chars + 1)),
    )
    invalid = expect(
        UnprocessableEntityError,
        422,
        "validation_error",
        lambda: client.create_memory("A summary", kind="summary"),
    )
    assert "reserved" in (invalid.detail or "")
    client.create_memory("First body", kind="note", idempotency_key="same-key")
    expect(
        UnprocessableEntityError,
        422,
        "idempotency_key_reused",
        lambda: client.create_memory("Second body", kind="note", idempotency_key="same-key"),
    )

    def drop_if_match(request: httpx.Request) -> None:
        request.headers.pop("If-Match", None)

    no_precondition = sdk(server.url, agent.key, on_request=drop_if_match)
    with pytest.raises(PreconditionRequiredError) as caught:
        no_precondition.update_memory(old.id, version=2, importance=0.3)
    assert (caught.value.status_code, caught.value.code) == (428, "precondition_required")


def test_health_and_readiness(server: Any, sdk: Sdk) -> None:
    client = sdk(server.url)
    assert client.health().status == "ok"
    ready = client.ready()
    assert ready.status == "ok"
    assert ready.checks == {"sql": "ok", "vector_store": "ok"}


def test_tasks_plan_start_complete_and_resume(server: Any, sdk: Sdk, make_agent: Any) -> None:
    agent = make_agent()
    client = sdk(server.url, agent.key)
    plan = client.create_task("Plan the trip", thread_id="t", idempotency_key="plan-once")
    replay = client.create_task("Plan the trip", thread_id="t", idempotency_key="plan-once")
    assert isinstance(plan, TaskPublic) and replay.id == plan.id
    running = client.create_task("Book it", thread_id="t", status="in_progress", context={"n": 1})
    assert running.status == TaskStatus.IN_PROGRESS and running.context == {"n": 1}

    with pytest.raises(ConflictError) as held:
        client.update_task(plan.id, version=plan.version, status="in_progress")
    assert held.value.code == "another_task_in_progress"
    assert held.value.body["task"]["id"] == running.id

    done = client.update_task(running.id, version=1, status="completed", result={"ok": True})
    again = client.update_task(running.id, version=1, status="completed", result={"ok": True})
    assert again == done and done.version == 2 and done.result == {"ok": True}
    with pytest.raises(ConflictError) as final:
        client.update_task(running.id, version=2, status="in_progress")
    assert final.value.code == "invalid_task_transition"

    assert [t.id for t in client.list_tasks(thread_id="t", statuses=["pending"]).data] == [plan.id]
    assert [t.id for t in client.iter_tasks(page_size=1)] == [plan.id, running.id]
    context = client.context("what now?", budget_tokens=200, thread_id="t")
    assert [i.id for i in context.items if i.tier == "tasks"] == [plan.id]
    assert client.get_task(plan.id).title == "Plan the trip"
    edited = client.update_task(plan.id, version=1, description="Two nights", priority=2)
    assert (edited.description, edited.priority, edited.version) == ("Two nights", 2, 2)
    assert client.update_task(plan.id, version=2, description=None).description is None
    assert client.delete_task(plan.id).id == plan.id
