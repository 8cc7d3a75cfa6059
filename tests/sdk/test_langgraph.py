"""`memory_client.langgraph.MemoryStore` against a live server, with real LangGraph and langmem.

Filters and namespace listings are checked against langgraph's own `InMemoryStore` holding the
same items: the store must answer as it does. One server (SQLite) serves the module: the store
adds no SQL of its own; each test has its own agent, so its own namespace.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
import pytest
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from langmem import create_manage_memory_tool, create_search_memory_tool
from memory_client import (
    AsyncMemoryClient,
    MemoryClient,
    MemoryPublic,
    NamespacesPublic,
    PermissionDeniedError,
)
from memory_client.langgraph import MemoryStore, _own_default

from tests.conftest import ADMIN_KEY, LiveServer, server_settings, serving

README = Path(__file__).resolve().parents[2] / "README.md"
ALL_STATUSES = ["active", "superseded", "archived"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving(server_settings(tmp_path_factory.mktemp("langgraph"), None)) as server:
        yield server


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client(ADMIN_KEY) as client:
        yield client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Agent(TypedDict):
    id: str
    key: str
    namespace_id: str


@pytest.fixture
def make_agent(admin: httpx.Client) -> Callable[[], Agent]:
    def make() -> Agent:
        agent = admin.post("/v1/agents", json={"name": f"lg-{secrets.token_hex(4)}"})
        assert agent.status_code == 201, agent.text
        key = admin.post(f"/v1/agents/{agent.json()['id']}/keys", json={})
        assert key.status_code == 201, key.text
        return Agent(
            id=agent.json()["id"],
            key=key.json()["key"],
            namespace_id=agent.json()["default_namespace_id"],
        )

    return make


@pytest.fixture
def agent(make_agent: Callable[[], Agent]) -> Agent:
    return make_agent()


@pytest.fixture
def store(live: LiveServer, agent: Agent) -> Iterator[MemoryStore]:
    with MemoryStore(base_url=live.url, api_key=agent["key"]) as made:
        yield made


@pytest.fixture
def sdk(live: LiveServer, agent: Agent) -> Iterator[MemoryClient]:
    """The plain SDK, as the same agent: what the store wrote, seen without it."""
    with MemoryClient(live.url, agent["key"]) as client:
        yield client


def stored(sdk: MemoryClient, statuses: list[str] | None = None) -> list[MemoryPublic]:
    """Every memory the store wrote in the agent's namespace (active ones by default)."""
    return list(sdk.iter_memories(kinds=["langgraph"], statuses=statuses))


def both(items: list[tuple[tuple[str, ...], str, dict[str, Any]]], store: MemoryStore) -> Any:
    """An `InMemoryStore` holding `items`, after putting them in `store` too (one batch)."""
    reference = InMemoryStore()
    store.batch([PutOp(ns, key, value) for ns, key, value in items])
    reference.batch([PutOp(ns, key, value) for ns, key, value in items])
    return reference


# ---- get and put -------------------------------------------------------------------------------

EXACT_VALUE: dict[str, Any] = {
    "text": 'Crème brûlée, 寿司 and 🍜 — "quoted", back\\slash, tab\t, newline\n',
    "int": 2**70 + 1,
    "negative": -17,
    "float": 0.1,
    "tiny": 5e-324,
    "whole_float": 3.0,
    "bools": [True, False],
    "nothing": None,
    "nested": {"deeper": {"list": [1, "two", {"three": [3.5, []]}], "empty": {}}},
    "NUL and lone surrogate": "a\x00b\ud800c",
    "": "an empty key",
}


def test_put_then_get_returns_the_value_exactly(store: MemoryStore, sdk: MemoryClient) -> None:
    namespace = ("users", "ünïcode label", "a/b:c")
    before = datetime.now(UTC)
    store.put(namespace, "profile ✓", EXACT_VALUE)
    store.put(namespace, "empty", {})

    item = store.get(namespace, "profile ✓")
    assert item is not None
    assert item.value == EXACT_VALUE
    assert json.dumps(item.value) == json.dumps(EXACT_VALUE)  # same types and key order too
    assert isinstance(item.value["whole_float"], float) and isinstance(item.value["int"], int)
    assert (item.namespace, item.key) == (namespace, "profile ✓")
    assert before - timedelta(seconds=1) <= item.created_at <= item.updated_at
    empty = store.get(namespace, "empty")
    assert empty is not None and empty.value == {}
    assert store.get(namespace, "missing") is None
    assert store.get(("users", "ünïcode label"), "profile ✓") is None  # another namespace

    memories = stored(sdk)
    assert len(memories) == 2
    assert all(m.key and m.key.startswith("lg:") for m in memories)
    assert len({m.key for m in memories}) == 2


