"""The ranking policy's parts, on real memories and the real embedding model where it matters."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from memory_server.embeddings import load_embedder
from memory_server.keyword import STRONG_MATCH, query_terms
from memory_server.models import Memory
from memory_server.ranking import (
    Candidate,
    RankingOptions,
    RankingWeights,
    asks_about_present,
    for_query,
    length_factor,
    rank,
    score_candidates,
    select_diverse,
)
from memory_server.records import MemoryRecord
from memory_server.statements import StatementEmbedder, asks_only, statement_text

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def memory(
    content: str,
    *,
    days_ago: float = 10,
    memory_id: str | None = None,
    thread_id: str | None = None,
    role: str | None = None,
    namespace_id: str = "ns_test",
) -> MemoryRecord:
    created = NOW - timedelta(days=days_ago)
    return MemoryRecord.of(
        Memory(
            id=memory_id or f"mem_{abs(hash(content)) % 10**8}",
            namespace_id=namespace_id,
            kind="message",
            role=role,
            thread_id=thread_id,
            content=content,
            content_hash=str(hash(content)),
            created_at=created,
            updated_at=created,
        )
    )


def test_statements_leave_out_questions_unless_there_is_nothing_else() -> None:
    mixed = "I moved to Lisbon in May. Any tips for finding a flat?"
    assert statement_text(mixed) == "I moved to Lisbon in May."
    assert statement_text("Where should we eat tonight?") == "Where should we eat tonight?"
    assert statement_text("No questions here. Just facts!") == "No questions here. Just facts!"
    assert asks_only("Where should we eat? Any ideas?")
    assert not asks_only(mixed) and not asks_only("")


def test_a_statement_vector_matches_a_question_about_the_fact_better() -> None:
    model = load_embedder("all-MiniLM-L6-v2")
    statements = StatementEmbedder(model)
    assert statements.name == f"{model.name}+statements-v1"  # a new recipe rebuilds the index
    text = "I started a new job as a nurse at Tandem Bikes. Can you recommend comfortable shoes?"
    query = np.asarray(model.embed(["Where do I work?"])[0])
    whole = np.asarray(model.embed([text])[0])
    stated = np.asarray(statements.embed([text])[0])
    assert float(query @ stated) > float(query @ whole)


def test_keyword_relevance_is_relative_to_at_least_a_strong_match() -> None:
    weak = Candidate(memory("weak", memory_id="w0"), None, 0.5, 0.2 * STRONG_MATCH)
    strong = Candidate(memory("strong", memory_id="s"), None, 0.5, 3 * STRONG_MATCH)
    alone = score_candidates([weak], RankingOptions(), NOW)[0]
    assert alone.components.keyword == 0.2  # a lone weak match is not promoted to 1.0
    together = {r.memory.id: r for r in score_candidates([weak, strong], RankingOptions(), NOW)}
    assert together["s"].components.keyword == 1.0
    assert abs(together["w0"].components.keyword - 0.2 / 3) < 1e-9


def test_a_memory_that_only_asks_is_ranked_below_one_that_states() -> None:
    asks = Candidate(memory("Where do I work these days?", memory_id="q"), None, 0.6, 1.0)
    states = Candidate(memory("I work at Northwind as a recruiter.", memory_id="a"), None, 0.5, 0.8)
    ranked = score_candidates([asks, states], RankingOptions(), NOW)
    assert [r.memory.id for r in ranked] == ["a", "q"]
    assert ranked[1].components.dense == 0.3  # halved


def test_long_memories_must_earn_their_budget() -> None:
    assert length_factor("short " * 50, 0.5) == 1.0  # ~75 tokens: no penalty
    assert abs(length_factor("x" * 1280, 0.5) - 0.5) < 1e-9  # 320 tokens: (80/320) ** 0.5
    assert length_factor("x" * 1280, 0) == 1.0
    # an assistant's reply is judged against half the reference
    assert length_factor("short " * 20, 0.5, "assistant") == 1.0  # ~30 tokens
    assert abs(length_factor("x" * 640, 0.5, "assistant") - 0.5) < 1e-9  # (40/160) ** 0.5
    assert length_factor("x" * 320, 0.5, "user") == 1.0  # 80 tokens
    assert abs(length_factor("x" * 320, 0.5, "assistant") - math.sqrt(0.5)) < 1e-9
    short = Candidate(memory("I live in Porto.", memory_id="short"), None, 0.6)
    long = Candidate(memory("I live in Porto. " + "filler " * 200, memory_id="long"), None, 0.6)
    ranked = score_candidates([long, short], RankingOptions(), NOW)
    assert [r.memory.id for r in ranked] == ["short", "long"]
    assert ranked[1].score == ranked[1].components.length * ranked[0].score


def test_an_assistants_long_reply_ranks_below_a_users_fact_of_equal_relevance() -> None:
    advice = "Here is what I would do. " + "Plan the week ahead and shop once. " * 6  # ~60 tokens
    fact = "I am allergic to tree nuts, so please skip anything with them in it. " * 2
    reply = Candidate(memory(advice, memory_id="reply", role="assistant"), None, 0.5)
    user = Candidate(memory(fact, memory_id="fact", role="user"), None, 0.5)
    ranked = score_candidates([reply, user], RankingOptions(), NOW)
    assert [r.memory.id for r in ranked] == ["fact", "reply"]
    assert ranked[0].components.length == 1.0 and ranked[1].components.length < 1.0


def test_a_thread_that_keeps_to_the_topic_lends_its_turns_support() -> None:
    """Two equally relevant turns: the one whose thread also discussed the query's topic ranks
    first; its support is the mean own score of its thread's best three other candidates."""
    weights = RankingWeights(dense=1, keyword=0, recency=0, importance=0, frequency=0, thread=0.5)
    options = RankingOptions(weights=weights, length_penalty=0)
    candidates = [
        Candidate(memory("a", memory_id="alone", thread_id="t1"), None, 0.6),
        Candidate(memory("b", memory_id="answer", thread_id="t2"), None, 0.6),
        Candidate(memory("c", memory_id="asked", thread_id="t2"), None, 0.45),
        Candidate(memory("d", memory_id="aside", thread_id="t2"), None, 0.3),
        Candidate(memory("e", memory_id="nowhere"), None, 0.7),  # no thread: no support
        # another namespace's thread of the same name is another thread
        Candidate(
            memory("f", memory_id="elsewhere", thread_id="t2", namespace_id="ns_b"), None, 0.2
        ),
    ]
    ranked = {r.memory.id: r for r in score_candidates(candidates, options, NOW)}
    assert math.isclose(ranked["answer"].components.thread, (0.45 + 0.3) / 3)
    assert math.isclose(ranked["answer"].score, 0.6 + 0.5 * (0.45 + 0.3) / 3)
    assert math.isclose(ranked["asked"].components.thread, (0.6 + 0.3) / 3)
    assert ranked["alone"].components.thread == 0.0 and ranked["alone"].score == 0.6
    assert ranked["nowhere"].components.thread == 0.0 and ranked["nowhere"].score == 0.7
    assert ranked["elsewhere"].components.thread == 0.0 and ranked["elsewhere"].score == 0.2
    order = [r.memory.id for r in score_candidates(candidates, options, NOW)]
    assert order.index("answer") < order.index("alone")
    # a weight of 0 leaves every score its own
    still = RankingOptions(weights=weights.model_copy(update={"thread": 0}), length_penalty=0)
    assert [r.score for r in score_candidates(candidates, still, NOW)] == [
        0.7,
        0.6,
        0.6,
        0.45,
        0.3,
        0.2,
    ]


