"""Hybrid ranking, in one place: how candidates are scored, de-duplicated and diversified.

Search and context both call `rank`. A candidate's score is a weighted sum of five components, each
in [0, 1]: dense similarity, keyword relevance, recency decay, importance and access frequency;
multiplied by a length factor in (0, 1] so that a long memory must be worth the budget it takes;
plus a share of its thread's support: how well the other candidates of its conversation thread
scored. Keyword relevance is the keyword score relative to the best in the candidate set, but
never relative to less than a strong match (`keyword.STRONG_MATCH`), so a set of weak matches does
not get full keyword weight. A memory that only asks questions ("what should I cook tonight?")
rarely holds what an agent needs to know: its dense and keyword relevance are damped.

Selection is then greedy maximal marginal relevance: each pick trades score against redundancy
with what is already picked (similarity above `diversity_threshold`, so an old job and the new one
are not redundant while two phrasings of one fact are), and near-duplicates of a pick are dropped
outright.

The defaults hold on two kinds of conversation: real multi-session dialogue between people
(LoCoMo, `bench/locomo.py`), where questions share rare words with their answers and a topic is
discussed over several turns of one session, and the generated user-assistant chats of
`bench/quality.py`, where paraphrase defeats keywords and long assistant replies crowd short user
facts. Hence dense and keyword relevance weighed 0.7 : 0.3, a length reference that lets a
typical turn through whole but judges an assistant's reply (long by habit) against a shorter
one, and a small thread weight.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .keyword import STRONG_MATCH
from .records import MemoryRecord
from .statements import asks_only

LENGTH_REFERENCE_TOKENS = 80  # memories up to this long are not penalised for length
ASSISTANT_REFERENCE_TOKENS = 40  # the same, for an assistant's message
THREAD_SUPPORT_SIZE = 3  # a thread's support: the mean score of its best this many other candidates
QUESTION_DENSE_DAMPING = 0.5  # dense relevance kept for a memory that only asks questions
QUESTION_KEYWORD_DAMPING = 0.3  # keyword relevance kept for it
FREQUENCY_SATURATION = 50  # accesses at which the frequency component reaches 1
_WORD = re.compile(r"[a-z]+")


class RankingWeights(BaseModel):
    """How much each component counts; they need not sum to 1."""

    model_config = ConfigDict(extra="forbid")

    dense: float = Field(default=0.7, ge=0)
    keyword: float = Field(default=0.3, ge=0)
    recency: float = Field(default=0.02, ge=0)
    importance: float = Field(default=0.08, ge=0)
    frequency: float = Field(default=0.01, ge=0)  # served often is weak evidence: it feeds itself
    thread: float = Field(
        default=0.1,
        ge=0,
        description="Weight of thread support: the mean score of the best other candidates of "
        "the same conversation thread, added to the score.",
    )


class RankingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: RankingWeights = Field(default_factory=RankingWeights)
    recency_half_life_days: float = Field(default=30.0, gt=0)
    min_relevance: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Candidates whose best of dense and keyword relevance is lower are dropped. "
        "Default: 0 for search (rank everything), 0.12 for context (keep noise out of prompts).",
    )
    length_penalty: float = Field(
        default=0.5,
        ge=0,
        le=2,
        description="Exponent of the length factor (reference / tokens), for memories longer than "
        f"{LENGTH_REFERENCE_TOKENS} tokens ({ASSISTANT_REFERENCE_TOKENS} for an assistant's "
        "message); 0 turns it off.",
    )
    diversity: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="MMR trade-off: 0 ranks by score alone, 1 by novelty alone.",
    )
    diversity_threshold: float = Field(
        default=0.75,
        ge=0,
        lt=1,
        description="Similarity to what is already chosen below which MMR does not penalise: "
        "related but distinct facts (an old job and the new one) are not redundant.",
    )
    duplicate_similarity: float = Field(
        default=0.93,
        gt=0,
        le=1,
        description="A candidate this similar to an already chosen one is a near-duplicate.",
    )


@dataclass
class Candidate:
    memory: MemoryRecord
    embedding: Sequence[float] | np.ndarray | None
    dense: float = 0.0
    keyword_raw: float = 0.0


@dataclass
class Components:
    dense: float
    keyword: float
    recency: float
    importance: float
    frequency: float
    length: float
    thread: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in self.__dict__.items()}


@dataclass
class Ranked:
    memory: MemoryRecord
    score: float
    components: Components
    embedding: Sequence[float] | np.ndarray | None = field(repr=False, default=None)


@dataclass
class Rejected:
    memory: MemoryRecord
    reason: str
    score: float | None = None
    duplicate_of: str | None = None


def score_candidates(
    candidates: Sequence[Candidate], options: RankingOptions, now: datetime
) -> list[Ranked]:
    """Each candidate's fused score and its components, best first."""
    scored = _own_scores(candidates, options, now)
    add_thread_support(scored, options.weights.thread)
    scored.sort(key=lambda r: (-r.score, r.memory.id))
    return scored