def test_a_put_replaces_the_item_and_only_its_current_value_is_read(
    store: MemoryStore, sdk: MemoryClient
) -> None:
    namespace = ("users", "dana")
    store.put(namespace, "name", {"name": "Dana"})
    store.put(namespace, "name", {"name": "Dana Scully", "since": 1993})
    item = store.get(namespace, "name")
    assert item is not None and item.value == {"name": "Dana Scully", "since": 1993}

    # The server holds the same text under a key whatever its case: the store still keeps the
    # value as put.
    store.put(namespace, "name", {"name": "DANA SCULLY", "since": 1993})
    item = store.get(namespace, "name")
    assert item is not None and item.value == {"name": "DANA SCULLY", "since": 1993}

    current = stored(sdk)
    assert len(current) == 1
    assert len(stored(sdk, ["superseded"])) == 1  # the first value; the third updated the second
    assert [i.value for i in store.search(namespace)] == [{"name": "DANA SCULLY", "since": 1993}]


def test_the_same_key_in_two_namespaces_is_two_items(store: MemoryStore) -> None:
    store.put(("a", "b"), "k", {"v": 1})
    store.put(("a",), "b", {"v": 2})  # the same labels joined differently
    store.put(("a", "c"), "k", {"v": 3})
    assert store.get(("a", "b"), "k").value == {"v": 1}
    assert store.get(("a",), "b").value == {"v": 2}
    assert store.get(("a", "c"), "k").value == {"v": 3}


def test_put_none_deletes_the_item_and_its_history(store: MemoryStore, sdk: MemoryClient) -> None:
    store.put(("docs",), "report", {"v": 1})
    store.put(("docs",), "report", {"v": 2})
    store.put(("docs",), "keep", {"v": 3})
    store.delete(("docs",), "report")
    assert store.get(("docs",), "report") is None
    assert [i.key for i in store.search(("docs",))] == ["keep"]
    assert [json.loads(m.metadata["langgraph"]["value"]) for m in stored(sdk, ALL_STATUSES)] == [
        {"v": 3}
    ]
    store.delete(("docs",), "never-written")  # nothing to delete: no error
    store.put(("docs",), "report", {"v": 4})  # and the key can be used again
    assert store.get(("docs",), "report").value == {"v": 4}


def test_a_batch_reads_before_its_puts_and_the_last_put_of_an_item_wins(
    store: MemoryStore,
) -> None:
    store.put(("n",), "x", {"v": 0})
    results = store.batch(
        [
            PutOp(("n",), "x", {"v": 1}),
            GetOp(("n",), "x"),
            PutOp(("n",), "x", {"v": 2}),
            PutOp(("n",), "y", {"v": 3}),
            PutOp(("n",), "y", None),
            SearchOp(("n",)),
        ]
    )
    assert results[0] is None and results[2] is None
    assert results[1].value == {"v": 0}
    assert [i.value for i in results[5]] == [{"v": 0}]
    assert store.get(("n",), "x").value == {"v": 2}
    assert store.get(("n",), "y") is None


def test_invalid_namespaces_are_refused_before_anything_is_sent(store: MemoryStore) -> None:
    for namespace in [(), ("a.b",), ("",), ("ok", "nul\x00"), tuple("x" * 31)]:
        with pytest.raises(InvalidNamespaceError):
            store.batch([PutOp(namespace, "k", {"v": 1})])
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp(("a.b",), "k")])
    with pytest.raises(ValueError, match="Unknown operation"):
        store.batch(["not an op"])


# ---- search --------------------------------------------------------------------------------


