"""Stored embeddings of a namespace's memories, for maps of what an agent remembers.

SQL decides which memories exist and who may read them (the listing rule, page by page, newest
first); the vectors come from the index that search uses, so a map shows what search compares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..auth import Principal
from ..embeddings import Embedder, QueryEmbedder
from ..errors import StoreUnavailable
from ..models import Memory
from ..schemas import MemoryFilters
from ..vectors import VectorStore
from .memories import MemoryService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingPage:
    memories: list[tuple[Memory, Sequence[float]]]
    next_cursor: str | None
    query: tuple[str, list[float]] | None


class EmbeddingService:
    def __init__(
        self,
        memories: MemoryService,
        vectors: VectorStore,
        embedder: Embedder,
        queries: QueryEmbedder,
    ):
        self._memories = memories
        self._vectors = vectors
        self._embedder = embedder
        self._queries = queries

    @property
    def model(self) -> str:
        return self._embedder.name

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def page(
        self,
        principal: Principal,
        filters: MemoryFilters,
        *,
        limit: int,
        cursor: str | None,
        query: str | None,
    ) -> EmbeddingPage:
        """A page of memories the caller may list, each with its stored embedding.

        `query`, if given, is embedded the way search embeds it, so it can be placed among them.
        """
        rows, next_cursor = self._memories.list_page(principal, filters, limit=limit, cursor=cursor)
        try:
            namespaces = sorted({m.namespace_id for m in rows})
            stored = dict(self._vectors.embeddings([m.id for m in rows], namespaces))
        except Exception as exc:
            raise StoreUnavailable("The vector index is unavailable; retry later.") from exc
        missing = [m for m in rows if m.id not in stored]
        if missing:
            # The index lags SQL (the reconciler repairs it at the next start); embed these now,
            # as the reconciler will, rather than leave memories off the map.
            log.warning("%d memories missing from the vector index; embedding them", len(missing))
            vectors = self._embedder.embed([m.content for m in missing])
            stored.update(zip([m.id for m in missing], vectors, strict=True))
        return EmbeddingPage(
            memories=[(m, stored[m.id]) for m in rows],
            next_cursor=next_cursor,
            query=(query, self._queries.embed(query)) if query is not None else None,
        )
