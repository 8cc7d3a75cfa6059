"""Memories: write (single, batch, keyed, deduplicated), read, list, update, delete, search.

Every write lands in SQL and in the vector index together: the SQL transaction stays open while the
index is written, and commits only once the index has the records. A failure anywhere rolls back
SQL and removes what was added to the index, so nothing is left half-written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from ..access import Action, authorize_memory, authorize_namespace, scope_namespace_ids
from ..auth import Principal
from ..config import Settings
from ..db import Database
from ..embeddings import Embedder
from ..errors import (
    Conflict,
    InvalidRequest,
    MemoryServerError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    StoreUnavailable,
)
from ..models import Agent, Memory, MemoryDeletion, MemoryTag, new_id, utcnow
from ..schemas import (
    MemoryCreate,
    MemoryFilters,
    MemoryStatus,
    MemoryUpdate,
    SearchRequest,
)
from ..tokens import count_tokens
from ..vectors import Scalar, VectorRecord, VectorStore, Where
from .indexing import vector_metadata, vector_record

log = logging.getLogger(__name__)

MESSAGE_KIND = "message"
WRITE_ATTEMPTS = 3


def content_hash(content: str) -> str:
    """Identity of a memory's text for de-duplication: case and spacing do not matter."""
    normalized = " ".join(content.lower().split())
    return hashlib.sha256(normalized.encode()).hexdigest()


@dataclass(frozen=True)
class WriteOutcome:
    memory: Memory
    created: bool
    superseded_id: str | None = None


@dataclass(frozen=True)
class SearchHitRecord:
    memory: Memory
    similarity: float


@dataclass(frozen=True)
class _Prepared:
    item: MemoryCreate
    namespace_id: str
    content_hash: str


