"""The extractive condenser on its own: which sentences it keeps, how many, and how it writes
them. Embeddings are the loopback fake's bag-of-words hashes: deterministic, no model."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from memory_server.tokens import count_tokens
from summarizer.condense import EXTRACTIVE_SHARE, ExtractiveCondenser
from summarizer.selection import Group, Source
from tests.fake_openai import DIMENSION, bag_of_words_vector

DAY = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
TURNS = [
    "Caroline: Hey Mel! Good to see you! How have you been?",
    "Melanie: Hey Caroline! I'm swamped with the kids and work. What's up with you?",
    "Caroline: I went to an LGBTQ support group yesterday and it was so powerful.",
    "Melanie: Wow, that's cool, Caroline! What happened that was so awesome?",
    "Caroline: The transgender stories were so inspiring, I want to study counseling next year.",
    "Melanie: That's really cool. I ran a charity race for mental health last Saturday.",
    "Caroline: Thanks, Mel! See you!",
    "Melanie: I painted a lake sunrise in Yosemite with my kids last weekend, it was magical.",
]


class WordsEmbedder:
    name = "bag-of-words"
    dimension = DIMENSION

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        vectors = np.asarray([bag_of_words_vector(t) for t in texts], dtype=float)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1)).tolist()


def source(index: int, content: str, when: datetime, kind: str = "message") -> Source:
    tokens = count_tokens(content, "gpt-4o-mini")
    return Source(f"mem_{index}", 1, kind, "user", content, when, tokens)


def group(*sources: Source) -> Group:
    return Group("ns_test", None, "session-1", sources)


def test_a_summary_keeps_a_share_of_the_statements_each_with_its_speaker() -> None:
    turns = group(*(source(i, t, DAY + timedelta(minutes=i)) for i, t in enumerate(TURNS)))
    condensed = ExtractiveCondenser(WordsEmbedder()).condense(turns, 300)
    day, *lines = condensed.text.splitlines()
    assert day == "2023-05-08:"  # one day: its date once
    assert lines and all(line.startswith(("- Caroline: ", "- Melanie: ")) for line in lines)
    said = {f"- {t.split(': ', 1)[0]}: {s}" for t in TURNS for s in _sentences(t)}
    assert set(lines) <= said  # verbatim sentences, with the speaker of their turn
    assert not [line for line in lines if line.endswith("?")]  # no questions
    assert not {"- Caroline: Good to see you!", "- Caroline: Thanks, Mel!"} & set(lines)
    assert condensed.tokens <= EXTRACTIVE_SHARE * turns.source_tokens
    # a summary aims at the smaller of the share and the target
    short = ExtractiveCondenser(WordsEmbedder()).condense(turns, 30)
    assert short.tokens <= 30 < condensed.tokens


def test_a_summary_of_several_days_dates_each_line_and_a_summary_of_summaries_keeps_them() -> None:
    days = [source(i, t, DAY + timedelta(days=i // 4)) for i, t in enumerate(TURNS)]
    condensed = ExtractiveCondenser(WordsEmbedder()).condense(group(*days), 300)
    lines = condensed.text.splitlines()
    assert all(line.startswith(("- 2023-05-08 ", "- 2023-05-09 ")) for line in lines)

    # one day's summaries write their date above their lines: their lines are dated with it
    first = ExtractiveCondenser(WordsEmbedder()).condense(group(*days[:4]), 300)
    second = ExtractiveCondenser(WordsEmbedder()).condense(group(*days[4:]), 300)
    assert first.text.startswith("2023-05-08:\n") and second.text.startswith("2023-05-09:\n")
    summaries = [
        source(10, first.text, days[3].created_at, "summary"),
        source(11, second.text, days[7].created_at, "summary"),
    ]
    top = ExtractiveCondenser(WordsEmbedder(), share=1.0).condense(group(*summaries), 300)
    undated = [line[2:] for s in (first, second) for line in s.text.splitlines()[1:]]
    assert top.text.splitlines() and all(
        line.startswith(("- 2023-05-08 ", "- 2023-05-09 ")) and line[13:] in undated
        for line in top.text.splitlines()
    )


def _sentences(turn: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", turn.split(": ", 1)[1])