def test_questions_about_the_present_weigh_recency_more() -> None:
    assert asks_about_present("Where do I live these days?")
    assert asks_about_present("Where do I work now?")
    assert not asks_about_present("Where did I grow up?")
    options = for_query("Where do I work now?", RankingOptions())
    assert options.weights.recency > RankingOptions().weights.recency
    chosen = RankingOptions(weights=RankingWeights(recency=0.0))
    assert for_query("Where do I work now?", chosen).weights.recency == 0.0  # caller's choice

    old = Candidate(memory("I work at Silverline.", days_ago=200, memory_id="old"), None, 0.62)
    new = Candidate(memory("I now work at Northwind.", days_ago=5, memory_id="new"), None, 0.58)
    plain, _ = rank([old, new], RankingOptions(), NOW)
    present, _ = rank([old, new], for_query("Where do I work now?", RankingOptions()), NOW)
    assert [r.memory.id for r in plain] == ["old", "new"]
    assert [r.memory.id for r in present] == ["new", "old"]


def test_conversational_filler_is_not_a_keyword() -> None:
    assert query_terms("Remind me what city I'm based in at the moment?") == ["city", "based"]
    assert query_terms("Where do I work right now?") == ["work"]


def test_diversity_penalises_only_similarity_above_its_threshold() -> None:
    """A related but distinct memory (similarity 0.6: the old job beside the new one) keeps its
    place; a rephrasing (0.85) gives way. With no threshold, both give way to an unrelated one."""
    basis = np.eye(4)
    vectors = {
        "a": basis[0],
        "related": 0.6 * basis[0] + 0.8 * basis[1],
        "rephrased": 0.85 * basis[0] + math.sqrt(1 - 0.85**2) * basis[2],
        "unrelated": basis[3],
    }
    dense = {"a": 0.9, "rephrased": 0.8, "related": 0.7, "unrelated": 0.6}
    candidates = [
        Candidate(memory(f"note {name}", memory_id=name), vectors[name], dense=dense[name])
        for name in vectors
    ]
    weights = RankingWeights(dense=1, keyword=0, recency=0, importance=0, frequency=0)

    def order(threshold: float) -> list[str]:
        options = RankingOptions(weights=weights, diversity=0.5, diversity_threshold=threshold)
        kept, rejected = rank(candidates, options, NOW)
        assert not rejected
        return [r.memory.id for r in kept]

    assert order(0.75) == ["a", "related", "unrelated", "rephrased"]
    assert order(0.0) == ["a", "unrelated", "related", "rephrased"]