def _own_scores(
    candidates: Sequence[Candidate], options: RankingOptions, now: datetime
) -> list[Ranked]:
    """Each candidate's score from its own components (thread support not yet added)."""
    top_keyword = max((c.keyword_raw for c in candidates), default=0.0)
    keyword_scale = max(top_keyword, STRONG_MATCH)
    weights = options.weights
    ranked = []
    for candidate in candidates:
        memory = candidate.memory
        age_days = max(0.0, (now - memory.created_at).total_seconds() / 86400)
        dense = max(0.0, min(1.0, candidate.dense))
        keyword = candidate.keyword_raw / keyword_scale
        if asks_only(memory.content):
            dense *= QUESTION_DENSE_DAMPING
            keyword *= QUESTION_KEYWORD_DAMPING
        components = Components(
            dense=dense,
            keyword=keyword,
            recency=0.5 ** (age_days / options.recency_half_life_days),
            importance=memory.importance,
            frequency=min(1.0, math.log1p(memory.access_count) / math.log1p(FREQUENCY_SATURATION)),
            length=length_factor(memory.content, options.length_penalty, memory.role),
        )
        score = components.length * (
            weights.dense * components.dense
            + weights.keyword * components.keyword
            + weights.recency * components.recency
            + weights.importance * components.importance
            + weights.frequency * components.frequency
        )
        ranked.append(Ranked(memory, score, components, candidate.embedding))
    return ranked


def add_thread_support(scored: Sequence[Ranked], weight: float) -> None:
    """Add to each candidate's score `weight` x its thread's support: the mean own score of the
    `THREAD_SUPPORT_SIZE` best other candidates of its thread (a missing one counts 0).

    A conversation that touches the query at several points is likelier to hold the answer than
    a one-off mention, and the turn that answers a question often shares few words with it while
    its neighbours do. Memories outside any thread get no support; a thread is one namespace's
    (two agents may name theirs alike).
    """
    if weight <= 0:
        return
    by_thread: dict[tuple[str, str], list[float]] = {}
    for item in scored:
        if item.memory.thread_id is not None:
            thread = (item.memory.namespace_id, item.memory.thread_id)
            by_thread.setdefault(thread, []).append(item.score)
    best = {
        thread: heapq.nlargest(THREAD_SUPPORT_SIZE + 1, scores)
        for thread, scores in by_thread.items()
        if len(scores) > 1
    }
    for item in scored:
        top = (
            best.get((item.memory.namespace_id, item.memory.thread_id))
            if item.memory.thread_id is not None
            else None
        )
        if not top:
            continue
        others = list(top)
        if item.score in others:
            others.remove(item.score)
        support = sum(others[:THREAD_SUPPORT_SIZE]) / THREAD_SUPPORT_SIZE
        item.components.thread = support
        item.score += weight * support


PRESENT_WORDS = frozenset(
    [
        *("now", "nowadays", "today", "currently", "current", "anymore", "moment"),
        *("lately", "recently", "recent", "latest", "upcoming", "next"),
    ]
)
PRESENT_PHRASES = ("these days", "this week", "this month", "this year")
PRESENT_RECENCY_WEIGHT = 0.1  # recency's weight for a question about the present


def for_query(query: str, options: RankingOptions) -> RankingOptions:
    """The options to rank `query` with: a question about the present ("where do I work now?")
    weighs recency more, unless the caller chose the weights. Facts change; the newest
    statement of one is the likeliest answer to such a question."""
    if "weights" in options.model_fields_set or not asks_about_present(query):
        return options
    weights = options.weights.model_copy(
        update={"recency": max(options.weights.recency, PRESENT_RECENCY_WEIGHT)}
    )
    return options.model_copy(update={"weights": weights})


def asks_about_present(query: str) -> bool:
    """Whether `query` asks how things are now (by its words: "now", "these days", "next" ...)."""
    lowered = query.lower()
    return bool(PRESENT_WORDS.intersection(_WORD.findall(lowered))) or any(
        phrase in lowered for phrase in PRESENT_PHRASES
    )


