"""SQLite's full-text index of memories, with every word tagged by its memory's namespace.

FTS5's `bm25` weighs a query term by its document frequency, which it counts on every query by
reading the term's whole list of documents. With plain words those lists span every namespace: a
keyword query of one agent's 1,000 memories reads the lists of 100,000 (3.8 ms of SQLite per query
at 100k memories in 100 namespaces, 1.2 ms with tags; docs/benchmarks.md, "Latency of
`POST /v1/context`"), and the cost grows with the whole table, not with the namespaces asked. So
the index holds `namespaced_terms`: each word of a memory prefixed with a tag of its namespace
("bkdrtmxqzl" + "billing"), and a query asks for the tagged forms of its words in each namespace in
scope. A term's list is then one namespace's, its frequency is the namespace's own, and no other
tenant's writing changes how a word weighs in yours (only the table's row count, which `bm25` also
reads, is shared). The price is paid by scopes of many namespaces, which ask for every word once per
namespace: matching 10 words costs 1.5 / 5 / 287 ms over 1 / 10 / 100 namespaces of that store,
against 23 ms for 10 and 180 ms for 100 with plain words.

The tag is consonants only: FTS5's Porter stemmer measures a word by its vowel-consonant runs,
and a leading run of consonants leaves that measure, and so the stem, as without the tag (but for
a word that starts with y, which after a consonant counts as a vowel). Query and index are tagged
alike, so they always stem alike.

The index is kept by triggers that call `namespaced_terms` as the SQL function `SQL_FUNCTION`,
which `db.py` registers on every connection it opens: a connection without it (another program)
can read the database, but cannot write a memory's content.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

SQL_FUNCTION = "memory_terms"
WORD = re.compile(r"[^\W_]+", re.UNICODE)  # a word, here and in `keyword.query_terms`
_CONSONANTS = "bcdfghjklmnpqrstvwxz"  # no y: Porter counts a y after a consonant as a vowel
_TAG_LETTERS = 10  # 20^10 tags: two namespaces sharing one would only share word statistics


def namespace_tag(namespace_id: str) -> str:
    """The letters that prefix every word of `namespace_id`'s memories in the index."""
    value = int.from_bytes(hashlib.blake2b(namespace_id.encode(), digest_size=8).digest(), "big")
    letters = []
    for _ in range(_TAG_LETTERS):
        value, index = divmod(value, len(_CONSONANTS))
        letters.append(_CONSONANTS[index])
    return "".join(letters)


def namespaced_terms(namespace_id: str | None, content: str | None) -> str:
    """What the index holds for a memory: its words, each prefixed with its namespace's tag."""
    if not content or namespace_id is None:
        return ""
    tag = namespace_tag(namespace_id)
    return " ".join(tag + word for word in WORD.findall(content))


def match_expression(namespace_ids: Sequence[str], terms: Iterable[str]) -> str:
    """An FTS5 query for memories of `namespace_ids` holding any of `terms` (words that
    `keyword.query_terms` found: letters and digits only, so they need no escaping)."""
    words = list(terms)
    return " OR ".join(
        f'"{namespace_tag(namespace_id)}{word}"' for namespace_id in namespace_ids for word in words
    )
