"""The vector index: a small protocol, and Chroma (embedded or server) behind it.

The index is derived data. SQL holds the text and metadata; the index holds ids, embeddings and the
few scalar fields that filters need, and can always be rebuilt from SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from chromadb.errors import NotFoundError

from .config import Settings

log = logging.getLogger(__name__)

Scalar = str | int | float | bool
Where = dict[str, Any]
T = TypeVar("T")
Item = TypeVar("Item")


@dataclass(frozen=True)
class VectorRecord:
    id: str
    embedding: list[float]
    metadata: dict[str, Scalar]


@dataclass(frozen=True)
class VectorHit:
    id: str
    similarity: float


class VectorStore(Protocol):
    """What the server needs from a vector index. Records are kept per namespace."""

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        """Add or replace records (each in the namespace its metadata names)."""
        ...

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        """Replace the metadata of existing records, keeping their embeddings."""
        ...

    def delete(self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None) -> None:
        """Remove `ids`; `namespace_ids` says where they are (default: look everywhere)."""
        ...

    def query(
        self,
        embedding: list[float],
        k: int,
        namespace_ids: Sequence[str],
        where: Where | None = None,
    ) -> list[VectorHit]:
        """The `k` nearest records of `namespace_ids` matching `where`, nearest first."""
        ...

    def embeddings(
        self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None
    ) -> dict[str, Sequence[float]]:
        """The stored embeddings of `ids` (missing ids are left out)."""
        ...

    def vectors_in_memory(self, namespace_ids: Sequence[str]) -> Mapping[str, np.ndarray] | None:
        """The embeddings of `namespace_ids`' records by id, if this process holds them all in
        memory already (so reading them costs nothing); None otherwise."""
        ...

    def warm(self, namespace_ids: Iterable[str], seconds: float) -> int:
        """Get ready to answer for `namespace_ids` (most wanted first) now, for up to `seconds`,
        so that their first queries do not pay for it; returns how many were made ready."""
        ...

    def namespace_size(self, namespace_id: str) -> int:
        """How many records the namespace holds."""
        ...

    def namespace_vectors(self, namespace_id: str) -> tuple[list[str], np.ndarray]:
        """Every record of the namespace: the ids, and their embeddings as the rows of a matrix."""
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


LAYOUT = "collection-per-namespace"


class ChromaVectorStore:
    """Chroma as the vector index; embeddings are always passed in, never computed by Chroma.

    Each namespace has its own collection (`<name>.<namespace id>`), so a query searches only the
    namespaces it may read, with no metadata filter: Chroma's `where` filtering costs far more
    than the nearest-neighbour search itself (measured in docs/benchmarks.md). The collection
    named `<name>` holds no records; its metadata records the embedding model and the layout.
    """

    def __init__(self, client: Any, collection_name: str):
        self._client = client
        self._name = collection_name
        self._collections: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._marker = self._client.get_or_create_collection(self._name, embedding_function=None)

    # ---- collections -------------------------------------------------------------------------

    def _collection_name(self, namespace_id: str) -> str:
        return f"{self._name}.{namespace_id}"

    def _collection(self, namespace_id: str, *, create: bool) -> Any | None:
        """The namespace's collection (created if `create`), or None when it has none yet."""
        with self._lock:
            cached = self._collections.get(namespace_id)
        if cached is not None:
            return cached
        name = self._collection_name(namespace_id)
        if create:
            # Only inside a live index: if the index was dropped behind our back, writes fail
            # (NotFoundError) until it is rebuilt, rather than start a partial one.
            self._client.get_collection(self._name, embedding_function=None)
            collection = self._client.get_or_create_collection(
                name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
        else:
            try:
                collection = self._client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        with self._lock:
            self._collections[namespace_id] = collection
        return collection

    def _forget(self, namespace_id: str) -> None:
        with self._lock:
            self._collections.pop(namespace_id, None)

    def _each(
        self, namespace_ids: Sequence[str], action: Callable[[Any], T], *, create: bool = False
    ) -> Iterator[T]:
        """`action` on each namespace's collection; a handle gone stale (another process rebuilt
        the index) is reopened once."""
        for namespace_id in namespace_ids:
            collection = self._collection(namespace_id, create=create)
            if collection is None:
                continue
            try:
                yield action(collection)
            except NotFoundError:
                self._forget(namespace_id)
                collection = self._collection(namespace_id, create=create)
                if collection is not None:
                    yield action(collection)

    def _all_namespaces(self) -> list[str]:
        prefix = f"{self._name}."
        names = [c if isinstance(c, str) else c.name for c in self._client.list_collections()]
        return sorted(name.removeprefix(prefix) for name in names if name.startswith(prefix))

    # ---- records -----------------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        for namespace_id, group in group_by_namespace(records, lambda r: r.metadata).items():

            def write(collection: Any, group: list[VectorRecord] = group) -> None:
                collection.upsert(
                    ids=[r.id for r in group],
                    embeddings=[r.embedding for r in group],
                    metadatas=[r.metadata for r in group],
                )

            list(self._each([namespace_id], write, create=True))

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        for namespace_id, group in group_by_namespace(items, lambda item: item[1]).items():

            def update(collection: Any, group: list[tuple[str, dict[str, Scalar]]] = group) -> None:
                collection.update(
                    ids=[memory_id for memory_id, _ in group],
                    metadatas=[metadata for _, metadata in group],
                )

            list(self._each([namespace_id], update))

    def delete(self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None) -> None:
        if not ids:
            return
        where = self._all_namespaces() if namespace_ids is None else list(namespace_ids)
        list(self._each(where, lambda c: c.delete(ids=list(ids))))

    def query(
        self,
        embedding: list[float],
        k: int,
        namespace_ids: Sequence[str],
        where: Where | None = None,
    ) -> list[VectorHit]:
        def nearest(collection: Any) -> list[VectorHit]:
            result = collection.query(
                query_embeddings=[embedding], n_results=k, where=where, include=["distances"]
            )
            return [
                VectorHit(id=i, similarity=1.0 - float(d))
                for i, d in zip(result["ids"][0], result["distances"][0], strict=True)
            ]

        hits = [hit for found in self._each(namespace_ids, nearest) for hit in found]
        if len(namespace_ids) > 1:
            hits.sort(key=lambda hit: -hit.similarity)
        return hits[:k]

    def embeddings(
        self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None
    ) -> dict[str, Sequence[float]]:
        if not ids:
            return {}
        where = self._all_namespaces() if namespace_ids is None else list(namespace_ids)
        found: dict[str, Sequence[float]] = {}
        for result in self._each(where, lambda c: c.get(ids=list(ids), include=["embeddings"])):
            found.update(zip(result["ids"], result["embeddings"], strict=True))
        return found

    def vectors_in_memory(self, namespace_ids: Sequence[str]) -> Mapping[str, np.ndarray] | None:
        return None  # kept in Chroma only

    def warm(self, namespace_ids: Iterable[str], seconds: float) -> int:
        return 0  # Chroma loads a collection on its first query; `namespace_ids` is not read

    def namespace_size(self, namespace_id: str) -> int:
        return sum(self._each([namespace_id], lambda c: int(c.count())))

    def namespace_vectors(self, namespace_id: str) -> tuple[list[str], np.ndarray]:
        for found in self._each([namespace_id], lambda c: c.get(include=["embeddings"])):
            if len(found["ids"]):
                return list(found["ids"]), np.asarray(found["embeddings"], dtype=np.float32)
        return [], np.zeros((0, 0), dtype=np.float32)

    def count(self) -> int:
        return sum(self._each(self._all_namespaces(), lambda c: int(c.count())))

    def entries(
        self, ids: Sequence[str] | None = None, page_size: int = 5000
    ) -> Iterator[tuple[str, dict[str, Scalar]]]:
        for namespace_id in self._all_namespaces():
            collection = self._collection(namespace_id, create=False)
            if collection is None:
                continue
            if ids is not None:
                for start in range(0, len(ids), page_size):
                    page = collection.get(
                        ids=list(ids[start : start + page_size]), include=["metadatas"]
                    )
                    yield from _metadata_pairs(page)
                continue
            offset = 0
            while True:
                page = collection.get(limit=page_size, offset=offset, include=["metadatas"])
                if not page["ids"]:
                    break
                yield from _metadata_pairs(page)
                offset += len(page["ids"])

    # ---- the index as a whole ----------------------------------------------------------------

    def embedding_model(self) -> str | None:
        try:  # asked of Chroma each time: another process may have rebuilt the index
            self._marker = self._client.get_collection(self._name, embedding_function=None)
        except NotFoundError:
            return None
        metadata = self._marker.metadata or {}
        model = metadata.get("embedding_model")
        if not model or metadata.get("layout") != LAYOUT:
            return None  # new, or built before this layout: rebuilt from SQL
        return str(model)

    def reset(self, embedding_model: str) -> None:
        prefix = f"{self._name}."
        for collection in self._client.list_collections():
            name = collection if isinstance(collection, str) else collection.name
            if name == self._name or name.startswith(prefix):
                try:
                    self._client.delete_collection(name)
                except NotFoundError:  # another process got there first
                    log.debug("collection %s was already gone", name)
        with self._lock:
            self._collections.clear()
        self._marker = self._client.get_or_create_collection(
            self._name,
            embedding_function=None,
            metadata={"embedding_model": embedding_model, "layout": LAYOUT},
        )

    def ping(self) -> None:
        self._client.heartbeat()
        try:
            self._marker.count()
        except NotFoundError:  # another process rebuilt the index: look the marker up by name
            self._marker = self._client.get_collection(self._name, embedding_function=None)
            self._marker.count()


def _metadata_pairs(page: Any) -> Iterator[tuple[str, dict[str, Scalar]]]:
    return zip(page["ids"], [dict(m or {}) for m in page["metadatas"]], strict=True)


def group_by_namespace(
    items: Sequence[Item], metadata: Callable[[Item], dict[str, Scalar]]
) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(str(metadata(item)["namespace_id"]), []).append(item)
    return groups


def open_vector_store(settings: Settings) -> VectorStore:
    """The configured vector store: embedded Chroma under the data dir (behind in-memory copies
    of the namespaces' vectors, `vector_cache.py`, unless `vector_cache_vectors` is 0), or a
    Chroma server (shared by several processes, so nothing is copied)."""
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
    store = ChromaVectorStore(client, settings.chroma_collection)
    if settings.vector_store == "chroma-embedded" and settings.vector_cache_vectors > 0:
        from .vector_cache import VectorCache

        return VectorCache(store, settings.vector_cache_vectors)
    return store