def _greedy_reference(
    scores: list[float], similarity: np.ndarray, options: RankingOptions, limit: int | None
) -> tuple[list[int], list[tuple[int, int]]]:
    """MMR as defined: every open candidate's value recomputed at every step."""
    chosen: list[int] = []
    duplicates: list[tuple[int, int]] = []
    open_ = list(range(len(scores)))
    while open_ and (limit is None or len(chosen) < limit):

        def value(i: int) -> float:
            overlap = max((float(similarity[i, c]) for c in chosen), default=0.0)
            penalty = max(overlap - options.diversity_threshold, 0.0)
            penalty /= 1.0 - options.diversity_threshold
            return (1 - options.diversity) * scores[i] - options.diversity * penalty

        best = max(open_, key=lambda i: (value(i), -i))
        open_.remove(best)
        overlaps = [float(similarity[best, c]) for c in chosen]
        if chosen and max(overlaps) >= options.duplicate_similarity:
            duplicates.append((best, chosen[int(np.argmax(overlaps))]))
            continue
        chosen.append(best)
    return chosen, duplicates


@hyp_settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 40),
    diversity=st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
    threshold=st.sampled_from([0.0, 0.5, 0.75, 0.95]),
    duplicate=st.sampled_from([0.8, 0.93, 1.0]),
    limit=st.one_of(st.none(), st.integers(1, 40)),
)
def test_lazy_mmr_picks_what_recomputing_every_value_picks(
    seed: int, size: int, diversity: float, threshold: float, duplicate: float, limit: int | None
) -> None:
    """`select_diverse` updates values lazily; it must choose, in order, what plain greedy MMR
    chooses, including ties (coarse scores) and near-duplicates (vectors repeated with noise)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(max(1, size // 3), 6))
    vectors = base[rng.integers(0, len(base), size)] + rng.normal(scale=0.2, size=(size, 6))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = (vectors @ vectors.T).astype(np.float32)
    scores = [float(s) for s in np.round(rng.uniform(0, 1, size), 1)]
    options = RankingOptions(
        diversity=diversity, diversity_threshold=threshold, duplicate_similarity=duplicate
    )
    expected = _greedy_reference(scores, similarity, options, limit)
    assert select_diverse(scores, similarity, options, limit=limit) == expected