def test_a_query_ranks_by_meaning(store: MemoryStore) -> None:
    namespace = ("memories", "dana")
    store.put(namespace, "m1", {"text": "Dana is allergic to peanuts and loves spicy ramen."})
    store.put(namespace, "m2", {"text": "Dana's laptop runs Linux and she writes Rust."})
    store.put(namespace, "m3", {"text": "Dana lives in Lisbon, near the river."})
    store.put(("memories", "eve"), "m1", {"text": "Eve only eats pizza."})  # another prefix

    food = store.search(("memories", "dana"), query="What can Dana eat for dinner?", limit=3)
    assert food[0].key == "m1"
    assert {i.key for i in food} == {"m1", "m2", "m3"}
    assert all(i.namespace == namespace for i in food)
    scores = [i.score for i in food]
    assert all(isinstance(s, float) for s in scores) and scores == sorted(scores, reverse=True)
    code = store.search(("memories",), query="programming languages and operating systems")
    assert code[0].key == "m2"
    assert [i.key for i in store.search(("memories",), query="programming", limit=1)] == ["m2"]
    assert len(store.search(namespace, query="home town", offset=2, limit=5)) == 1


def test_identical_texts_under_different_keys_are_all_ranked(store: MemoryStore) -> None:
    for key in ("a", "b", "c"):
        store.put(("dup",), key, {"text": "The same sentence, word for word."})
    found = store.search(("dup",), query="the same sentence")
    assert sorted(i.key for i in found) == ["a", "b", "c"]


def test_unindexed_items_follow_the_ranked_ones_without_a_score(
    live: LiveServer, agent: Agent
) -> None:
    with MemoryStore(base_url=live.url, api_key=agent["key"], fields=["text"]) as store:
        store.put(("docs",), "ranked", {"text": "a recipe for tomato soup", "id": 1})
        store.put(("docs",), "plain", {"text": "tomato soup", "id": 2}, index=False)
        store.put(("docs",), "no-field", {"title": "tomato soup"})  # no `text`: nothing to embed
        found = store.search(("docs",), query="tomato soup")
        # each item once: the ranked one scored, then the unindexed ones, newest first
        assert [(i.key, i.score is None) for i in found] == [
            ("ranked", False),
            ("no-field", True),
            ("plain", True),
        ]
        with MemoryClient(live.url, agent["key"]) as sdk:
            contents = {m.metadata["langgraph"]["key"]: m.content for m in stored(sdk)}
        assert contents["ranked"] == "a recipe for tomato soup"  # only the indexed field
        assert json.loads(contents["plain"]) == {"text": "tomato soup", "id": 2}


def test_without_a_query_items_list_newest_first_with_limit_and_offset(
    store: MemoryStore,
) -> None:
    for i in range(5):
        store.put(("pages", "p"), f"k{i}", {"i": i})
    store.put(("pages-other",), "k", {"i": 99})
    everything = store.search(("pages",), limit=10)
    assert [i.key for i in everything] == ["k4", "k3", "k2", "k1", "k0"]
    assert all(i.score is None for i in everything)
    pages = [store.search(("pages",), limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [[i.key for i in page] for page in pages] == [["k4", "k3"], ["k2", "k1"], ["k0"]]
    assert store.search(("pages",), limit=0) == []
    assert len(store.search((), limit=10)) == 6


FILTER_ITEMS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("shop", "fruit"), "apple", {"color": "red", "price": 1.5, "tags": ["a", "b"], "n": {"x": 1}}),
    (("shop", "fruit"), "banana", {"color": "yellow", "price": 0.5, "tags": ["a"], "n": {"x": 2}}),
    (("shop", "fruit"), "cherry", {"color": "red", "price": 4, "stock": None, "n": {"x": 1}}),
    (("shop", "veg"), "pepper", {"color": "red", "price": "3", "n": {"x": 1, "y": 2}}),
    (("shop", "veg"), "kale", {"color": "green", "price": 2.0}),
]
FILTERS: list[dict[str, Any]] = [
    {"color": "red"},
    {"color": "red", "price": 1.5},
    {"price": {"$gt": 1}},
    {"price": {"$gte": 1.5, "$lt": 4}},
    {"price": {"$lte": 1.5}},
    {"color": {"$ne": "red"}},
    {"color": {"$eq": "green"}},
    {"tags": ["a", "b"]},
    {"n": {"x": 1}},
    {"stock": None},
    {"missing": "value"},
]


