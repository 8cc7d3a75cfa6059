"""The retrieval-quality benchmark: its generator is sound and its harness runs end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.conversations import DEFAULT_END, Conversations, Question, Turn, generate
from bench.quality import BASELINE_SYSTEMS, BUDGETS, _Doc, _packed_ids, _render, report, run


def tiny() -> Conversations:
    return generate(seed=3, personas=2, sessions=(3, 4), facts_per_persona=6)


def test_generator_is_deterministic_for_a_seed() -> None:
    assert tiny() == tiny()
    assert generate(seed=4, personas=2, sessions=(3, 4)) != tiny()


def test_evidence_turns_exist_and_precede_their_question() -> None:
    conversations = generate(seed=11, personas=4, sessions=(4, 7))
    for persona in conversations.personas:
        turns = {turn.id: turn for turn in persona.turns()}
        assert len(turns) == len(persona.turns()), "turn ids are unique"
        thread_ids = {q.thread_id for q in persona.questions}
        assert len(thread_ids) == len(persona.questions), "every question has its own thread"
        assert not thread_ids & {s.id for s in persona.sessions}, "question threads are new"
        for question in persona.questions:
            assert question.evidence
            for turn_id in question.evidence:
                assert turns[turn_id].created_at < question.opening[0].created_at
            assert all(t.created_at < question.asked_at for t in question.opening)
            assert question.asked_at <= DEFAULT_END


def test_changed_facts_take_the_latest_statement_as_evidence() -> None:
    conversations = generate(seed=11, personas=6, sessions=(4, 7))
    seen = set()
    for persona in conversations.personas:
        turns = {turn.id: turn for turn in persona.turns()}
        by_fact: dict[str, list[Question]] = {}
        for question in persona.questions:
            by_fact.setdefault(question.fact, []).append(question)
        for fact, questions in by_fact.items():
            kinds = {q.kind: q for q in questions}
            if "updated" not in kinds:
                continue
            seen.add(fact)
            current = kinds["updated"]
            (latest,) = current.evidence
            assert current.answer in turns[latest].content
            if "changed" in kinds:
                before, after = kinds["changed"].evidence
                assert after == latest
                assert turns[before].created_at < turns[after].created_at
                assert turns[before].session_id != turns[after].session_id
    assert len(seen) >= 3, "several kinds of facts change over time"


def test_harness_scores_every_system_at_every_budget(tmp_path: Path) -> None:
    results = run(tiny(), tmp_path / "data")
    assert results["questions"] == len(tiny().questions()) > 0
    assert len(BASELINE_SYSTEMS) == 6  # three baselines, as the server renders and as bare text
    for system in ["server", *BASELINE_SYSTEMS]:
        for budget in BUDGETS:
            cell = results["systems"][system][budget]
            assert 0.0 <= cell["recall"] <= 1.0
            assert 0 <= cell["tokens"] <= budget
    assert results["margin_over_best_baseline"][512]["best_baseline"] in BASELINE_SYSTEMS
    text = report(results)
    assert "recall@512" in text and "BM25" in text and "dense top-k, content only" in text


def test_a_baseline_is_packed_as_the_server_renders_and_as_bare_content() -> None:
    turns = [
        Turn(f"t{i}", "s1", "user", f"turn number {i}", datetime(2026, 11, 2, 9, i, tzinfo=UTC))
        for i in range(3)
    ]
    docs = [_Doc(f"m{i}", t, _render(t, f"m{i}"), np.zeros(2), []) for i, t in enumerate(turns)]

    def words(text: str) -> int:
        return len(text.split())

    dated = _packed_ids(docs, [2, 0], 100, words, plain=False)
    assert dated.context == (
        "## Relevant memories\n### 2 Nov 2026\n[user] turn number 0\n[user] turn number 2"
    )
    bare = _packed_ids(docs, [2, 0], 100, words, plain=True)
    assert bare.context == "## Relevant memories\nturn number 2\nturn number 0"
    assert dated.ids == bare.ids == {"m0", "m2"}
    assert bare.tokens < dated.tokens
