"""Exact search over in-memory copies of the namespaces' vectors answers as the index does, and
follows every write made through it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memory_server.config import Settings
from memory_server.vector_cache import VectorCache
from memory_server.vectors import ChromaVectorStore, VectorRecord, VectorStore, open_vector_store
from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients

DIMENSION = 16


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def records(namespace_id: str, vectors: np.ndarray, prefix: str) -> list[VectorRecord]:
    return [
        VectorRecord(f"{prefix}{i}", vector.tolist(), {"namespace_id": namespace_id})
        for i, vector in enumerate(vectors)
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[VectorStore]:
    settings = Settings(data_dir=tmp_path / "var", admin_key=ADMIN_KEY, vector_cache_vectors=0)
    chroma = open_vector_store(settings)
    assert isinstance(chroma, ChromaVectorStore)  # no cache: the index itself
    chroma.reset("model")
    rng = np.random.default_rng(7)
    chroma.upsert(records("ns_a", unit(rng, 300), "a"))
    chroma.upsert(records("ns_b", unit(rng, 200), "b"))
    try:
        yield chroma
    finally:
        release_chroma_clients()


def ids(hits: Sequence[Any]) -> list[str]:
    return [hit.id for hit in hits]


def test_the_copies_answer_as_the_index_does(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    for query in unit(np.random.default_rng(1), 20):
        for namespaces, k in ((["ns_a"], 10), (["ns_b"], 50), (["ns_a", "ns_b"], 20)):
            expected = store.query(query.tolist(), k, namespaces)
            found = cache.query(query.tolist(), k, namespaces)
            assert ids(found) == ids(expected)
            assert [h.similarity for h in found] == pytest.approx(
                [h.similarity for h in expected], abs=1e-5
            )
    assert cache.copied_namespaces() == ["ns_a", "ns_b"]
    assert len(cache.query([1.0] + [0.0] * (DIMENSION - 1), 1000, ["ns_b"])) == 200


def test_writes_through_the_cache_reach_its_copies(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    rng = np.random.default_rng(2)
    probe = unit(rng, 1)[0]
    cache.query(probe.tolist(), 5, ["ns_a"])  # copied now
    assert cache.copied_namespaces() == ["ns_a"]

    cache.upsert([VectorRecord("new", probe.tolist(), {"namespace_id": "ns_a"})])
    assert ids(cache.query(probe.tolist(), 1, ["ns_a"])) == ["new"]
    assert cache.query(probe.tolist(), 1, ["ns_a"])[0].similarity == pytest.approx(1.0)

    other = unit(rng, 1)[0]  # the same id, a new vector: the old one is gone
    cache.upsert([VectorRecord("new", other.tolist(), {"namespace_id": "ns_a"})])
    assert ids(cache.query(other.tolist(), 1, ["ns_a"])) == ["new"]
    assert "new" not in ids(cache.query(probe.tolist(), 301, ["ns_a"])[:1])

    cache.delete(["new", "a0"], ["ns_a"])
    left = ids(cache.query(other.tolist(), 1000, ["ns_a"]))
    assert "new" not in left and "a0" not in left and len(left) == 299
    cache.delete(["a1"])  # no namespace named: looked for everywhere
    assert "a1" not in ids(cache.query(other.tolist(), 1000, ["ns_a"]))
    for query in unit(rng, 5):  # still the index's answers
        assert ids(cache.query(query.tolist(), 10, ["ns_a"])) == ids(
            store.query(query.tolist(), 10, ["ns_a"])
        )


def test_a_filtered_query_is_the_index_s(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    query = unit(np.random.default_rng(3), 1)[0].tolist()
    where = {"namespace_id": "ns_a"}
    expected = store.query(query, 10, ["ns_a"], where)
    assert ids(cache.query(query, 10, ["ns_a"], where)) == ids(expected)
    assert cache.copied_namespaces() == []  # a filter never loads a copy


def test_a_write_while_a_namespace_is_read_voids_the_read(store: VectorStore) -> None:
    class Racing:  # the store, with a write landing while the namespace's vectors are read
        def __init__(self, inner: VectorStore) -> None:
            self.inner = inner
            self.cache: VectorCache | None = None
            self.raced = False

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def namespace_vectors(self, namespace_id: str) -> tuple[list[str], np.ndarray]:
            read = self.inner.namespace_vectors(namespace_id)  # read before the write...
            if not self.raced and self.cache is not None:
                self.raced = True
                writer = threading.Thread(
                    target=self.cache.upsert,
                    args=([VectorRecord("late", probe, {"namespace_id": namespace_id})],),
                )
                writer.start()  # ...which lands before the read is kept
                writer.join()
            return read

    probe = unit(np.random.default_rng(4), 1)[0].tolist()
    racing = Racing(store)
    cache = VectorCache(racing, max_vectors=10_000, retry_after=0)  # type: ignore[arg-type]
    racing.cache = cache
    assert ids(cache.query(probe, 1, ["ns_a"])) == ["late"]  # from the index: the read was void
    assert cache.copied_namespaces() == []
    assert ids(cache.query(probe, 1, ["ns_a"])) == ["late"]  # copied again, with the write
    assert cache.copied_namespaces() == ["ns_a"]

    racing_again = Racing(store)
    waiting = VectorCache(racing_again, max_vectors=10_000)  # type: ignore[arg-type]
    racing_again.cache = waiting
    waiting.query(probe, 1, ["ns_b"])  # voided: ns_b is left to the index for a while
    waiting.query(probe, 1, ["ns_b"])
    assert waiting.copied_namespaces() == []


def test_a_failed_load_leaves_the_namespace_to_the_index_for_a_while(store: VectorStore) -> None:
    class Flaky:  # the store, failing to hand over a namespace's vectors once
        def __init__(self, inner: VectorStore) -> None:
            self.inner = inner
            self.failures = 1

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def namespace_vectors(self, namespace_id: str) -> tuple[list[str], np.ndarray]:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("the index hiccuped")
            return self.inner.namespace_vectors(namespace_id)

    query = unit(np.random.default_rng(9), 1)[0].tolist()
    for retry_after, copied in ((10.0, []), (0.0, ["ns_a"])):
        flaky: Any = Flaky(store)
        cache = VectorCache(flaky, max_vectors=10_000, retry_after=retry_after)
        for _ in range(2):  # the index answers either way
            assert ids(cache.query(query, 10, ["ns_a"])) == ids(store.query(query, 10, ["ns_a"]))
        assert cache.copied_namespaces() == copied


def test_a_failed_write_drops_the_copy(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    query = unit(np.random.default_rng(5), 1)[0].tolist()
    cache.query(query, 5, ["ns_a", "ns_b"])
    bad = [VectorRecord("bad", [1.0, 0.0], {"namespace_id": "ns_a"})]  # wrong dimension
    with pytest.raises(Exception):  # noqa: B017  # whatever Chroma raises
        cache.upsert(bad)
    assert cache.copied_namespaces() == ["ns_b"]
    assert ids(cache.query(query, 10, ["ns_a"])) == ids(store.query(query, 10, ["ns_a"]))


def test_the_copies_stay_within_their_bounds(store: VectorStore) -> None:
    query = unit(np.random.default_rng(6), 1)[0].tolist()
    cache = VectorCache(store, max_vectors=400)  # room for one of the two namespaces
    cache.query(query, 5, ["ns_a"])
    cache.query(query, 5, ["ns_b"])
    assert cache.copied_namespaces() == ["ns_b"]  # the least recently used went
    growing = VectorCache(store, max_vectors=520)
    growing.query(query, 5, ["ns_a"])
    growing.query(query, 5, ["ns_b"])  # 500 held
    growing.upsert(records("ns_b", unit(np.random.default_rng(10), 30), "b_new"))
    assert growing.copied_namespaces() == ["ns_b"]  # 530 would not fit: ns_a went
    assert growing.held_vectors == 230
    small = VectorCache(store, max_vectors=10_000, max_namespace_vectors=250)
    for namespaces in (["ns_a"], ["ns_a", "ns_b"]):
        assert ids(small.query(query, 10, namespaces)) == ids(store.query(query, 10, namespaces))
    assert small.copied_namespaces() == ["ns_b"]  # ns_a's 300 are left to the index


def test_an_old_copy_is_read_again_in_the_background(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000, max_age=0.0)  # every copy is old at once
    probe = unit(np.random.default_rng(11), 1)[0].tolist()
    cache.query(probe, 1, ["ns_b"])
    # a write that did not go through this cache (another process, a maintenance command)
    store.upsert([VectorRecord("elsewhere", probe, {"namespace_id": "ns_b"})])
    deadline = time.monotonic() + 10
    while ids(cache.query(probe, 1, ["ns_b"])) != ["elsewhere"]:  # served old, then reread
        assert time.monotonic() < deadline, "the old copy was never read again"
        time.sleep(0.02)
    assert cache.copied_namespaces() == ["ns_b"]


def test_the_vectors_in_memory_are_the_index_s_and_follow_its_writes(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    probe = unit(np.random.default_rng(12), 1)[0].tolist()
    assert store.vectors_in_memory(["ns_a"]) is None  # Chroma keeps its own
    assert cache.vectors_in_memory(["ns_a"]) is None  # nothing copied yet, and asking loads none
    assert cache.copied_namespaces() == []
    cache.query(probe, 1, ["ns_a"])
    assert cache.vectors_in_memory(["ns_a", "ns_b"]) is None  # every namespace, or none
    cache.query(probe, 1, ["ns_b"])
    held = cache.vectors_in_memory(["ns_a", "ns_b"])
    assert (
        held is not None
        and len(held) == 500
        and set(held)
        == {
            *(f"a{i}" for i in range(300)),
            *(f"b{i}" for i in range(200)),
        }
    )
    indexed = store.embeddings(["a5", "b7"])
    for id_ in ("a5", "b7"):
        np.testing.assert_allclose(held[id_], indexed[id_], atol=1e-6)
    assert "elsewhere" not in held
    with pytest.raises(ValueError):  # shared by every call: nobody writes into it
        held["a5"][0] = 2.0

    cache.upsert([VectorRecord("a5", probe, {"namespace_id": "ns_a"})])
    after = cache.vectors_in_memory(["ns_a"])
    assert after is not None
    np.testing.assert_allclose(after["a5"], probe, atol=1e-6)
    np.testing.assert_allclose(held["a5"], indexed["a5"], atol=1e-6)  # a snapshot stays whole
    cache.delete(["b7"], ["ns_b"])
    assert "b7" not in cache.vectors_in_memory(["ns_b"]) and "b7" in held  # type: ignore[operator]


def test_warming_copies_namespaces_in_order_as_long_as_they_fit(store: VectorStore) -> None:
    asked: list[str] = []

    def wanted() -> Iterator[str]:
        asked.append("ns_a")
        yield "ns_a"

    assert store.warm(wanted(), 10) == 0 and asked == []  # Chroma keeps nothing ready
    cache = VectorCache(store, max_vectors=400)
    assert cache.warm(["ns_b", "ns_a"], 10) == 1  # ns_a's 300 do not fit beside ns_b's 200
    assert cache.copied_namespaces() == ["ns_b"]
    assert cache.warm(["ns_a"], 10) == 0  # nothing is evicted to warm another
    assert cache.copied_namespaces() == ["ns_b"]
    roomy = VectorCache(store, max_vectors=10_000)
    assert roomy.warm(["ns_a", "ns_b"], 0) == 0  # no time
    assert roomy.warm(["ns_a", "ns_b"], 10) == 2 and roomy.warm(["ns_a"], 10) == 0
    query = unit(np.random.default_rng(14), 1)[0].tolist()
    assert ids(roomy.query(query, 10, ["ns_a"])) == ids(store.query(query, 10, ["ns_a"]))


def test_a_start_copies_the_namespaces_read_most_recently(server: LiveServer, make_agent) -> None:
    read, unread = make_agent(), make_agent()
    for agent in (read, unread):
        notes = [{"content": f"Note {i} about the launch checklist"} for i in range(3)]
        assert agent.client.post("/v1/memories/batch", json={"memories": notes}).status_code == 201
    body = {"query": "the launch checklist", "budget_tokens": 200}
    assert read.client.post("/v1/context", json=body).json()["items"]
    server.app.state.runtime.recorder.flush()  # the access is written down
    server.stop()
    release_chroma_clients()
    server.start()
    # before any query: the namespace read before the restart is copied, the other is not
    assert server.app.state.runtime.vectors.copied_namespaces() == [read.namespace_id]


def test_a_reset_drops_every_copy(store: VectorStore) -> None:
    cache = VectorCache(store, max_vectors=10_000)
    query = unit(np.random.default_rng(8), 1)[0].tolist()
    cache.query(query, 5, ["ns_a"])
    cache.reset("another-model")
    assert cache.copied_namespaces() == []
    assert cache.query(query, 5, ["ns_a"]) == []
    assert cache.embedding_model() == "another-model"


def test_only_an_embedded_index_gets_copies(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path / "var", admin_key=ADMIN_KEY)
    try:
        assert isinstance(open_vector_store(embedded), VectorCache)
        off = embedded.model_copy(update={"vector_cache_vectors": 0})
        assert isinstance(open_vector_store(off), ChromaVectorStore)
    finally:
        release_chroma_clients()
    with pytest.raises(ValueError):
        Settings(vector_cache_vectors=-1)
