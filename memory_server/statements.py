"""What a memory states, as opposed to what it asks.

A turn like "I moved to Lisbon in May. Any tips for finding a flat?" carries a fact and a
question. Embedded whole, its vector sits between the two: a later query about where the user
lives matches it less well than it should, and every question-shaped query matches it better than
it should. So a memory's document vector is built from its statements alone (`statement_text`),
and a memory that only asks questions (`asks_only`) is ranked down: it rarely holds what an agent
needs to know.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .embeddings import Embedder

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
STATEMENT_RECIPE = "statements-v1"  # part of the index's model name: changing it rebuilds the index


def sentences(text: str) -> list[str]:
    """The text's sentences (split after . ! ? and at line breaks), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s.strip()]


def _is_question(sentence: str) -> bool:
    return sentence.rstrip("\"')»” ").endswith("?")


@lru_cache(maxsize=65_536)  # ranking asks it of every candidate of every query
def asks_only(text: str) -> bool:
    """True when every sentence of `text` is a question."""
    parts = sentences(text)
    return bool(parts) and all(_is_question(s) for s in parts)


def statement_text(text: str) -> str:
    """`text` without its questions; the whole text when it has nothing but questions."""
    statements = [s for s in sentences(text) if not _is_question(s)]
    if not statements or len(statements) == len(sentences(text)):
        return text
    return " ".join(statements)


class StatementEmbedder:
    """Embeds memories from their statements (see module doc); queries use the bare embedder."""

    def __init__(self, embedder: Embedder):
        self._embedder = embedder

    @property
    def name(self) -> str:
        return f"{self._embedder.name}+{STATEMENT_RECIPE}"

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def embed(self, texts: list[str], *, threads: int | None = None) -> list[list[float]]:
        return self._embedder.embed([statement_text(text) for text in texts], threads=threads)
