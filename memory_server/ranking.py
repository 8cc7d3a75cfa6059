"""Hybrid ranking, in one place: how candidates are scored, de-duplicated and diversified.

Search and context both call `rank`. A candidate's score is a weighted sum of five components, each
in [0, 1]: dense similarity, keyword relevance (normalised within the candidate set), recency decay,
importance and access frequency. Selection is then greedy maximal marginal relevance: each pick
trades score against similarity to what is already picked, and near-duplicates of a pick are
dropped outright.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .models import Memory


class RankingWeights(BaseModel):
    """How much each component counts; they need not sum to 1."""

    model_config = ConfigDict(extra="forbid")

    dense: float = Field(default=0.55, ge=0)
    keyword: float = Field(default=0.25, ge=0)
    recency: float = Field(default=0.08, ge=0)
    importance: float = Field(default=0.08, ge=0)
    frequency: float = Field(default=0.04, ge=0)


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
    diversity: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="MMR trade-off: 0 ranks by score alone, 1 by novelty alone.",
    )
    duplicate_similarity: float = Field(
        default=0.93,
        gt=0,
        le=1,
        description="A candidate this similar to an already chosen one is a near-duplicate.",
    )


FREQUENCY_SATURATION = 50  # accesses at which the frequency component reaches 1


@dataclass
class Candidate:
    memory: Memory
    embedding: Sequence[float] | None
    dense: float = 0.0
    keyword_raw: float = 0.0


@dataclass
class Components:
    dense: float
    keyword: float
    recency: float
    importance: float
    frequency: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in self.__dict__.items()}


@dataclass
class Ranked:
    memory: Memory
    score: float
    components: Components
    embedding: Sequence[float] | None = field(repr=False, default=None)


@dataclass
class Rejected:
    memory: Memory
    reason: str
    score: float | None = None
    duplicate_of: str | None = None


def score_candidates(
    candidates: Sequence[Candidate], options: RankingOptions, now: datetime
) -> list[Ranked]:
    """Each candidate's fused score and its components, best first."""
    top_keyword = max((c.keyword_raw for c in candidates), default=0.0)
    weights = options.weights
    ranked = []
    for candidate in candidates:
        memory = candidate.memory
        age_days = max(0.0, (now - memory.created_at).total_seconds() / 86400)
        components = Components(
            dense=max(0.0, min(1.0, candidate.dense)),
            keyword=candidate.keyword_raw / top_keyword if top_keyword > 0 else 0.0,
            recency=0.5 ** (age_days / options.recency_half_life_days),
            importance=memory.importance,
            frequency=min(1.0, math.log1p(memory.access_count) / math.log1p(FREQUENCY_SATURATION)),
        )
        score = (
            weights.dense * components.dense
            + weights.keyword * components.keyword
            + weights.recency * components.recency
            + weights.importance * components.importance
            + weights.frequency * components.frequency
        )
        ranked.append(Ranked(memory, score, components, candidate.embedding))
    ranked.sort(key=lambda r: (-r.score, r.memory.id))
    return ranked


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
    scores = np.array([item.score for item in pool])
    overlap = np.zeros(len(pool))  # each candidate's highest similarity to anything chosen
    open_ = np.ones(len(pool), dtype=bool)
    chosen: list[int] = []
    while open_.any() and (limit is None or len(chosen) < limit):
        value = (1 - options.diversity) * scores - options.diversity * overlap
        index = int(np.argmax(np.where(open_, value, -np.inf)))
        open_[index] = False
        if chosen and overlap[index] >= options.duplicate_similarity:
            twin = chosen[int(np.argmax(similarity[index, chosen]))]
            rejected.append(
                Rejected(pool[index].memory, "duplicate", pool[index].score, pool[twin].memory.id)
            )
            continue
        chosen.append(index)
        overlap = np.maximum(overlap, similarity[index])
    rejected.extend(
        Rejected(pool[i].memory, "over_limit", pool[i].score) for i in np.flatnonzero(open_)
    )
    return [pool[i] for i in chosen], rejected


def _similarity_matrix(pool: Sequence[Ranked]) -> np.ndarray:
    """Pairwise cosine similarity; a candidate without an embedding is similar to nothing."""
    dimension = next((len(item.embedding) for item in pool if item.embedding is not None), 1)
    zero = np.zeros(dimension)
    matrix = np.stack(
        [np.asarray(item.embedding if item.embedding is not None else zero) for item in pool]
    ).astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return matrix @ matrix.T
