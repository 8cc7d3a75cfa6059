"""Keyword relevance in SQL: BM25 from SQLite FTS5, `ts_rank_cd` from PostgreSQL full-text search.

Both answer "which memories in scope share the query's words, best first" with a positive score
(larger is better). The two engines score on different scales, so each backend's raw score is
divided by what a strong match scores on it (`_STRONG_RAW`): on either, 1.0 means a strong match
(`STRONG_MATCH`), and `ranking.py` never gives full keyword weight to a set of weak matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from .driver_reads import rows
from .full_text import WORD, match_expression
from .records import MEMORY_TABLE, MemoryRecord, to_record

if TYPE_CHECKING:  # filters.py imports schemas.py, which imports this module through ranking.py
    from .filters import Scope

MAX_TERMS = 32
_STOPWORDS_TEXT = """
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most
my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will
with would you your yours yourself yourselves tell know remember
s t d ll m re ve don doesn didn isn wasn
now currently these days lately recently right moment again today still time times
remind reminded thing things like get gets getting got go goes going want wanted need needed
please also ever really maybe well yes yeah ok okay hi hello hey thanks thank
said say says mention mentioned talk talked told ask asked let us make think something anything
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())  # function words and conversational filler
STRONG_MATCH = 1.0
# What a strong match scores on each engine: chosen so that the median best match of the
# questions in bench/quality.py's conversations scores alike on both (6.3 and 0.10 raw).
_STRONG_RAW = {"sqlite": 10.0, "postgresql": 0.15}


# PostgreSQL: `to_tsvector('english', content)`, a generated column outside the model (the database
# keeps it; nothing writes it).
SEARCH_VECTOR: sa.ColumnElement[object] = sa.literal_column("memory.content_tsv")


def query_terms(query: str) -> list[str]:
    """The query's distinct, lower-cased content words (stop words dropped), in order."""
    words = (w.lower() for w in WORD.findall(query))
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))[:MAX_TERMS]


def keyword_search(
    session: Session,
    query: str,
    scope: Scope,
    limit: int,
    ids: Sequence[str] | None = None,
) -> list[tuple[str, float]]:
    """(memory id, score) for memories in `scope` (of `ids`, if given) that match any query
    term, best first."""
    rows = _matching(session, query, scope, limit, with_rows=False, ids=ids)
    return [(str(row[0]), score) for row, score in rows]


def keyword_matches(
    session: Session, query: str, scope: Scope, limit: int
) -> list[tuple[MemoryRecord, float]]:
    """`keyword_search` with each match's row, read by the same statement."""
    rows = _matching(session, query, scope, limit, with_rows=True, ids=None)
    return [(to_record(row), score) for row, score in rows]


def _matching(
    session: Session,
    query: str,
    scope: Scope,
    limit: int,
    *,
    with_rows: bool,
    ids: Sequence[str] | None,
) -> list[tuple[Sequence[Any], float]]:
    """The best `limit` matches (their rows, or ids), each with its score on the common scale."""
    terms = query_terms(query)
    namespace_ids = scope.namespace_ids
    if not terms or not namespace_ids:
        return []
    dialect = session.get_bind().dialect.name
    parameters = {**scope.parameters, "keyword_limit": limit}
    if dialect == "postgresql":
        parameters["keyword_query"] = " | ".join(terms)
    else:
        parameters["keyword_match"] = match_expression(namespace_ids, terms)
    if ids is not None:
        parameters["keyword_ids"] = list(ids)
    statement = _statement(dialect, scope.conditions, with_rows=with_rows, by_id=ids is not None)
    strong = _STRONG_RAW.get(dialect, _STRONG_RAW["sqlite"])
    return [
        (row, float(row[-1]) / strong * STRONG_MATCH)
        for row in rows(session, statement, parameters)
    ]


@lru_cache(maxsize=512)
def _statement(
    dialect: str,
    conditions: tuple[sa.ColumnElement[bool], ...],
    *,
    with_rows: bool,
    by_id: bool,
) -> sa.Select[Any]:
    """The keyword query for scopes with `conditions` (one tuple per scope shape, so this is
    built once per shape: filters.py says why)."""
    memory = MEMORY_TABLE
    columns = memory.columns if with_rows else [memory.c.id]
    score: sa.ColumnElement[float]
    if dialect == "postgresql":
        english: sa.ColumnElement[str] = sa.literal_column("'english'")
        vector = SEARCH_VECTOR  # stored by the database with each row (migration m0008)
        tsquery = sa.func.to_tsquery(english, sa.bindparam("keyword_query", type_=sa.String()))
        score = sa.func.ts_rank_cd(vector, tsquery)
        statement = sa.select(*columns, score.label("score")).where(vector.op("@@")(tsquery))
    else:
        fts = sa.table("memory_fts", sa.column("rowid"))
        # Words are indexed tagged by namespace (full_text.py): the match reads only the lists
        # of the namespaces asked, and weighs each word by its frequency there.
        score = sa.func.bm25(sa.literal_column("memory_fts")) * -1
        match = sa.bindparam("keyword_match", type_=sa.String())
        statement = (
            sa.select(*columns, score.label("score"))
            .select_from(memory.join(fts, sa.literal_column("memory.rowid") == fts.c.rowid))
            .where(sa.literal_column("memory_fts").op("MATCH")(match))
        )
    statement = statement.where(*conditions)
    if by_id:
        statement = statement.where(memory.c.id.in_(sa.bindparam("keyword_ids", expanding=True)))
    return statement.order_by(sa.desc("score"), memory.c.id).limit(sa.bindparam("keyword_limit"))