@pytest.mark.parametrize("query", [None, "red fruit"])
def test_filters_select_what_in_memory_store_selects(store: MemoryStore, query: str | None) -> None:
    reference = both(FILTER_ITEMS, store)
    for prefix in [("shop",), ("shop", "fruit")]:
        for condition in FILTERS:
            ours = store.search(prefix, filter=condition, query=query, limit=100)
            theirs = reference.search(prefix, filter=condition, limit=100)
            assert sorted(i.key for i in ours) == sorted(i.key for i in theirs), condition
            assert all(i.namespace[: len(prefix)] == prefix for i in ours)
    red = store.search(("shop",), filter={"color": "red"}, limit=1, offset=1)
    assert len(red) == 1 and red[0].value["color"] == "red"
    # the best match for the query fails the filter: the page still holds one that passes
    green = store.search(("shop",), query="red fruit", filter={"color": "green"}, limit=1)
    assert [i.key for i in green] == ["kale"]
    # Where InMemoryStore raises (an ordering on a missing or non-numeric field), nothing matches.
    store.put(("odd",), "no-price", {"color": "red"})
    store.put(("odd",), "word-price", {"price": "cheap"})
    assert store.search(("odd",), filter={"price": {"$gt": 0}}, query=query) == []
    with pytest.raises(ValueError, match="Unsupported operator"):
        store.search(("odd",), filter={"price": {"$in": [1]}})


# ---- namespaces ------------------------------------------------------------------------------

NAMESPACES = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("x", "y", "v1"),
    ("x", "z", "v1"),
    ("x",),
]


def test_namespaces_list_as_in_memory_store_lists_them(store: MemoryStore) -> None:
    reference = both([(ns, "k", {"v": 1}) for ns in NAMESPACES], store)
    store.put(("gone",), "k", {"v": 1})
    store.delete(("gone",), "k")
    asks: list[dict[str, Any]] = [
        {},
        {"prefix": ("a", "b")},
        {"prefix": ("a", "b"), "max_depth": 3},
        {"prefix": ("a",), "max_depth": 2},
        {"suffix": ("f",)},
        {"suffix": ("v1",), "prefix": ("x",)},
        {"prefix": ("a", "*", "f")},
        {"prefix": ("*", "b")},
        {"suffix": ("*", "v1")},
        {"max_depth": 1},
        {"limit": 3},
        {"limit": 2, "offset": 3},
        {"prefix": ("nothing",)},
    ]
    for ask in asks:
        assert store.list_namespaces(**ask) == reference.list_namespaces(**ask), ask
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]


# ---- TTL -------------------------------------------------------------------------------------


def test_a_ttl_becomes_the_memorys_expiry_and_the_item_expires(
    store: MemoryStore, sdk: MemoryClient
) -> None:
    assert store.supports_ttl
    start = datetime.now(UTC)
    store.put(("ttl",), "short", {"v": 1}, ttl=0.03)  # 1.8 seconds
    store.put(("ttl",), "long", {"v": 2}, ttl=60)
    store.put(("ttl",), "none", {"v": 3})
    expiries = {m.metadata["langgraph"]["key"]: m.expires_at for m in stored(sdk)}
    assert expiries["none"] is None
    assert expiries["short"] is not None and expiries["long"] is not None
    assert abs((expiries["short"] - start).total_seconds() - 1.8) < 1.5
    assert abs((expiries["long"] - start).total_seconds() - 3600) < 5
    assert store.get(("ttl",), "short", refresh_ttl=False) is not None

    time.sleep(max(0.0, (expiries["short"] - datetime.now(UTC)).total_seconds()) + 0.3)
    assert store.get(("ttl",), "short") is None
    assert sorted(i.key for i in store.search(("ttl",))) == ["long", "none"]
    assert store.list_namespaces() == [("ttl",)]

    store.put(("ttl",), "long", {"v": 2})  # a put without a TTL: the item no longer expires
    assert {m.metadata["langgraph"]["key"]: m.expires_at for m in stored(sdk)}["long"] is None


