"""The LoCoMo benchmark's harness: it reads the data's shape, follows the protocol, scores honestly.

The real data is not in the repository (its license), so these tests write a small file of the
same shape: two sessions of one conversation, with questions of every category.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.locomo import (
    BASELINES,
    answer_in_context,
    evidence_recall,
    ingest,
    load,
    pack_greedy,
    report,
    run,
    session_time,
)
from memory_server.tokens import count_tokens

SESSION_1 = [
    ("Ana", "Hi Ben! I finally adopted a greyhound from the shelter, her name is Pixel."),
    ("Ben", "That's wonderful! How is she settling in?"),
    ("Ana", "She sleeps on the sofa all day and hates the rain."),
    ("Ben", "Ha! My week was busy, I started pottery classes on Tuesday evenings."),
]
SESSION_2 = [
    ("Ben", "I glazed my first bowl at the pottery studio, it came out blue."),
    ("Ana", "Lovely. Pixel and I ran a 5k charity race last Sunday."),
    ("Ben", "How did Pixel like the race?"),
    ("Ana", "She loved it, she wants to run every weekend now.", "a dog wearing a medal"),
]


def write_data(path: Path) -> Path:
    def turns(session: int, lines: list[tuple[str, ...]]) -> list[dict[str, str]]:
        out = []
        for index, line in enumerate(lines, start=1):
            turn = {"speaker": line[0], "dia_id": f"D{session}:{index}", "text": line[1]}
            if len(line) > 2:
                turn |= {"img_url": "http://example.invalid/x.jpg", "blip_caption": line[2]}
            out.append(turn)
        return out

    conversation = {
        "speaker_a": "Ana",
        "speaker_b": "Ben",
        "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_1": turns(1, SESSION_1),
        "session_2_date_time": "10:04 am on 21 June, 2023",
        "session_2": turns(2, SESSION_2),
    }
    qa = [
        {"question": "What is the name of Ana's greyhound?", "answer": "Pixel",
         "evidence": ["D1:1"], "category": 4},
        {"question": "When did Ana run a charity race?", "answer": "The Sunday before 21 June 2023",
         "evidence": ["D2:2"], "category": 2},
        {"question": "What hobby did Ben take up, and what did he make?",
         "answer": "Pottery, a bowl",
         "evidence": ["D1:4", "D2:1"], "category": 1},
        {"question": "Would Pixel enjoy a marathon?", "answer": "Likely yes",
         "evidence": ["D2:4", "D"], "category": 3},
        {"question": "What is Ben's cat called?", "adversarial_answer": "Pixel",
         "evidence": ["D1:1"], "category": 5},
        {"question": "What colour is Ana's car?", "answer": "red", "evidence": ["D9:9"],
         "category": 4},
    ]  # fmt: skip
    path.write_text(
        json.dumps([{"sample_id": "conv-test", "conversation": conversation, "qa": qa}])
    )
    return path


def test_loading_follows_the_protocol(tmp_path: Path) -> None:
    (dialogue,) = load(write_data(tmp_path / "locomo.json"))
    assert dialogue.id == "conv-test"
    assert [t.dia_id for t in dialogue.turns][:2] == ["D1:1", "D1:2"] and len(dialogue.turns) == 8
    first, last = dialogue.turns[0], dialogue.turns[-1]
    assert first.content.startswith("Ana: Hi Ben!") and first.session == 1
    assert first.created_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert first.date_label == "8 May, 2023"
    assert last.content.endswith(" [shares a dog wearing a medal]")
    # category 5 is left out; so are evidence ids the conversation does not have
    assert [q.category for q in dialogue.questions] == [4, 2, 1, 3]
    assert dialogue.questions[3].evidence == ("D2:4",)
    assert session_time("10:04 am on 21 June, 2023") == datetime(2023, 6, 21, 10, 4, tzinfo=UTC)


def test_the_measures() -> None:
    assert evidence_recall(["a", "b"], {"b", "c"}) == 0.5
    # content words only, lower-cased, against the words of the context
    assert answer_in_context("The Sunday before 21 June 2023", "ran on sunday, 21 June") == 0.75
    assert answer_in_context("Pixel", "pixelated") == 0.0
    assert answer_in_context("the", "anything") == 1.0  # nothing to find


def test_greedy_packing_never_exceeds_the_budget() -> None:
    lines = [f"[8 May, 2023] Ana: line {i} " + "word " * (i % 7 * 5) for i in range(40)]

    def count(text: str) -> int:
        return count_tokens(text, "gpt-4o-mini")

    for budget in (5, 40, 100, 256):
        chosen, text = pack_greedy(lines, range(len(lines)), budget, count)
        assert count(text) <= budget
        assert text == "\n".join(lines[i] for i in chosen)
    chosen, _ = pack_greedy(lines, [3, 1, 2], 10_000, count)
    assert chosen == [3, 1, 2]  # in the order given


@pytest.mark.timeout(300)
def test_a_run_scores_the_server_and_the_baselines(tmp_path: Path) -> None:
    dialogues = load(write_data(tmp_path / "locomo.json"))
    variants = {"dense-only": {"ranking": {"weights": {"keyword": 0}}}}
    results = run(dialogues, tmp_path / "data", budgets=(64, 512), variants=variants)
    assert results["questions"] == 4 and results["turns"] == 8
    assert results["systems"] == ["server", "dense-only", *BASELINES]
    table = results["table"]
    # the whole conversation fits in 512 tokens: every system that ranks by relevance finds it all
    for system in ("server", "dense-only", "bm25", "dense", "rrf", "newest"):
        assert table[system][512]["recall"] == 1.0, system
    # at 64 tokens one or two lines fit: newest first finds only what was said last
    assert table["newest"][64]["recall"] < table["server"][64]["recall"]
    greyhound = results["per_question"][0]
    assert greyhound["recall"]["server"][64] == 1.0  # its rare words find it
    assert greyhound["answer_in_context"]["server"][64] == 1.0
    assert set(results["by_category"]) == {"single-hop", "temporal", "multi-hop", "open-domain"}
    assert results["latency_ms"]["server"][512]["p50"] > 0
    text = report(results)
    assert "| server `/v1/context` |" in text and "RRF(BM25, dense)" in text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ingest_writes_each_turn_as_the_protocol_says(make_agent: Any, tmp_path: Path) -> None:
    (dialogue,) = load(write_data(tmp_path / "locomo.json"))
    client = make_agent().client
    ids = ingest(client, dialogue)
    assert set(ids) == {t.dia_id for t in dialogue.turns}
    stored = client.get(f"/v1/memories/{ids['D2:4']}").json()
    assert stored["kind"] == "message" and stored["role"] == "user"
    assert stored["thread_id"] == "session-2"
    assert stored["content"] == dialogue.turns[-1].content
    assert stored["created_at"].startswith("2023-06-21T10:04:00")


def test_make_bench_says_so_when_the_data_is_not_there(tmp_path: Path) -> None:
    from bench.__main__ import _locomo_section

    section = _locomo_section(tmp_path / "missing.json", quick=True)
    assert section[0] == "## Context relevance on real conversations (LoCoMo)"
    assert any("Not run: no LoCoMo data at" in line for line in section)
