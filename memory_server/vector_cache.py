"""Exact search over copies of the namespaces' vectors held in memory, in front of the index.

Chroma's query has a fixed cost of about a millisecond, whatever the collection's size: 1.2 ms on
1,000 vectors, for 10 neighbours or 84, where a numpy scan of the same vectors and its top k take
0.04 ms. Search and context ask the index for each namespace in scope on every call, so
`VectorCache` keeps a copy of each namespace's vectors once asked for (up to a bound) and answers
unfiltered queries by scanning it: exactly, where Chroma's HNSW is approximate.

The copies mirror the index as this process writes it:
- every write goes through `upsert`, `delete` and `reset` here: to the index first, then to the
  copies, under one lock. A write that fails drops the copies it touched (they are loaded again).
- a namespace is copied on the first query that asks for it, which pays for the load once (as it
  pays for Chroma loading its HNSW), or at a start (`warm`) if it was read recently. Loading in
  a background thread instead would not spare the calls: Chroma's get of the vectors holds the
  GIL throughout (~25 ms for 1,000), so it stalls whichever call runs beside it. The load reads
  without the lock; a write to the namespace while it reads voids it (a generation bumped under
  the lock), and the index answers instead, for `retry_after` seconds before another load is
  tried (also after a load that failed).
- another process writing the same index is not seen, so the copies are only kept in front of an
  embedded Chroma (one server owns its data dir), and a copy older than `max_age` seconds is read
  again in the background (the maintenance commands can write the same data dir).
A namespace above `max_namespace_vectors` is not copied: its scan would cost more than the HNSW.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .vectors import Scalar, VectorHit, VectorRecord, VectorStore, Where, group_by_namespace

log = logging.getLogger(__name__)

MAX_NAMESPACE_VECTORS = 20_000
MAX_AGE_SECONDS = 600.0
RETRY_SECONDS = 10.0  # after a load that failed or was voided, the store answers this long


@dataclass(frozen=True)
class NamespaceCopy:
    """One namespace's vectors as unit rows, row i being `ids[i]`'s. Never changed in place: a
    write makes a new copy, so a query may scan one while another thread writes."""

    ids: tuple[str, ...]
    matrix: np.ndarray  # float32, len(ids) x dimension
    loaded_at: float

    @classmethod
    def of(cls, ids: Sequence[str], vectors: np.ndarray, loaded_at: float) -> NamespaceCopy:
        if not ids:
            return cls((), np.zeros((0, 0), dtype=np.float32), loaded_at)
        return cls(tuple(ids), unit_rows(vectors), loaded_at)

    def nearest(self, query: np.ndarray, k: int) -> list[VectorHit]:
        """The `k` rows most cosine-similar to the unit vector `query`, nearest first."""
        if not self.ids or k <= 0:
            return []
        similarity = self.matrix @ query
        top = (
            np.argpartition(-similarity, k - 1)[:k]
            if k < len(self.ids)
            else np.arange(len(self.ids))
        )
        top = top[np.argsort(-similarity[top], kind="stable")]
        return [VectorHit(self.ids[i], float(similarity[i])) for i in top]

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each id's row (built on first use: ~40 us for 1,000 ids, once per copy)."""
        return {id_: i for i, id_ in enumerate(self.ids)}

    def upserted(self, records: Sequence[VectorRecord]) -> NamespaceCopy | None:
        """This copy with `records` added or replaced; None if their dimension differs."""
        latest = {record.id: record.embedding for record in records}  # the last write of an id
        rows = unit_rows(np.asarray(list(latest.values()), dtype=np.float32))
        if self.ids and rows.shape[1] != self.matrix.shape[1]:
            return None
        keep = [i for i, id_ in enumerate(self.ids) if id_ not in latest]
        ids = (*(self.ids[i] for i in keep), *latest)
        matrix = np.vstack([self.matrix[keep], rows]) if keep else rows
        return NamespaceCopy(ids, matrix, self.loaded_at)

    def without(self, ids: Sequence[str]) -> NamespaceCopy:
        gone = set(ids)
        keep = [i for i, id_ in enumerate(self.ids) if id_ not in gone]
        if len(keep) == len(self.ids):
            return self
        return NamespaceCopy(tuple(self.ids[i] for i in keep), self.matrix[keep], self.loaded_at)