def test_a_read_restarts_the_ttl_unless_told_not_to(store: MemoryStore, sdk: MemoryClient) -> None:
    store.put(("ttl",), "item", {"v": 1}, ttl=1)

    def expires() -> datetime:
        (memory,) = stored(sdk)
        assert memory.expires_at is not None
        return memory.expires_at

    first = expires()
    time.sleep(0.05)
    store.get(("ttl",), "item", refresh_ttl=False)
    assert expires() == first
    store.get(("ttl",), "item")
    second = expires()
    assert second > first
    time.sleep(0.05)
    store.search(("ttl",))
    assert expires() > second
    assert store.get(("ttl",), "item").value == {"v": 1}


def test_the_ttl_config_sets_default_ttl_and_refresh(live: LiveServer, agent: Agent) -> None:
    ttl = {"default_ttl": 10.0, "refresh_on_read": False}
    with (
        MemoryStore(base_url=live.url, api_key=agent["key"], ttl=ttl) as store,
        MemoryClient(live.url, agent["key"]) as sdk,
    ):
        store.put(("cfg",), "k", {"v": 1})
        (memory,) = stored(sdk)
        assert memory.expires_at is not None
        assert 590 < (memory.expires_at - datetime.now(UTC)).total_seconds() <= 600
        store.get(("cfg",), "k")
        assert stored(sdk)[0].expires_at == memory.expires_at  # refresh_on_read is off
        with pytest.raises(ValueError, match="positive"):
            store.put(("cfg",), "k", {"v": 1}, ttl=0)


# ---- async -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_async_methods_do_the_same_through_the_async_client(
    live: LiveServer, agent: Agent
) -> None:
    async with (
        AsyncMemoryClient(live.url, agent["key"]) as client,
        MemoryStore(async_client=client) as store,
    ):
        await store.aput(("users", "dana"), "food", {"text": "Dana loves ramen", "n": 1})
        await store.aput(("users", "dana"), "city", {"text": "Dana lives in Lisbon", "n": 2})
        await store.aput(("users", "eve"), "food", {"text": "Eve likes pizza", "n": 3}, ttl=5)
        await store.aput(("users", "dana"), "food", EXACT_VALUE)
        item = await store.aget(("users", "dana"), "food")
        assert item is not None and item.value == EXACT_VALUE
        found = await store.asearch(("users",), query="Where does Dana live?", limit=1)
        assert [(i.namespace, i.key) for i in found] == [(("users", "dana"), "city")]
        filtered = await store.asearch(("users",), filter={"n": {"$gte": 2}})
        assert sorted(i.key for i in filtered) == ["city", "food"]
        assert {i.namespace for i in filtered} == {("users", "dana"), ("users", "eve")}
        assert await store.alist_namespaces(prefix=("users",)) == [
            ("users", "dana"),
            ("users", "eve"),
        ]
        assert await store.alist_namespaces(suffix=("eve",), max_depth=1) == [("users",)]
        results = await store.abatch(
            [GetOp(("users", "eve"), "food"), PutOp(("users", "eve"), "food", None)]
        )
        assert results[0].value["text"] == "Eve likes pizza"
        assert await store.aget(("users", "eve"), "food") is None
        assert store._owned == []  # the client was passed in: the store made none
    with MemoryClient(live.url, agent["key"]) as sdk:
        assert len(stored(sdk, ALL_STATUSES)) == 3  # dana's two items and a replaced value


@pytest.mark.anyio
async def test_concurrent_async_puts_of_many_items(live: LiveServer, agent: Agent) -> None:
    async with MemoryStore(base_url=live.url, api_key=agent["key"]) as store:
        await asyncio.gather(
            *(store.aput(("many",), f"k{i}", {"i": i}) for i in range(12)),
        )
        await store.abatch([PutOp(("many",), f"b{i}", {"i": i}) for i in range(150)])
        listed = await store.asearch(("many",), limit=500)
        assert len(listed) == 162
        assert {i.key: i.value["i"] for i in listed if i.key.startswith("b")} == {
            f"b{i}": i for i in range(150)
        }
        assert store._owned and isinstance(store._owned[0], AsyncMemoryClient)
    assert store._owned == []  # closed by `async with`


# ---- a graph, langmem, isolation -------------------------------------------------------------


class ChatState(TypedDict):
    user: str
    question: str
    answer: str


