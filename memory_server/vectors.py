"""The vector index: a small protocol, and Chroma (embedded or server) behind it.

The index is derived data. SQL holds the text and metadata; the index holds ids, embeddings and the
few scalar fields that filters need, and can always be rebuilt from SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .config import Settings

log = logging.getLogger(__name__)

Scalar = str | int | float | bool
Where = dict[str, Any]


@dataclass(frozen=True)
class VectorRecord:
    id: str
    embedding: list[float]
    metadata: dict[str, Scalar]


@dataclass(frozen=True)
class VectorHit:
    id: str
    similarity: float
    embedding: Sequence[float] | None = None


class VectorStore(Protocol):
    """What the server needs from a vector index."""

    def upsert(self, records: Sequence[VectorRecord]) -> None: ...

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        """Replace the metadata of existing records, keeping their embeddings."""
        ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def query(
        self, embedding: list[float], k: int, where: Where | None, with_embeddings: bool = False
    ) -> list[VectorHit]:
        """The `k` nearest records matching `where`, nearest first."""
        ...

    def embeddings(self, ids: Sequence[str]) -> dict[str, Sequence[float]]:
        """The stored embeddings of `ids` (missing ids are left out)."""
        ...

    def count(self) -> int: ...

    def versions(self, page_size: int = 5000) -> Iterator[tuple[str, int]]:
        """Every (id, version) in the index, page by page."""
        ...

    def embedding_model(self) -> str | None:
        """The embedding model the index was built with, or None for a new, empty index."""
        ...

    def reset(self, embedding_model: str) -> None:
        """Drop everything and start an empty index for `embedding_model`."""
        ...

    def ping(self) -> None: ...


class ChromaVectorStore:
    """Chroma as the vector index; embeddings are always passed in, never computed by Chroma."""

    def __init__(self, client: Any, collection_name: str):
        self._client = client
        self._name = collection_name
        self._collection = self._open()

    def _open(self, embedding_model: str | None = None) -> Any:
        metadata = {"embedding_model": embedding_model} if embedding_model else None
        return self._client.get_or_create_collection(
            self._name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=metadata,
        )

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        self._collection.upsert(
            ids=[r.id for r in records],
            embeddings=[r.embedding for r in records],
            metadatas=[r.metadata for r in records],
        )

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        if items:
            self._collection.update(
                ids=[memory_id for memory_id, _ in items],
                metadatas=[metadata for _, metadata in items],
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._collection.delete(ids=list(ids))

    def query(
        self, embedding: list[float], k: int, where: Where | None, with_embeddings: bool = False
    ) -> list[VectorHit]:
        include = ["distances", "embeddings"] if with_embeddings else ["distances"]
        result = self._collection.query(
            query_embeddings=[embedding], n_results=k, where=where, include=include
        )
        ids = result["ids"][0]
        distances = result["distances"][0]
        vectors = result["embeddings"][0] if with_embeddings else [None] * len(ids)
        return [
            VectorHit(id=i, similarity=1.0 - float(d), embedding=v)
            for i, d, v in zip(ids, distances, vectors, strict=True)
        ]

    def embeddings(self, ids: Sequence[str]) -> dict[str, Sequence[float]]:
        if not ids:
            return {}
        result = self._collection.get(ids=list(ids), include=["embeddings"])
        return dict(zip(result["ids"], result["embeddings"], strict=True))

    def count(self) -> int:
        return int(self._collection.count())

    def versions(self, page_size: int = 5000) -> Iterator[tuple[str, int]]:
        offset = 0
        while True:
            page = self._collection.get(limit=page_size, offset=offset, include=["metadatas"])
            ids = page["ids"]
            if not ids:
                return
            for memory_id, metadata in zip(ids, page["metadatas"], strict=True):
                yield memory_id, int((metadata or {}).get("version", 0))
            offset += len(ids)

    def embedding_model(self) -> str | None:
        metadata = self._collection.metadata or {}
        model = metadata.get("embedding_model")
        return str(model) if model else None

    def reset(self, embedding_model: str) -> None:
        try:
            self._client.delete_collection(self._name)
        except Exception:  # a missing collection is what we want anyway
            log.debug("collection %s did not exist", self._name)
        self._collection = self._open(embedding_model)

    def ping(self) -> None:
        self._client.heartbeat()
        self._collection.count()


def open_vector_store(settings: Settings) -> VectorStore:
    """The configured vector store: embedded Chroma under the data dir, or a Chroma server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.vector_store == "chroma-server":
        client = chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
        )
    else:
        settings.chroma_path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)
    return ChromaVectorStore(client, settings.chroma_collection)
