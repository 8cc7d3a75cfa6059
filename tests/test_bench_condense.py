"""The condensing benchmark: one run writes, condenses one copy, and asks both, on both paths.

The LoCoMo data is not in the repository, so the run reads the small conversation of the LoCoMo
harness's tests (four questions), from 2023: old enough to condense, with a little more small talk
in each session so that even the fake model's digest is shorter than a session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import condense
from bench.conversations import generate
from tests.test_bench_locomo import write_data

SMALL_TALK = [
    ("Ana", "Anyway, the weather has been strange all week, sunny in the morning and grey later."),
    ("Ben", "Same here, I keep carrying an umbrella around and never opening it at all."),
    ("Ana", "I should go, the neighbours are coming over for dinner tonight, talk soon!"),
]


def write_longer_data(path: Path) -> Path:
    """`write_data`'s conversation with the small talk added at the end of each session."""
    raw = json.loads(write_data(path).read_text())
    conversation = raw[0]["conversation"]
    for session in (1, 2):
        turns = conversation[f"session_{session}"]
        turns += [
            {"speaker": speaker, "dia_id": f"D{session}:{len(turns) + i}", "text": text}
            for i, (speaker, text) in enumerate(SMALL_TALK, start=1)
        ]
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.timeout(600)
def test_a_run_condenses_one_copy_and_measures_both_on_both_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "condense.json"
    data = write_longer_data(tmp_path / "locomo.json")
    command = ["--data", str(data), "--budgets", "64", "512", "--output", str(output)]
    assert condense.main(command) == 0
    results = json.loads(output.read_text())

    for path in ("extractive", "llm"):
        found = results[path]
        assert (found["entries"], found["questions"]) == (14, 4), path
        # each session is one group of old turns: both are condensed, none fails
        assert found["condensed"] == found["condensed"] | {"groups": 2, "sources": 14}, path
        assert found["condensed"]["failures"] == 0, path
        before, after = found["table"]["before"], found["table"]["after"]
        assert 0 < after["active_tokens"] < before["active_tokens"], path
        # the whole conversation fits in 512 tokens, condensed or not: every evidence turn is
        # served, as itself or through the summary that stands for it
        assert before["recall"]["512"] == after["recall"]["512"] == 1.0, path
        # before, the evidence turns themselves: all of two answers, a quarter of the third
        assert before["answer_kept"] == 0.75 and 0 <= after["answer_kept"] <= 1, path
        assert all(
            before["latency_ms"][p] > 0 and after["latency_ms"][p] > 0 for p in ("p50", "p95")
        )
        assert all(
            [len(ms) for ms in q["latency_ms"][copy].values()] == [3, 3]  # 3 rounds, 2 budgets
            for q in found["per_question"]
            for copy in ("before", "after")
        )

    text = capsys.readouterr().out
    assert "extractive summaries (the default)" in text and "LLM path" in text
    assert "| active tokens stored | 239 | " in text and "| evidence recall at 512 |" in text
    assert "| context latency p50 / p95, ms |" in text


def test_generated_chats_are_written_with_their_roles_users_and_sessions() -> None:
    conversations = generate(seed=3, personas=1, sessions=(3, 3))
    [corpus] = condense.from_synthetic(conversations)
    persona = conversations.personas[0]
    assert [e.ref for e in corpus.entries] == [t.id for t in persona.turns()]
    first = corpus.entries[0].memory
    assert first["user_id"] == persona.user_id and first["thread_id"] == persona.sessions[0].id
    assert {e.memory["role"] for e in corpus.entries} == {"user", "assistant"}
    assert all(p.request == {"user_id": persona.user_id} for p in corpus.probes)
    assert len(corpus.probes) == len(persona.questions)