def answer_from_memory(state: ChatState, runtime: Runtime[None]) -> dict[str, str]:
    assert runtime.store is not None
    namespace = ("users", state["user"])
    found = runtime.store.search(namespace, query=state["question"], limit=1)
    seen = runtime.store.get(namespace, "questions")
    count = seen.value["count"] if seen is not None else 0
    asked = {"count": count + 1, "last": state["question"]}
    runtime.store.put(namespace, "questions", asked, index=False)  # never an answer
    return {"answer": found[0].value["text"] if found else "I don't know yet."}


def test_a_compiled_graph_reads_and_writes_through_the_store(
    store: MemoryStore, sdk: MemoryClient
) -> None:
    builder = StateGraph(ChatState)
    builder.add_node("answer", answer_from_memory)
    builder.add_edge(START, "answer")
    graph = builder.compile(store=store)

    store.put(("users", "dana"), "food", {"text": "Dana loves spicy ramen."})
    store.put(("users", "dana"), "work", {"text": "Dana is a structural engineer."})
    first = graph.invoke({"user": "dana", "question": "What should I cook for Dana?"})
    assert first["answer"] == "Dana loves spicy ramen."
    second = graph.invoke({"user": "dana", "question": "What is Dana's job?"})
    assert second["answer"] == "Dana is a structural engineer."
    assert graph.invoke({"user": "eve", "question": "Food?"})["answer"] == "I don't know yet."

    counters = [m for m in stored(sdk) if m.metadata["langgraph"]["key"] == "questions"]
    namespaces = sorted(m.metadata["langgraph"]["namespace"] for m in counters)
    assert namespaces == [["users", "dana"], ["users", "eve"]]
    dana = store.get(("users", "dana"), "questions")
    assert dana is not None
    assert dana.value == {"count": 2, "last": "What is Dana's job?"}
    context = sdk.context("What is Dana's job?", budget_tokens=300).context
    assert "structural engineer" in context  # the items are memories the server's reads see


def test_langmem_memory_tools_work_on_the_store(store: MemoryStore) -> None:
    manage = create_manage_memory_tool(namespace=("memories", "dana"), store=store)
    search = create_search_memory_tool(namespace=("memories", "dana"), store=store)

    created = manage.invoke({"content": "Dana prefers email over phone calls.", "action": "create"})
    memory_id = created.rsplit(" ", 1)[-1]
    manage.invoke({"content": "Dana's favourite colour is teal.", "action": "create"})
    found = json.loads(search.invoke({"query": "How should I contact Dana?"}))
    assert found[0]["key"] == memory_id
    assert found[0]["value"] == {"content": "Dana prefers email over phone calls."}
    assert found[0]["namespace"] == ["memories", "dana"] and found[0]["score"] is not None

    manage.invoke(
        {"content": "Dana prefers text messages now.", "action": "update", "id": memory_id}
    )
    item = store.get(("memories", "dana"), memory_id)
    assert item is not None and item.value == {"content": "Dana prefers text messages now."}
    manage.invoke({"action": "delete", "id": memory_id})
    assert store.get(("memories", "dana"), memory_id) is None
    remaining = json.loads(search.invoke({"query": "contact"}))
    assert [m["value"]["content"] for m in remaining] == ["Dana's favourite colour is teal."]


@pytest.mark.anyio
async def test_langmem_tools_run_async_too(store: MemoryStore) -> None:
    manage = create_manage_memory_tool(namespace=("memories",), store=store)
    search = create_search_memory_tool(namespace=("memories",), store=store)
    await manage.ainvoke({"content": "The deploy runs on Fridays.", "action": "create"})
    found = json.loads(await search.ainvoke({"query": "When is the deploy?"}))
    assert [m["value"]["content"] for m in found] == ["The deploy runs on Fridays."]
    await store.aclose()


