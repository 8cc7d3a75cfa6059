"""Query embeddings: batched across concurrent calls, cached, and on every lane for a lone call.

The model is the real one; `Watched` only records what `QueryEmbedder` asks of it (which texts,
on how many threads) and can hold a forward pass until the test lets it go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from memory_server.config import Settings
from memory_server.embeddings import Embedder, QueryEmbedder, load_embedder


class Watched:
    def __init__(self, model: Embedder):
        self.model = model
        self.calls: list[tuple[list[str], int | None]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def dimension(self) -> int:
        return self.model.dimension

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        self.calls.append((list(texts), threads))
        self.entered.set()
        assert self.gate.wait(timeout=30)
        return self.model.embed(texts, threads=threads)


@pytest.fixture(scope="module")
def model() -> Embedder:
    settings = Settings()
    return load_embedder(settings.embedding_model, runtime=settings.embedding_runtime)


@pytest.fixture
def watched(model: Embedder) -> Watched:
    return Watched(model)


@pytest.fixture
def queries(watched: Watched) -> Iterator[QueryEmbedder]:
    embedder = QueryEmbedder(watched)
    yield embedder
    embedder.close()


def test_a_lone_calls_query_runs_on_every_lane(
    queries: QueryEmbedder, watched: Watched, model: Embedder
) -> None:
    with queries.embedding("where does Priya work now?") as pending:
        vector = pending.result(timeout=30)
    assert watched.calls == [(["where does Priya work now?"], None)]
    assert np.allclose(vector, model.embed(["where does Priya work now?"])[0], atol=1e-5)


def test_a_query_beside_a_working_call_runs_on_one_lane(
    queries: QueryEmbedder, watched: Watched
) -> None:
    with queries.embedding("first call") as first:
        first.result(timeout=30)  # the first call is still at work (ranking, say)
        with queries.embedding("second call") as second:
            second.result(timeout=30)
    assert watched.calls == [(["first call"], None), (["second call"], 1)]
    with queries.embedding("a later lone call") as later:  # both calls ended
        later.result(timeout=30)
    assert watched.calls[-1] == (["a later lone call"], None)


def test_a_call_that_fails_stops_counting_as_at_work(
    queries: QueryEmbedder, watched: Watched
) -> None:
    with pytest.raises(RuntimeError), queries.embedding("a call that fails") as failing:
        failing.result(timeout=30)
        raise RuntimeError("the call's SQL failed")
    with queries.embedding("the next call") as pending:
        pending.result(timeout=30)
    assert watched.calls[-1] == (["the next call"], None)


def test_queries_waiting_together_share_one_forward_pass(
    queries: QueryEmbedder, watched: Watched
) -> None:
    watched.gate.clear()
    first = queries.submit("held in the model")
    assert watched.entered.wait(timeout=30)
    waiting = [queries.submit(text) for text in ("one", "two", "one")]
    watched.gate.set()
    vectors = [future.result(timeout=30) for future in [first, *waiting]]
    assert [texts for texts, _ in watched.calls] == [["held in the model"], ["one", "two"]]
    assert vectors[1] == vectors[3] and vectors[1] != vectors[2]


def test_a_repeated_query_is_answered_from_the_cache(
    queries: QueryEmbedder, watched: Watched
) -> None:
    vector = queries.embed("what is the billing migration's status?")
    again = queries.submit("what is the billing migration's status?")
    assert again.done() and again.result() == vector
    assert len(watched.calls) == 1