class MemoryService:
    """All work on memories; routes and jobs call these methods and nothing below them."""

    def __init__(self, db: Database, vectors: VectorStore, embedder: Embedder, settings: Settings):
        self._db = db
        self._vectors = vectors
        self._embedder = embedder
        self._settings = settings

    # ---- writes ------------------------------------------------------------------------------

    def create(self, principal: Principal, item: MemoryCreate) -> WriteOutcome:
        """Store one memory (or recognise it as a duplicate / supersede a keyed value)."""
        return self.create_many(principal, [item])[0]

    def create_many(
        self, principal: Principal, items: Sequence[MemoryCreate]
    ) -> list[WriteOutcome]:
        """Store memories atomically: all of them land in SQL and the index, or none does."""
        self._check_limits(items)
        prepared = self._prepare(principal, items)
        embeddings = self._embed_new(prepared)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self._write(principal, prepared, embeddings)
            except IntegrityError:
                # A concurrent writer stored the same keyed fact or content first; the next
                # attempt sees it and supersedes or de-duplicates against it.
                log.info("write raced a concurrent writer (attempt %d)", attempt)
        raise Conflict(
            "Concurrent writes to the same keyed fact kept colliding; retry the request.",
            code="write_conflict",
        )

    def _check_limits(self, items: Sequence[MemoryCreate]) -> None:
        if len(items) > self._settings.max_batch_size:
            raise PayloadTooLarge(
                f"A batch holds at most {self._settings.max_batch_size} memories; "
                f"this one has {len(items)}.",
                code="batch_too_large",
            )
        limit = self._settings.max_content_chars
        for index, item in enumerate(items):
            if len(item.content) > limit:
                raise PayloadTooLarge(
                    f"Memory {index} has {len(item.content)} characters; the limit is {limit}.",
                    code="content_too_large",
                )

    def _prepare(self, principal: Principal, items: Sequence[MemoryCreate]) -> list[_Prepared]:
        with self._db.read() as session:
            default_namespace = None
            if principal.agent_id is not None:
                agent = session.get(Agent, principal.agent_id)
                default_namespace = agent.default_namespace_id if agent else None
            checked: set[str] = set()
            prepared = []
            for item in items:
                namespace_id = item.namespace_id or default_namespace
                if namespace_id is None:
                    raise InvalidRequest(
                        "namespace_id is required when the caller has no default namespace.",
                        code="namespace_required",
                    )
                if namespace_id not in checked:
                    authorize_namespace(session, principal, namespace_id, Action.WRITE)
                    checked.add(namespace_id)
                prepared.append(_Prepared(item, namespace_id, content_hash(item.content)))
        return prepared

    def _embed_new(self, prepared: Sequence[_Prepared]) -> dict[str, list[float]]:
        """Embeddings by content hash, for every text not already stored as a duplicate."""
        with self._db.read() as session:
            known = {
                p.content_hash
                for p in prepared
                if p.item.kind != MESSAGE_KIND and self._find_duplicate(session, p) is not None
            }
        texts: dict[str, str] = {}
        for p in prepared:
            if p.content_hash not in known or p.item.kind == MESSAGE_KIND:
                texts.setdefault(p.content_hash, p.item.content)
        vectors = self._embedder.embed(list(texts.values()))
        return dict(zip(texts.keys(), vectors, strict=True))

    def _write(
        self,
        principal: Principal,
        prepared: Sequence[_Prepared],
        embeddings: dict[str, list[float]],
    ) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = []
        with self._indexed_transaction() as (session, index_ops):
            for p in prepared:
                outcome = self._write_one(session, principal, p, embeddings, index_ops)
                outcomes.append(outcome)
        return outcomes

    def _write_one(
        self,
        session: Session,
        principal: Principal,
        p: _Prepared,
        embeddings: dict[str, list[float]],
        index_ops: _IndexOps,
    ) -> WriteOutcome:
        item = p.item
        if item.kind != MESSAGE_KIND:
            duplicate = self._find_duplicate(session, p)
            if duplicate is not None:
                return WriteOutcome(memory=duplicate, created=False)
        now = utcnow()
        superseded_id = None
        current = None
        if item.key is not None:
            current = session.exec(
                select(Memory).where(
                    Memory.namespace_id == p.namespace_id,
                    _same_user(item.user_id),
                    Memory.key == item.key,
                    Memory.status == MemoryStatus.ACTIVE,
                )
            ).first()
            if current is not None:
                current.status = MemoryStatus.SUPERSEDED
                current.version += 1
                current.updated_at = now
                session.add(current)
                session.flush()
                index_ops.metadata_updates.append((current.id, vector_metadata(current)))
        memory = Memory(
            id=new_id("mem"),
            namespace_id=p.namespace_id,
            author_agent_id=principal.agent_id,
            user_id=item.user_id,
            thread_id=item.thread_id,
            kind=item.kind,
            role=item.role.value if item.role else None,
            content=item.content,
            meta=item.metadata,
            tags=item.tags,
            importance=item.importance,
            key=item.key,
            created_at=item.created_at or now,
            updated_at=now,
            token_count=count_tokens(item.content, self._settings.default_token_model),
            content_hash=p.content_hash,
            version=1,
            status=MemoryStatus.ACTIVE,
            expires_at=item.expires_at,
        )
        session.add(memory)
        session.add_all(MemoryTag(memory_id=memory.id, tag=tag) for tag in item.tags)
        if current is not None:
            current.superseded_by = memory.id
            superseded_id = current.id
            session.add(current)
        session.flush()
        embedding = embeddings.get(p.content_hash) or self._embedder.embed([item.content])[0]
        index_ops.upserts.append(vector_record(memory, embedding))
        return WriteOutcome(memory=memory, created=True, superseded_id=superseded_id)

    def _find_duplicate(self, session: Session, p: _Prepared) -> Memory | None:
        return session.exec(
            select(Memory).where(
                Memory.namespace_id == p.namespace_id,
                _same_user(p.item.user_id),
                Memory.kind == p.item.kind,
                _same_key(p.item.key),
                Memory.content_hash == p.content_hash,
                Memory.status == MemoryStatus.ACTIVE,
            )
        ).first()

    @contextmanager
    def _indexed_transaction(self) -> Iterator[tuple[Session, _IndexOps]]:
        """A SQL transaction whose index changes are applied just before it commits."""
        ops = _IndexOps()
        applied = False
        try:
            with self._db.write() as session:
                yield session, ops
                session.flush()
                self._apply_index_ops(ops)
                applied = True
        except BaseException:
            if applied:
                self._undo_index_upserts(ops)
            raise

    def _apply_index_ops(self, ops: _IndexOps) -> None:
        try:
            self._vectors.delete(ops.deletes)
            self._vectors.upsert(ops.upserts)
            self._vectors.update_metadata(ops.metadata_updates)
        except MemoryServerError:
            raise
        except Exception as exc:
            log.error("vector index write failed: %s", exc)
            self._undo_index_upserts(ops)
            raise StoreUnavailable(
                "The vector index is unavailable; nothing was stored. Retry later."
            ) from exc

    def _undo_index_upserts(self, ops: _IndexOps) -> None:
        try:
            self._vectors.delete([r.id for r in ops.upserts])
        except Exception:  # the reconciler removes anything left over
            log.exception("could not undo index writes; the reconciler will repair the index")

    # ---- reads -------------------------------------------------------------------------------

    def get(self, principal: Principal, memory_id: str) -> Memory:
        """One memory the caller may read (expired ones are gone)."""
        with self._db.read() as session:
            memory = authorize_memory(session, principal, memory_id, Action.READ)
        if _expired(memory):
            raise NotFound(f"Memory {memory_id!r} was not found.", code="memory_not_found")
        return memory

    def list_page(
        self, principal: Principal, filters: MemoryFilters, *, limit: int, cursor: str | None
    ) -> tuple[list[Memory], str | None]:
        """A page of memories, newest first, and the cursor of the next page."""
        with self._db.read() as session:
            namespace_ids = scope_namespace_ids(session, principal, filters.namespace_ids)
            query = _filtered(select(Memory), namespace_ids, filters, filters.statuses)
            if cursor is not None:
                created_at, last_id = _decode_cursor(cursor)
                query = query.where(
                    or_(
                        col(Memory.created_at) < created_at,
                        and_(col(Memory.created_at) == created_at, col(Memory.id) < last_id),
                    )
                )
            query = query.order_by(col(Memory.created_at).desc(), col(Memory.id).desc())
            rows = list(session.exec(query.limit(limit + 1)).all())
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return rows[:limit], next_cursor

    def search(self, principal: Principal, request: SearchRequest) -> list[SearchHitRecord]:
        """Memories most similar to the query, within the caller's readable scope and filters."""
        statuses = request.statuses or (
            [MemoryStatus.ACTIVE, MemoryStatus.ARCHIVED]
            if request.include_archived
            else [MemoryStatus.ACTIVE]
        )
        with self._db.read() as session:
            namespace_ids = scope_namespace_ids(session, principal, request.namespace_ids)
        if not namespace_ids:
            return []
        embedding = self._embedder.embed([request.query])[0]
        fetch = request.k if not request.tags else min(request.k * 5, 500)
        try:
            hits = self._vectors.query(
                embedding, fetch + 5, _vector_where(namespace_ids, request, statuses)
            )
        except Exception as exc:
            raise StoreUnavailable("The vector index is unavailable; retry later.") from exc
        similarity = {hit.id: hit.similarity for hit in hits}
        with self._db.read() as session:
            query = _filtered(select(Memory), namespace_ids, request, statuses)
            rows = session.exec(query.where(col(Memory.id).in_(list(similarity)))).all()
        results = [SearchHitRecord(memory=m, similarity=similarity[m.id]) for m in rows]
        if request.min_similarity is not None:
            results = [r for r in results if r.similarity >= request.min_similarity]
        results.sort(key=lambda r: (-r.similarity, r.memory.id))
        return results[: request.k]

    # ---- update and delete -------------------------------------------------------------------

    def update(
        self, principal: Principal, memory_id: str, change: MemoryUpdate, expected_version: int
    ) -> Memory:
        """Apply `change` if the memory is still at `expected_version` (optimistic locking)."""
        if change.content is not None and len(change.content) > self._settings.max_content_chars:
            raise PayloadTooLarge(
                f"content has {len(change.content)} characters; "
                f"the limit is {self._settings.max_content_chars}.",
                code="content_too_large",
            )
        with self._db.read() as session:
            authorize_memory(session, principal, memory_id, Action.WRITE)
        embedding = self._embedder.embed([change.content])[0] if change.content else None
        try:
            with self._indexed_transaction() as (session, ops):
                memory = authorize_memory(session, principal, memory_id, Action.WRITE)
                if memory.version != expected_version:
                    raise PreconditionFailed(
                        f"Memory {memory_id!r} is at version {memory.version}, "
                        f"not {expected_version}; re-read it and retry.",
                    )
                values = self._changed_values(memory, change)
                result = session.exec(
                    update(Memory)
                    .where(col(Memory.id) == memory_id, col(Memory.version) == expected_version)
                    .values(**values)
                )
                if result.rowcount != 1:
                    raise PreconditionFailed(
                        f"Memory {memory_id!r} changed while updating; re-read it and retry."
                    )
                if change.tags is not None:
                    session.exec(delete(MemoryTag).where(col(MemoryTag.memory_id) == memory_id))
                    session.add_all(MemoryTag(memory_id=memory_id, tag=t) for t in change.tags)
                session.refresh(memory)
                if embedding is not None:
                    ops.upserts.append(vector_record(memory, embedding))
                else:
                    ops.metadata_updates.append((memory.id, vector_metadata(memory)))
        except IntegrityError:
            raise Conflict(
                "An identical memory is already active in this scope.", code="duplicate_memory"
            ) from None
        return memory

    def _changed_values(self, memory: Memory, change: MemoryUpdate) -> dict[str, Any]:
        fields = change.model_fields_set
        values: dict[str, Any] = {"version": memory.version + 1, "updated_at": utcnow()}
        if change.status is not None:
            if memory.status == MemoryStatus.SUPERSEDED:
                raise Conflict(
                    "A superseded memory stays superseded; write a new value for its key.",
                    code="memory_superseded",
                )
            values["status"] = change.status.value
        if change.content is not None:
            values["content"] = change.content
            values["content_hash"] = content_hash(change.content)
            values["token_count"] = count_tokens(change.content, self._settings.default_token_model)
        if change.metadata is not None:
            values["meta"] = change.metadata
        if change.tags is not None:
            values["tags"] = list(dict.fromkeys(change.tags))
        if change.importance is not None:
            values["importance"] = change.importance
        if "expires_at" in fields:
            values["expires_at"] = change.expires_at
        return values

    def delete(self, principal: Principal, memory_id: str) -> MemoryDeletion:
        """Remove a memory's content from SQL and the index for good; keep that it was deleted."""
        with self._indexed_transaction() as (session, ops):
            memory = authorize_memory(session, principal, memory_id, Action.WRITE)
            tombstone = self._delete_rows(session, [memory], principal.agent_id)[0]
            ops.deletes.append(memory_id)
        return tombstone

    def purge_expired(self, batch: int = 500) -> int:
        """Delete every memory whose `expires_at` has passed; return how many."""
        purged = 0
        while True:
            with self._indexed_transaction() as (session, ops):
                expired = session.exec(
                    select(Memory)
                    .where(col(Memory.expires_at).is_not(None), col(Memory.expires_at) <= utcnow())
                    .limit(batch)
                ).all()
                self._delete_rows(session, expired, None)
                ops.deletes.extend(m.id for m in expired)
            purged += len(expired)
            if len(expired) < batch:
                return purged

    def _delete_rows(
        self, session: Session, memories: Sequence[Memory], deleted_by: str | None
    ) -> list[MemoryDeletion]:
        now = utcnow()
        ids = [m.id for m in memories]
        if not ids:
            return []
        session.exec(delete(MemoryTag).where(col(MemoryTag.memory_id).in_(ids)))
        session.exec(delete(Memory).where(col(Memory.id).in_(ids)))
        tombstones = [
            MemoryDeletion(
                memory_id=m.id,
                namespace_id=m.namespace_id,
                kind=m.kind,
                deleted_by_agent_id=deleted_by,
                deleted_at=now,
            )
            for m in memories
        ]
        session.add_all(tombstones)
        return tombstones


