from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_server.services.context import candidate_pool
from memory_server.tokens import count_tokens
from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients, server_settings
from tests.test_packing import MODELS


def _write(client: httpx.Client, memories: list[dict]) -> list[dict]:
    response = client.post("/v1/memories/batch", json={"memories": memories})
    assert response.status_code == 201, response.text
    return [r["memory"] for r in response.json()["results"]]


def _conversation(start: datetime) -> list[dict]:
    turns = [
        ("user", "Hi, I need help planning the team offsite."),
        ("assistant", "Happy to help. Where would you like to hold it?"),
        ("user", "Somewhere near Lisbon, in early June."),
        ("assistant", "Noted: Lisbon area, early June."),
    ]
    return [
        {
            "kind": "message",
            "role": role,
            "content": text,
            "thread_id": "t-now",
            "user_id": "dana",
            "created_at": (start + timedelta(minutes=i)).isoformat(),
        }
        for i, (role, text) in enumerate(turns)
    ]


def test_the_facts_tier_holds_only_the_users_own_facts_from_readable_namespaces(
    make_agent,
) -> None:
    agent, stranger = make_agent(), make_agent()
    mine = _write(
        agent.client,
        [
            {"kind": "preference", "user_id": "dana", "content": "Dana prefers window seats"},
            {"kind": "fact", "key": "city", "user_id": "dana", "content": "Dana lives in Porto"},
        ],
    )
    others = _write(
        agent.client,
        [
            {"kind": "preference", "user_id": "eve", "content": "Eve prefers aisle seats"},
            {"kind": "fact", "key": "city", "user_id": "eve", "content": "Eve lives in Faro"},
            {"kind": "fact", "user_id": "dana", "content": "Dana flew to Faro once"},  # no key
        ],
    )
    others += _write(
        stranger.client,
        [{"kind": "preference", "user_id": "dana", "content": "Dana prefers night trains"}],
    )
    response = agent.client.post(
        "/v1/context",
        json={"query": "zzz", "budget_tokens": 400, "user_id": "dana", "max_candidates": 1},
    )
    assert response.status_code == 200, response.text
    facts = {item["id"] for item in response.json()["items"] if item["tier"] == "facts"}
    assert facts == {memory["id"] for memory in mine}
    served = {item["id"] for item in response.json()["items"]}
    assert not served & {memory["id"] for memory in others[:2] + others[3:]}


def test_a_fact_replaced_during_a_call_is_served_in_one_version(
    make_agent, server: LiveServer, monkeypatch
) -> None:
    """Every tier of a call reads one snapshot: a keyed fact replaced after the facts tier was
    read, and before the long-term memories are, is served in its old version only."""
    agent = make_agent()
    fact = {"kind": "fact", "key": "city", "user_id": "dana"}
    (old,) = _write(agent.client, [{**fact, "content": "Dana lives in Porto"}])
    context = server.app.state.runtime.context
    read_facts = context._user_facts
    replaced: list[dict] = []

    def facts_then_a_replacement(*args, **kwargs):
        facts = read_facts(*args, **kwargs)
        if not replaced:
            replaced.extend(_write(agent.client, [{**fact, "content": "Dana lives in Lisbon"}]))
        return facts

    monkeypatch.setattr(context, "_user_facts", facts_then_a_replacement)
    query = {"query": "Does Dana live in Lisbon?", "budget_tokens": 400, "user_id": "dana"}
    during = agent.client.post("/v1/context", json=query)
    assert during.status_code == 200, during.text
    assert [item["id"] for item in during.json()["items"]] == [old["id"]]
    after = agent.client.post("/v1/context", json=query).json()["items"]
    assert [item["id"] for item in after] == [replaced[0]["id"]]


def test_long_term_memories_are_written_oldest_first_under_their_days_and_listed_by_rank(
    make_agent,
) -> None:
    agent = make_agent()
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    notes = [  # (days ago, content): the most relevant to the query is the newest
        (40, "The billing service once ran on a single VM in Frankfurt"),
        (40, "Billing's VM in Frankfurt was patched by hand every month"),
        (9, "The billing service moved to Kubernetes in the Dublin region"),
        (2, "The billing service is hosted on Kubernetes in Dublin now"),
    ]
    written = _write(
        agent.client,
        [
            {"kind": "note", "content": text, "created_at": (now - timedelta(days=ago)).isoformat()}
            for ago, text in notes
        ],
    )
    response = agent.client.post(
        "/v1/context",
        json={"query": "Where is the billing service hosted?", "budget_tokens": 600},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    items = [item for item in body["items"] if item["tier"] == "memories"]
    assert {item["id"] for item in items} == {memory["id"] for memory in written}
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)  # the list keeps the rank
    assert [item["created_at"] for item in items] != sorted(item["created_at"] for item in items)
    # the text is chronological, each day's heading once, above that day's lines
    section = body["context"].split("## Relevant memories\n")[1]
    lines = section.split("\n")
    assert [line for line in lines if line.startswith("[")] == [
        f"[note] {text}" for _, text in notes
    ]
    headings = [line for line in lines if line.startswith("### ")]
    assert len(headings) == len(set(headings)) == 3
    assert lines[0] == headings[0] and lines.index(headings[1]) == 3


