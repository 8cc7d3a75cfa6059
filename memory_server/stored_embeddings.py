"""Each memory's embedding, kept in SQL beside the memory, under the model that produced it.

The vector index answers "which memories are near this query"; ranking also needs the vectors
themselves (diversity, near-duplicates, the dense score of a keyword-only match). Chroma hands them
back as Python lists at ~30 us per vector; SQL returns one 1.5 kB blob per memory in the read that
fetches the rows anyway. The copy also lets the index be rebuilt without running the model again.
Rows written by another model are ignored, so a model change never mixes two vector spaces.

Written in the transaction that writes the memory (`MemoryService`'s indexed transaction), so the
stored vector always belongs to the stored content; deleted with the memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy import and_, delete, insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from .driver_reads import rows
from .filters import Scope, ScopeShape, scope_conditions
from .models import MemoryEmbedding
from .records import MEMORY_TABLE, MemoryRecord, select_records, to_record
from .vectors import VectorRecord

_TABLE = MemoryEmbedding.__table__  # type: ignore[attr-defined]
DTYPE = np.float32


def to_blob(vector: Sequence[float] | np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=DTYPE)


def store_embeddings(session: Session, records: Sequence[VectorRecord], model: str) -> None:
    """Keep `records`' vectors as those of `model`, replacing what each memory had."""
    latest = {record.id: record for record in records}  # a memory written twice: its last vector
    if not latest:
        return
    delete_embeddings(session, list(latest))
    session.connection().execute(
        insert(_TABLE),
        [
            {"memory_id": memory_id, "model": model, "vector": to_blob(record.embedding)}
            for memory_id, record in latest.items()
        ],
    )


def memories_with_vectors(
    session: Session,
    conditions: Sequence[ColumnElement[bool]],
    model: str,
    in_memory: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[MemoryRecord], dict[str, np.ndarray]]:
    """The memories meeting `conditions` (as records) and, for those that have one, their vector
    from `model`: one read (an outer join). With `in_memory` (the vectors this process holds,
    `VectorStore.vectors_in_memory`), the vectors come from there and the read skips the join,
    whose 1.5 kB blobs cost ~0.5 ms per 40 rows; a memory missing from it has no vector here.
    Those are the index's vectors, which a write changes just before its SQL commit: a memory
    rewritten during the call may be read with a vector and a content one write apart, as the
    index's own answers (the neighbours' similarities) already may."""
    statement = _with_vectors(in_memory is None).where(*conditions)  # built per call: run by
    found = session.connection().execute(statement, {"vector_model": model})  # SQLAlchemy
    return _records_and_vectors(found, in_memory)


def memories_in_scope(
    session: Session,
    ids: Sequence[str],
    scope: Scope,
    model: str,
    in_memory: Mapping[str, np.ndarray] | None = None,
) -> tuple[list[MemoryRecord], dict[str, np.ndarray]]:
    """`memories_with_vectors` for the memories of `ids` in `scope`, by a statement built once
    per scope shape (the read that checks a call's neighbours, on every call)."""
    statement = _in_scope(scope.shape, with_vectors=in_memory is None)
    parameters = {**scope.parameters, "ids": list(ids), "vector_model": model}
    return _records_and_vectors(rows(session, statement, parameters), in_memory)


def _with_vectors(join: bool) -> sa.Select[Any]:
    """Every memory column, then (with `join`) the vector of the model `:vector_model`."""
    if not join:
        return select_records()
    same_memory = _TABLE.c.memory_id == MEMORY_TABLE.c.id
    of_model = _TABLE.c.model == sa.bindparam("vector_model")
    return select_records(_TABLE.c.vector).select_from(
        MEMORY_TABLE.outerjoin(_TABLE, and_(same_memory, of_model))
    )


@lru_cache(maxsize=512)
def _in_scope(shape: ScopeShape, *, with_vectors: bool) -> sa.Select[Any]:
    by_id = MEMORY_TABLE.c.id.in_(sa.bindparam("ids", expanding=True))
    return _with_vectors(with_vectors).where(by_id, *scope_conditions(shape))


def _records_and_vectors(
    found: Iterable[Sequence[Any]], in_memory: Mapping[str, np.ndarray] | None
) -> tuple[list[MemoryRecord], dict[str, np.ndarray]]:
    if in_memory is not None:
        records = [to_record(row) for row in found]
        return records, {m.id: in_memory[m.id] for m in records if m.id in in_memory}
    memories: list[MemoryRecord] = []
    vectors: dict[str, np.ndarray] = {}
    for row in found:
        memory = to_record(row)
        memories.append(memory)
        blob = row[-1]
        if blob is not None:
            vectors[memory.id] = from_blob(blob)
    return memories, vectors


def stored_vectors(session: Session, ids: Sequence[str], model: str) -> dict[str, np.ndarray]:
    """The vectors `model` gave `ids`, for those that have one."""
    if not ids:
        return {}
    statement = sa.select(_TABLE.c.memory_id, _TABLE.c.vector).where(
        _TABLE.c.memory_id.in_(list(ids)), _TABLE.c.model == model
    )
    return {row[0]: from_blob(row[1]) for row in session.connection().execute(statement)}


def delete_embeddings(session: Session, ids: Sequence[str]) -> None:
    if ids:
        session.connection().execute(delete(_TABLE).where(_TABLE.c.memory_id.in_(list(ids))))