@dataclass
class _IndexOps:
    """Index changes collected during a write transaction, applied just before it commits."""

    upserts: list[VectorRecord] = field(default_factory=list)
    metadata_updates: list[tuple[str, dict[str, Scalar]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)


def _expired(memory: Memory) -> bool:
    return memory.expires_at is not None and memory.expires_at <= datetime.now(UTC)


def _same_user(user_id: str | None) -> Any:
    return col(Memory.user_id).is_(None) if user_id is None else col(Memory.user_id) == user_id


def _same_key(key: str | None) -> Any:
    return col(Memory.key).is_(None) if key is None else col(Memory.key) == key


def _filtered(
    query: SelectOfScalar[Memory],
    namespace_ids: Sequence[str],
    filters: MemoryFilters,
    statuses: Sequence[MemoryStatus] | None,
) -> SelectOfScalar[Memory]:
    """Apply scope and filters in SQL; the same rules for listing and for checking search hits."""
    statuses = statuses or [MemoryStatus.ACTIVE]
    query = query.where(
        col(Memory.namespace_id).in_(list(namespace_ids)),
        col(Memory.status).in_([s.value for s in statuses]),
        or_(col(Memory.expires_at).is_(None), col(Memory.expires_at) > utcnow()),
    )
    if filters.user_id is not None:
        query = query.where(Memory.user_id == filters.user_id)
    if filters.thread_id is not None:
        query = query.where(Memory.thread_id == filters.thread_id)
    if filters.kinds:
        query = query.where(col(Memory.kind).in_(filters.kinds))
    if filters.created_after is not None:
        query = query.where(col(Memory.created_at) >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(col(Memory.created_at) < filters.created_before)
    for tag in filters.tags or []:
        query = query.where(
            col(Memory.id).in_(select(MemoryTag.memory_id).where(MemoryTag.tag == tag))
        )
    return query


def _vector_where(
    namespace_ids: Sequence[str], filters: MemoryFilters, statuses: Sequence[MemoryStatus]
) -> Where:
    clauses: list[Where] = [
        {"namespace_id": {"$in": list(namespace_ids)}},
        {"status": {"$in": [s.value for s in statuses]}},
    ]
    if filters.user_id is not None:
        clauses.append({"user_id": filters.user_id})
    if filters.thread_id is not None:
        clauses.append({"thread_id": filters.thread_id})
    if filters.kinds:
        clauses.append({"kind": {"$in": list(filters.kinds)}})
    if filters.created_after is not None:
        clauses.append({"created_at": {"$gte": filters.created_after.timestamp()}})
    if filters.created_before is not None:
        clauses.append({"created_at": {"$lt": filters.created_before.timestamp()}})
    return {"$and": clauses}


def _encode_cursor(memory: Memory) -> str:
    raw = json.dumps([memory.created_at.isoformat(), memory.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, memory_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), str(memory_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest(
            "cursor is not one this server issued.", code="invalid_cursor"
        ) from None