def length_factor(content: str, penalty: float, role: str | None = None) -> float:
    """(reference / tokens) ** penalty for memories longer than the reference, else 1. The
    reference is `LENGTH_REFERENCE_TOKENS`, `ASSISTANT_REFERENCE_TOKENS` for an assistant's
    message.

    Tokens are estimated at four characters each: ranking must not wait for a tokenizer, and the
    packer counts exactly anyway.
    """
    tokens = max(1, len(content) // 4)
    reference = ASSISTANT_REFERENCE_TOKENS if role == "assistant" else LENGTH_REFERENCE_TOKENS
    return min(1.0, reference / tokens) ** penalty


def rank(
    candidates: Sequence[Candidate],
    options: RankingOptions,
    now: datetime,
    limit: int | None = None,
) -> tuple[list[Ranked], list[Rejected]]:
    """Order candidates for use: relevant, diverse, no near-duplicates. Returns (kept, rejected)."""
    rejected: list[Rejected] = []
    pool: list[Ranked] = []
    for item in score_candidates(candidates, options, now):
        if max(item.components.dense, item.components.keyword) < (options.min_relevance or 0.0):
            rejected.append(Rejected(item.memory, "below_threshold", item.score))
        else:
            pool.append(item)
    if not pool:
        return [], rejected
    similarity = _similarity_matrix(pool)
    chosen, duplicates = select_diverse(
        [item.score for item in pool], similarity, options, limit=limit
    )
    rejected.extend(
        Rejected(pool[i].memory, "duplicate", pool[i].score, pool[twin].memory.id)
        for i, twin in duplicates
    )
    left = sorted(set(range(len(pool))) - set(chosen) - {i for i, _ in duplicates})
    rejected.extend(Rejected(pool[i].memory, "over_limit", pool[i].score) for i in left)
    return [pool[i] for i in chosen], rejected


def select_diverse(
    scores: Sequence[float],
    similarity: np.ndarray,
    options: RankingOptions,
    *,
    limit: int | None = None,
) -> tuple[list[int], list[tuple[int, int]]]:
    """Greedy maximal marginal relevance: (the chosen indices in order, (duplicate, its twin)).

    Each step picks the candidate of highest value, (1 - diversity) * score - diversity *
    redundancy (the latter from its highest similarity to anything chosen), ties to the lower
    index; one at least `duplicate_similarity` close to a pick is a duplicate instead. Values only
    fall as picks accumulate, so the search is lazy: a candidate's value is brought up to date
    when it reaches the top of the heap, and it is picked if it is still on top. The same picks as
    recomputing every value at every step, at a fraction of the cost: each candidate's highest
    similarity to the picks so far is kept up to date with one numpy call per pick.
    """
    keep = 1 - options.diversity
    heap = [(-keep * score, index) for index, score in enumerate(scores)]  # no redundancy yet
    heapq.heapify(heap)
    chosen: list[int] = []
    duplicates: list[tuple[int, int]] = []
    closest = np.full(len(scores), -np.inf, dtype=similarity.dtype)  # to anything chosen
    overlaps: list[float] = []  # `closest` as Python floats, read once per pop
    while heap and (limit is None or len(chosen) < limit):
        _, index = heapq.heappop(heap)
        overlap = overlaps[index] if chosen else 0.0
        value = keep * scores[index] - options.diversity * redundancy(
            overlap, options.diversity_threshold
        )
        if heap and (-value, index) > heap[0]:
            heapq.heappush(heap, (-value, index))  # another may now be worth more
            continue
        if chosen and overlap >= options.duplicate_similarity:
            duplicates.append((index, chosen[int(np.argmax(similarity[index, chosen]))]))
            continue
        chosen.append(index)
        np.maximum(closest, similarity[index], out=closest)
        overlaps = closest.tolist()
    return chosen, duplicates


def redundancy(overlap: float, threshold: float) -> float:
    """How redundant a candidate is, in [0, 1], given its highest similarity to anything
    chosen: 0 up to `threshold`, rising linearly to 1 at identical."""
    return max(overlap - threshold, 0.0) / (1.0 - threshold)


def _similarity_matrix(pool: Sequence[Ranked]) -> np.ndarray:
    """Pairwise cosine similarity; a candidate without an embedding is similar to nothing."""
    dimension = next((len(item.embedding) for item in pool if item.embedding is not None), 1)
    zero = np.zeros(dimension, dtype=np.float32)
    matrix = np.array(
        [item.embedding if item.embedding is not None else zero for item in pool],
        dtype=np.float32,
    )
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return matrix @ matrix.T