def test_two_agents_stores_are_isolated(
    live: LiveServer, admin: httpx.Client, make_agent: Callable[[], Agent]
) -> None:
    alice, bob = make_agent(), make_agent()
    grant = admin.post(
        f"/v1/namespaces/{alice['namespace_id']}/grants",
        json={"agent_id": bob["id"], "permission": "read"},
    )
    assert grant.status_code == 201, grant.text
    with (
        MemoryStore(base_url=live.url, api_key=alice["key"]) as alices,
        MemoryStore(base_url=live.url, api_key=bob["key"]) as bobs,
    ):
        alices.put(("notes",), "plan", {"text": "Alice's secret plan"})
        bobs.put(("notes",), "plan", {"text": "Bob's plan"})
        assert alices.namespace_id() == alice["namespace_id"]
        assert bobs.namespace_id() == bob["namespace_id"]
        # Bob may read Alice's namespace, but his store keeps to his own.
        assert bobs.get(("notes",), "plan").value == {"text": "Bob's plan"}
        assert [i.value for i in bobs.search(("notes",), query="secret plan")] == [
            {"text": "Bob's plan"}
        ]
        assert alices.get(("notes",), "plan").value == {"text": "Alice's secret plan"}
    # Named explicitly, the shared namespace is readable, and the grant's limits hold.
    with MemoryStore(
        base_url=live.url, api_key=bob["key"], namespace_id=alice["namespace_id"]
    ) as shared:
        assert shared.get(("notes",), "plan").value == {"text": "Alice's secret plan"}
        with pytest.raises(PermissionDeniedError):
            shared.put(("notes",), "plan", {"text": "Bob was here"})


def test_the_default_namespace_is_the_keys_own_not_a_shared_one() -> None:
    def namespace(id_: str, permission: str) -> dict[str, Any]:
        return {
            "id": id_,
            "name": "default",
            "owner_agent_id": "agt_x",
            "is_default": True,
            "created_at": "2026-01-01T00:00:00Z",
            "permission": permission,
        }

    shared_first = NamespacesPublic(
        data=[namespace("ns_shared", "write"), namespace("ns_own", "owner")], count=2
    )
    assert _own_default(shared_first) == "ns_own"
    with pytest.raises(ValueError, match="namespace_id"):
        _own_default(NamespacesPublic(data=[namespace("ns_any", "admin")], count=1))


def test_a_store_needs_a_namespace_for_a_key_without_its_own(
    live: LiveServer, agent: Agent
) -> None:
    with (
        MemoryStore(base_url=live.url, api_key=ADMIN_KEY) as store,
        pytest.raises(ValueError, match="namespace_id"),
    ):
        store.get(("a",), "k")
    with MemoryStore(base_url=live.url, api_key=ADMIN_KEY, namespace_id=agent["namespace_id"]) as s:
        s.put(("a",), "k", {"by": "admin"})
    with MemoryStore(base_url=live.url, api_key=agent["key"]) as store:
        assert store.get(("a",), "k").value == {"by": "admin"}
    with MemoryClient(live.url, agent["key"]) as client, pytest.raises(ValueError, match="both"):
        MemoryStore(client, api_key="mk_other")


def test_a_given_client_is_used_and_left_open(live: LiveServer, agent: Agent) -> None:
    seen: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]})
    with MemoryClient(live.url, agent["key"], http_client=http) as client:
        with MemoryStore(client) as store:
            store.put(("c",), "k", {"v": 1})
        assert client.me().agent_id == agent["id"]  # still open
    assert "/v1/memories/batch" in seen
    http.close()


# ---- packaging and the README ----------------------------------------------------------------


def test_the_module_says_how_to_install_langgraph_when_it_is_missing() -> None:
    code = (
        "import sys; sys.modules['langgraph'] = None\n"
        "import memory_client\n"
        "try:\n    import memory_client.langgraph\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'memory-client[langgraph]'" in out.stdout
    plain = "import sys, memory_client; print('langgraph' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the SDK itself does not import LangGraph


def test_the_readme_example_runs_as_written(
    live: LiveServer, agent: Agent, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    block = README.read_text().split("<!-- readme-test: langgraph -->")[1]
    code = block.split("```python")[1].split("```")[0]
    monkeypatch.setenv("MEMORY_URL", live.url)
    monkeypatch.setenv("MEMORY_API_KEY", agent["key"])
    exec(compile(code, "README.md:langgraph", "exec"), {"__name__": "readme_langgraph"})
    assert capsys.readouterr().out.splitlines() == ["Dana loves spicy ramen."]
    with MemoryClient(live.url, agent["key"]) as sdk:
        keys = sorted(m.metadata["langgraph"]["key"] for m in stored(sdk))
    assert keys == ["city", "food", "last_question"]