class HeldVectors(Mapping[str, np.ndarray]):
    """The vectors of a few namespaces' copies by id (unit rows, read-only views)."""

    def __init__(self, copies: Sequence[NamespaceCopy]):
        self._copies = copies

    def __getitem__(self, id_: str) -> np.ndarray:
        for copy in self._copies:
            row = copy.positions.get(id_)
            if row is not None:
                view = copy.matrix[row]
                view.flags.writeable = False  # the copy is shared by every call
                return view
        raise KeyError(id_)

    def __iter__(self) -> Iterator[str]:
        return (id_ for copy in self._copies for id_ in copy.ids)

    def __len__(self) -> int:
        return sum(len(copy.ids) for copy in self._copies)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """`vectors` (n x d) as float32 rows of unit length; a zero row stays zero."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        matrix = matrix.reshape(len(matrix), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


class VectorCache:
    """A `VectorStore` that answers unfiltered queries from in-memory copies of the namespaces'
    vectors and passes everything else to the store it wraps (see the module doc)."""

    def __init__(
        self,
        store: VectorStore,
        max_vectors: int,
        *,
        max_namespace_vectors: int = MAX_NAMESPACE_VECTORS,
        max_age: float = MAX_AGE_SECONDS,
        retry_after: float = RETRY_SECONDS,
    ):
        self._store = store
        self._max_vectors = max_vectors
        self._max_namespace_vectors = min(max_namespace_vectors, max_vectors)
        self._max_age = max_age
        self._retry_after = retry_after
        self._lock = threading.Lock()  # held by writes (across the store's write) and installs
        self._copies: dict[str, NamespaceCopy] = {}
        self._used: dict[str, float] = {}  # when each copy last answered (for eviction)
        self._held = 0  # vectors in all copies
        self._generations: dict[str, int] = {}  # bumped by every write to a namespace
        self._epoch = 0  # bumped by writes to every namespace (deletes anywhere, a reset)
        self._loading: set[str] = set()
        # namespaces not to load again before a time: too large, or their last load failed or
        # was voided (a namespace written all the time is then left to the store, not loaded
        # over and over)
        self._not_before: dict[str, float] = {}

    @property
    def store(self) -> VectorStore:
        """The index the copies are of."""
        return self._store

    # ---- queries -----------------------------------------------------------------------------

    def query(
        self,
        embedding: list[float],
        k: int,
        namespace_ids: Sequence[str],
        where: Where | None = None,
    ) -> list[VectorHit]:
        if where is not None:
            return self._store.query(embedding, k, namespace_ids, where)
        query = unit_rows(np.asarray([embedding], dtype=np.float32))[0]
        hits: list[VectorHit] = []
        uncopied: list[str] = []
        for namespace_id in namespace_ids:
            copy = self._copy(namespace_id)
            if copy is None:
                uncopied.append(namespace_id)
            else:
                hits += copy.nearest(query, k)
        if uncopied:
            hits += self._store.query(embedding, k, uncopied)
        if len(namespace_ids) > 1:
            hits.sort(key=lambda hit: -hit.similarity)
        return hits[:k]

    def vectors_in_memory(self, namespace_ids: Sequence[str]) -> Mapping[str, np.ndarray] | None:
        """The copies' vectors, if every namespace of `namespace_ids` has one (loads none)."""
        copies = [self._copies.get(namespace_id) for namespace_id in namespace_ids]
        if not copies or any(copy is None for copy in copies):
            return None
        return HeldVectors([copy for copy in copies if copy is not None])

    def warm(self, namespace_ids: Iterable[str], seconds: float) -> int:
        """Copy `namespace_ids` now, in order, as long as they fit beside what is held (none is
        evicted for them) and `seconds` last; returns how many were copied. At a start, with the
        namespaces read most recently, it spares their first calls the load (~25 ms for 1,000
        vectors, holding the GIL, so no cheaper in a background thread while calls are served)."""
        deadline = time.monotonic() + seconds
        copied = 0
        for namespace_id in namespace_ids:
            if time.monotonic() >= deadline:
                break
            if namespace_id in self._copies:
                continue
            try:
                size = self._store.namespace_size(namespace_id)
            except Exception:  # the first query tries again
                log.debug("could not size namespace %s", namespace_id, exc_info=True)
                continue
            if size > self._max_namespace_vectors or self._held + size > self._max_vectors:
                continue
            if self._load(namespace_id) is not None:
                copied += 1
        return copied

    def copied_namespaces(self) -> list[str]:
        """The namespaces whose vectors are held now."""
        return sorted(self._copies)

    @property
    def held_vectors(self) -> int:
        """How many vectors the copies hold in all."""
        return self._held

    def _copy(self, namespace_id: str) -> NamespaceCopy | None:
        """The namespace's copy, loaded now if it has none (None: let the store answer)."""
        copy = self._copies.get(namespace_id)  # no lock: a query never waits for a write
        now = time.monotonic()
        if copy is None:
            return self._load(namespace_id)
        self._used[namespace_id] = now
        if now - copy.loaded_at > self._max_age:
            self._reload_soon(namespace_id)
        return copy

    def _load(self, namespace_id: str) -> NamespaceCopy | None:
        """Read the namespace's vectors from the store and keep them, unless a write to it
        landed meanwhile, it is too large, or another thread is loading it already."""
        with self._lock:
            if namespace_id in self._loading or time.monotonic() < self._not_before.get(
                namespace_id, 0.0
            ):
                return None
            self._loading.add(namespace_id)
            stamp = (self._generations.get(namespace_id, 0), self._epoch)
        copy = None
        wait = self._max_age  # too large: the store answers until the namespace is read again
        try:
            if self._store.namespace_size(namespace_id) <= self._max_namespace_vectors:
                ids, vectors = self._store.namespace_vectors(namespace_id)
                copy = NamespaceCopy.of(ids, vectors, time.monotonic())
        except Exception:  # the store answers this query itself (and says if it is down)
            log.debug("could not copy the vectors of namespace %s", namespace_id, exc_info=True)
            wait = self._retry_after
        with self._lock:
            self._loading.discard(namespace_id)
            now = time.monotonic()
            if copy is None or len(copy.ids) > self._max_namespace_vectors:
                self._drop(namespace_id)
                self._not_before[namespace_id] = now + wait
                return None
            if (self._generations.get(namespace_id, 0), self._epoch) != stamp:
                self._not_before[namespace_id] = now + self._retry_after
                return None  # a write landed while it was read: its copy would miss it
            self._install(namespace_id, copy)
        return copy

    def _reload_soon(self, namespace_id: str) -> None:
        """Read an old copy again in the background, serving it meanwhile."""
        waiting = time.monotonic() < self._not_before.get(namespace_id, 0.0)
        if namespace_id not in self._loading and not waiting:
            threading.Thread(
                target=self._load, args=(namespace_id,), daemon=True, name="vector-cache-reload"
            ).start()

    def _install(self, namespace_id: str, copy: NamespaceCopy) -> None:
        """Keep `copy` (lock held), evicting the least recently used copies to make room."""
        self._drop(namespace_id)
        if len(copy.ids) > self._max_namespace_vectors:
            return
        while self._copies and self._held + len(copy.ids) > self._max_vectors:
            self._drop(min(self._copies, key=lambda n: self._used.get(n, 0.0)))
        self._copies[namespace_id] = copy
        self._used[namespace_id] = time.monotonic()
        self._held += len(copy.ids)
        self._not_before.pop(namespace_id, None)

    def _drop(self, namespace_id: str) -> None:
        copy = self._copies.pop(namespace_id, None)
        if copy is not None:
            self._held -= len(copy.ids)
        self._used.pop(namespace_id, None)

    # ---- writes ------------------------------------------------------------------------------

    def upsert(self, records: Sequence[VectorRecord]) -> None:
        groups = group_by_namespace(records, lambda record: record.metadata)
        with self._lock:
            self._bump(groups)
            try:
                self._store.upsert(records)
            except BaseException:
                for namespace_id in groups:
                    self._drop(namespace_id)
                raise
            for namespace_id, group in groups.items():
                copy = self._copies.get(namespace_id)
                if copy is not None:
                    self._replace(namespace_id, copy.upserted(group))

    def delete(self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None) -> None:
        if not ids:
            return
        with self._lock:
            if namespace_ids is None:
                self._epoch += 1
            else:
                self._bump(namespace_ids)
            targets = list(self._copies) if namespace_ids is None else list(namespace_ids)
            try:
                self._store.delete(ids, namespace_ids)
            except BaseException:
                for namespace_id in targets:
                    self._drop(namespace_id)
                raise
            for namespace_id in targets:
                copy = self._copies.get(namespace_id)
                if copy is not None:
                    self._replace(namespace_id, copy.without(ids))

    def update_metadata(self, items: Sequence[tuple[str, dict[str, Scalar]]]) -> None:
        self._store.update_metadata(items)  # the copies hold no metadata

    def reset(self, embedding_model: str) -> None:
        with self._lock:
            self._epoch += 1
            for namespace_id in list(self._copies):
                self._drop(namespace_id)
            self._store.reset(embedding_model)

    def _bump(self, namespace_ids: Iterable[str]) -> None:
        for namespace_id in namespace_ids:
            self._generations[namespace_id] = self._generations.get(namespace_id, 0) + 1

    def _replace(self, namespace_id: str, copy: NamespaceCopy | None) -> None:
        if copy is None or len(copy.ids) > self._max_namespace_vectors:
            self._drop(namespace_id)  # another dimension, or grown too large: the store answers
            return
        previous = self._copies[namespace_id]
        self._copies[namespace_id] = copy
        self._held += len(copy.ids) - len(previous.ids)
        while self._held > self._max_vectors and len(self._copies) > 1:  # grown: make room
            others = (n for n in self._copies if n != namespace_id)
            self._drop(min(others, key=lambda n: self._used.get(n, 0.0)))

    # ---- passed through ----------------------------------------------------------------------

    def embeddings(
        self, ids: Sequence[str], namespace_ids: Sequence[str] | None = None
    ) -> dict[str, Sequence[float]]:
        return self._store.embeddings(ids, namespace_ids)

    def namespace_size(self, namespace_id: str) -> int:
        return self._store.namespace_size(namespace_id)

    def namespace_vectors(self, namespace_id: str) -> tuple[list[str], np.ndarray]:
        return self._store.namespace_vectors(namespace_id)

    def count(self) -> int:
        return self._store.count()

    def entries(
        self, ids: Sequence[str] | None = None, page_size: int = 5000
    ) -> Iterator[tuple[str, dict[str, Scalar]]]:
        return self._store.entries(ids, page_size)

    def embedding_model(self) -> str | None:
        return self._store.embedding_model()

    def ping(self) -> None:
        self._store.ping()
