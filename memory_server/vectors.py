"""The vector index: a small protocol, and Chroma (embedded or server) behind it.

The index is derived data. SQL holds the text and metadata; the index holds ids, embeddings and the
few scalar fields that filters need, and can always be rebuilt from SQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .config import Settings

log = logging.getLogger(__name__)

Scalar = str | int | float | bool
Where = dict[str, Any]
T = TypeVar("T")


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

    def entries(
        self, ids: Sequence[str] | None = None, page_size: int = 5000
    ) -> Iterator[tuple[str, dict[str, Scalar]]]:
        """(id, metadata) of every record in the index, or of those of `ids` it holds."""
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

    def _call(self, operation: Callable[[Any], T]) -> T:
        """Run `operation` on the collection; if Chroma no longer knows our handle (another
        process rebuilt the collection), look the collection up by name and try once more."""
        from chromadb.errors import NotFoundError

        try:
            return operation(self._collection)
        except NotFoundError:
            self._collection = self._client.get_collection(self._name)  # NotFoundError if gone
            return operation(self._collection)

    def _open(self, embedding_model: str | None = None) -> Any:
        metadata = {"embedding_model": embedding_model} if embedding_model else None
        collection = self._client.get_or_create_collection(
            self._name,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata=metadata,
        )
        if metadata and (collection.metadata or {}).get("embedding_model") != embedding_model:
            collection.modify(metadata=metadata)  # another process created it a moment before us
        return collection

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        if not records:
            return
        self._call(
            lambda c: c.upsert(
                ids=[r.id for r in records],
                embeddings=[r.embedding for r in records],
                metadatas=[r.metadata for r in records],
            )
        )

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        if items:
            self._call(
                lambda c: c.update(
                    ids=[memory_id for memory_id, _ in items],
                    metadatas=[metadata for _, metadata in items],
                )
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._call(lambda c: c.delete(ids=list(ids)))

    def query(
        self, embedding: list[float], k: int, where: Where | None, with_embeddings: bool = False
    ) -> list[VectorHit]:
        include = ["distances", "embeddings"] if with_embeddings else ["distances"]
        result = self._call(
            lambda c: c.query(
                query_embeddings=[embedding], n_results=k, where=where, include=include
            )
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
        result = self._call(lambda c: c.get(ids=list(ids), include=["embeddings"]))
        return dict(zip(result["ids"], result["embeddings"], strict=True))

    def count(self) -> int:
        return int(self._call(lambda c: c.count()))

    def entries(
        self, ids: Sequence[str] | None = None, page_size: int = 5000
    ) -> Iterator[tuple[str, dict[str, Scalar]]]:
        if ids is not None:
            for start in range(0, len(ids), page_size):
                chunk = list(ids[start : start + page_size])
                yield from self._page({"ids": chunk})
            return
        offset = 0
        while True:
            page = list(self._page({"limit": page_size, "offset": offset}))
            if not page:
                return
            yield from page
            offset += len(page)

    def _page(self, selection: dict[str, Any]) -> Iterator[tuple[str, dict[str, Scalar]]]:
        page = self._call(lambda c: c.get(include=["metadatas"], **selection))
        return zip(page["ids"], [dict(m or {}) for m in page["metadatas"]], strict=True)

    def embedding_model(self) -> str | None:
        from chromadb.errors import NotFoundError

        try:  # asked of the server each time: another process may have rebuilt the index
            self._collection = self._client.get_collection(self._name)
        except NotFoundError:
            return None
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
        self._call(lambda c: c.count())


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