def test_context_layers_thread_facts_and_ranked_memories(make_agent) -> None:
    agent = make_agent()
    now = datetime.now(UTC)
    _write(agent.client, _conversation(now - timedelta(minutes=10)))
    old_pref, current_pref, budget_fact, _ = _write(
        agent.client,
        [
            {
                "kind": "preference",
                "key": "diet",
                "user_id": "dana",
                "content": "Dana eats meat",
                "created_at": (now - timedelta(days=60)).isoformat(),
            },
            {
                "kind": "preference",
                "key": "diet",
                "user_id": "dana",
                "content": "Dana is vegetarian",
            },
            {
                "kind": "fact",
                "user_id": "dana",
                "content": "The offsite budget is 12,000 EUR",
                "importance": 0.9,
            },
            {"kind": "fact", "user_id": "dana", "content": "Dana's cat is called Miso"},
        ],
    )
    response = agent.client.post(
        "/v1/context",
        json={
            "query": "What should we book for the offsite dinner and how much can we spend?",
            "budget_tokens": 400,
            "model": "gpt-4o-mini",
            "user_id": "dana",
            "thread_id": "t-now",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    context = body["context"]
    assert body["tokens_used"] == count_tokens(context, "gpt-4o-mini") <= 400
    assert body["budget_tokens"] == 400 and body["model"] == "gpt-4o-mini"

    # tiers in order; the thread verbatim, oldest first and newest last
    assert context.index("## Recent conversation") < context.index("## Known facts")
    assert context.index("## Known facts") < context.index("## Relevant memories")
    thread_part = context.split("## Known facts")[0]
    assert thread_part.index("Hi, I need help") < thread_part.index("Noted: Lisbon area")
    assert "· user] Somewhere near Lisbon, in early June." in thread_part
    # a turn of the thread with its time of day under its date; a long-term memory with its
    # kind under its date; a fact with its date and kind on its line
    day = r"### \d{1,2} [A-Z][a-z]{2} \d{4}\n"
    assert re.search(day + r"(.*\n)*\[\d\d:\d\d · user\] Somewhere near", thread_part)
    memories_part = context.split("## Relevant memories")[1]
    assert re.search(day + r"(.*\n)*\[fact\] The offsite budget", memories_part)
    facts_part = context.split("## Known facts and preferences")[1].split("## Relevant")[0]
    assert re.search(r"\[\d{1,2} [A-Z][a-z]{2} \d{4} · preference · diet\] Dana is veg", facts_part)

    # the current keyed value is served, the superseded one never is
    assert "Dana is vegetarian" in context and "Dana eats meat" not in context
    tiers = {item["id"]: item["tier"] for item in body["items"]}
    assert tiers[current_pref["id"]] == "facts"
    assert old_pref["id"] not in tiers
    assert tiers[budget_fact["id"]] == "memories"
    ranked = next(item for item in body["items"] if item["id"] == budget_fact["id"])
    parts = {"dense", "keyword", "recency", "importance", "frequency", "length", "thread"}
    assert set(ranked["components"]) == parts
    assert ranked["components"]["keyword"] > 0 and ranked["score"] > 0
    assert ranked["tokens"] == count_tokens(
        next(line for line in context.splitlines() if "12,000 EUR" in line), "gpt-4o-mini"
    )
    dropped = {d["id"]: d["reason"] for d in body["dropped"]}
    assert dropped.get(old_pref["id"]) == "superseded"


FEATURES = [
    "CSV export of invoices",
    "multi-currency totals",
    "a dunning email sequence",
    "tax reports for the EU",
    "proration on plan changes",
    "a customer self-service portal",
    "webhooks for failed payments",
    "usage-based metering",
    "credit notes",
    "PDF receipts with logos",
]


def test_context_reports_what_did_not_fit(make_agent) -> None:
    agent = make_agent()
    notes = [
        {"kind": "note", "content": f"Release {i} of billing shipped {feature}."}
        for i, feature in enumerate(FEATURES)
    ]
    _write(agent.client, notes)
    body = agent.client.post(
        "/v1/context", json={"query": "what shipped in billing releases", "budget_tokens": 60}
    ).json()
    assert 0 < body["tokens_used"] <= 60
    assert 0 < len(body["items"]) < len(FEATURES)
    reasons = {d["reason"] for d in body["dropped"]}
    assert "over_budget" in reasons
    kept = {item["id"] for item in body["items"]}
    assert not kept & {d["id"] for d in body["dropped"]}


def test_near_duplicates_do_not_spend_the_budget(make_agent) -> None:
    agent = make_agent()
    phrasings = _write(
        agent.client,
        [
            {"kind": "fact", "content": "The staging database password rotates every Monday."},
            {"kind": "fact", "content": "The staging database password is rotated every Monday."},
            {"kind": "fact", "content": "Every Monday the staging database password rotates."},
            {"kind": "fact", "content": "Deploys to production need two approvals."},
        ],
    )
    body = agent.client.post(
        "/v1/context", json={"query": "staging database password rotation", "budget_tokens": 500}
    ).json()
    kept = [item["id"] for item in body["items"]]
    duplicates = [d for d in body["dropped"] if d["reason"] == "duplicate"]
    assert len([i for i in kept if i in {p["id"] for p in phrasings[:3]}]) == 1
    assert len(duplicates) == 2 and all(d["duplicate_of"] in kept for d in duplicates)


def test_irrelevant_memories_are_below_threshold(make_agent) -> None:
    agent = make_agent()
    _write(
        agent.client,
        [
            {"kind": "fact", "content": "The office plants are watered on Fridays."},
            {"kind": "fact", "content": "Kubernetes cluster upgrades happen quarterly."},
        ],
    )
    body = agent.client.post(
        "/v1/context",
        json={
            "query": "kubernetes upgrade schedule",
            "budget_tokens": 300,
            "ranking": {"min_relevance": 0.3},
        },
    ).json()
    assert [i["kind"] for i in body["items"]] == ["fact"]
    assert "Kubernetes" in body["context"] and "plants" not in body["context"]
    assert [d["reason"] for d in body["dropped"]] == ["below_threshold"]


def test_keyword_relevance_finds_exact_identifiers(make_agent) -> None:
    agent = make_agent()
    target = _write(
        agent.client,
        [
            {"kind": "note", "content": "Ticket ZX-4471 was escalated to the network team."},
        ]
        + [
            {"kind": "note", "content": f"Ticket AB-{1000 + i} was closed as a duplicate."}
            for i in range(15)
        ],
    )[0]
    body = agent.client.post("/v1/search", json={"query": "ZX-4471", "k": 3}).json()
    top, *rest = body["results"]
    assert top["memory"]["id"] == target["id"]
    assert top["components"]["keyword"] > 0
    assert all(hit["components"]["keyword"] < top["components"]["keyword"] for hit in rest)


def test_context_and_search_record_access_off_the_hot_path(make_agent) -> None:
    agent = make_agent()
    memory = _write(agent.client, [{"kind": "fact", "content": "The VPN endpoint is vpn.acme.io"}])[
        0
    ]
    agent.client.post("/v1/context", json={"query": "vpn endpoint", "budget_tokens": 100})
    agent.client.post("/v1/search", json={"query": "vpn endpoint"})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = agent.client.get(f"/v1/memories/{memory['id']}").json()
        if current["access_count"] == 2:
            break
        time.sleep(0.2)
    assert current["access_count"] == 2 and current["last_accessed_at"] is not None
    assert current["version"] == 1  # bookkeeping is not an edit


def test_a_filter_finds_its_memories_when_others_fill_the_nearest_neighbours(make_agent) -> None:
    """The index is first asked without a filter; when the nearest neighbours are mostly out of
    scope (here: another user's), it is asked again with the filter, so nothing is missed."""
    agent = make_agent()
    crowd = [
        {
            "kind": "note",
            "user_id": "ann",
            "content": f"Ann's garden: the tomato bed {i} is watered",
        }
        for i in range(40)
    ]
    _write(agent.client, crowd)
    [theirs] = _write(
        agent.client,
        [{"kind": "note", "user_id": "bob", "content": "Bob keeps basil on his balcony"}],
    )
    body = {"query": "watering the tomato plants in the garden", "budget_tokens": 400}
    narrow = {"max_candidates": 5, "ranking": {"min_relevance": 0}}
    crowded = agent.client.post("/v1/context", json=body | narrow).json()
    assert theirs["id"] not in {item["id"] for item in crowded["items"]}  # beyond the top 10
    found = agent.client.post("/v1/context", json=body | narrow | {"user_id": "bob"}).json()
    assert [item["id"] for item in found["items"]] == [theirs["id"]]


def test_the_candidate_pool_follows_the_budget_unless_given(make_agent) -> None:
    agent = make_agent()
    _write(
        agent.client,
        [{"kind": "note", "content": f"The tomato bed {i} is watered at dawn"} for i in range(70)],
    )
    body = {"query": "watering the tomato beds", "ranking": {"min_relevance": 0}}

    def ranked(extra: dict) -> set[str]:
        response = agent.client.post("/v1/context", json=body | extra).json()
        return {item["id"] for item in response["items"]} | {d["id"] for d in response["dropped"]}

    small = ranked({"budget_tokens": 240})  # a pool of 20: 20 dense + 20 keyword at most
    assert 20 <= len(small) <= 40
    assert len(ranked({"budget_tokens": 240, "max_candidates": 60})) > 40
    assert candidate_pool(1) == 20 and candidate_pool(10**6) == 60
    assert candidate_pool(240) < candidate_pool(512) < candidate_pool(1024)


def test_context_validation(make_agent) -> None:
    agent = make_agent()
    for body in (
        {"query": "x", "budget_tokens": 0},
        {"query": "", "budget_tokens": 10},
        {"query": "x"},
        {"query": "x", "budget_tokens": 10, "tiers": {"thread": -1}},
        {"query": "x", "budget_tokens": 10, "ranking": {"weights": {"dense": -1}}},
    ):
        response = agent.client.post("/v1/context", json=body)
        assert response.status_code == 422 and response.json()["code"] == "validation_error"


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    contents=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=200
        ).filter(str.strip),
        min_size=1,
        max_size=8,
    ),
    budget=st.integers(min_value=1, max_value=400),
    model=st.sampled_from(MODELS),
    # any storable text: valid Unicode without NUL (a NUL or lone surrogate is a 422)
    query=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    ).filter(str.strip),
    # the workflow tier: the first task in progress (with its context), the rest pending
    tasks=st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=120
        ).filter(str.strip),
        max_size=4,
    ),
    task_share=st.floats(min_value=0, max_value=2),
)
def test_context_endpoint_never_exceeds_the_budget(
    make_agent,
    contents: list[str],
    budget: int,
    model: str,
    query: str,
    tasks: list[str],
    task_share: float,
) -> None:
    agent = make_agent()
    for i, title in enumerate(tasks):
        started = {"status": "in_progress", "context": {"step": title}} if i == 0 else {}
        task = {"title": title, "description": title * 3, "thread_id": "t", **started}
        assert agent.client.post("/v1/tasks", json=task).status_code == 201
    _write(
        agent.client,
        [
            {
                "kind": "message" if i % 2 else "note",
                "role": "user" if i % 2 else None,
                "content": c,
                "thread_id": "t",
                "user_id": "u",
            }
            for i, c in enumerate(contents)
        ],
    )
    response = agent.client.post(
        "/v1/context",
        json={
            "query": query,
            "budget_tokens": budget,
            "model": model,
            "thread_id": "t",
            "user_id": "u",
            "ranking": {"min_relevance": 0},
            "tiers": {"tasks": task_share},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tokens_used"] == count_tokens(body["context"], model) <= budget
    assert {i["tier"] for i in body["items"] if i["kind"] == "task"} <= {"tasks"}


def test_context_calls_take_turns_beyond_read_concurrency_with_queries_embedded_meanwhile(
    tmp_path,
) -> None:
    live = LiveServer(server_settings(tmp_path / "var", None, read_concurrency=1)).start()
    try:
        runtime = live.app.state.runtime
        build = runtime.context.build
        lock = threading.Lock()
        running, peak, embedded_first = 0, 0, []

        def observed(principal, request, query_embedding=None):
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                embedded_first.append(query_embedding is not None and query_embedding.done())
            try:
                time.sleep(0.3)  # long enough for the others to arrive and queue
                return build(principal, request, query_embedding)
            finally:
                with lock:
                    running -= 1

        runtime.context.build = observed
        with live.client(ADMIN_KEY) as admin:
            agent_id = admin.post("/v1/agents", json={"name": "gardener"}).json()["id"]
            key = admin.post(f"/v1/agents/{agent_id}/keys", json={}).json()["key"]
        with live.client(key) as agent:
            _write(agent, [{"kind": "note", "content": "The tomato bed is watered at dawn"}])

            def four_at_once(round_: int) -> None:
                nonlocal peak
                peak, embedded_first[:] = 0, []
                queries = [f"when is bed {i} watered? ({round_})" for i in range(4)]
                with ThreadPoolExecutor(4) as pool:
                    calls = [
                        pool.submit(
                            agent.post, "/v1/context", json={"query": q, "budget_tokens": 200}
                        )
                        for q in queries
                    ]
                    responses = [call.result() for call in calls]
                assert [r.status_code for r in responses] == [200] * 4
                assert all(r.json()["items"] for r in responses)

            four_at_once(1)
            assert peak == 1
            # the three that waited found their query embedded while they waited
            assert sum(embedded_first) >= 3
            live.app.state.read_slots.total_tokens = 4  # as MEMORY_READ_CONCURRENCY=4 would
            four_at_once(2)
            assert peak > 1
    finally:
        live.stop()
        release_chroma_clients()
