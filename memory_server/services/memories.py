"""Memories: write (single, batch, keyed, deduplicated), read, list, update, delete, search.

Every write lands in SQL and in the vector index together: the SQL transaction stays open while the
index is written, and commits only once the index has the records. A failure anywhere rolls back
SQL and removes what was added to the index, so nothing is left half-written.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

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
from ..filters import memory_conditions
from ..models import Agent, Memory, MemoryDeletion, MemoryLink, MemoryTag, new_id, utcnow
from ..schemas import (
    MemoryCreate,
    MemoryFilters,
    MemoryStatus,
    MemoryUpdate,
)
from ..stored_embeddings import delete_embeddings, store_embeddings
from ..tokens import count_tokens
from ..vectors import Scalar, VectorRecord, VectorStore
from .events import SYSTEM, Actor, EventType, PendingEvent, append_events
from .idempotency import record_response
from .indexing import vector_metadata, vector_record

log = logging.getLogger(__name__)

MESSAGE_KIND = "message"
WRITE_ATTEMPTS = 6


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
class DeleteOutcome:
    tombstone: MemoryDeletion
    also_deleted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SummaryDraft:
    """A summary ready to store: its text and embedding, and its sources at the versions read."""

    content: str
    embedding: list[float]
    source_versions: dict[str, int]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvenanceNode:
    memory: Memory
    sources: list[ProvenanceNode]
    hidden_sources: int = 0


@dataclass(frozen=True)
class _Prepared:
    item: MemoryCreate
    namespace_id: str
    content_hash: str

    @property
    def dedup_key(self) -> tuple[str, ...]:
        """Mirrors the unique index: one active copy per namespace, user, kind, key and text."""
        item = self.item
        return (self.namespace_id, item.user_id or "", item.kind, item.key or "", self.content_hash)

    @property
    def keyed_slot(self) -> tuple[str, str, str] | None:
        if self.item.key is None:
            return None
        return (self.namespace_id, self.item.user_id or "", self.item.key)


def _dedup_key_of(memory: Memory) -> tuple[str, ...]:
    return (
        memory.namespace_id,
        memory.user_id or "",
        memory.kind,
        memory.key or "",
        memory.content_hash,
    )


class MemoryService:
    """All work on memories; routes and jobs call these methods and nothing below them."""

    def __init__(self, db: Database, vectors: VectorStore, embedder: Embedder, settings: Settings):
        self._db = db
        self._vectors = vectors
        self._embedder = embedder
        self._settings = settings

    # ---- writes ------------------------------------------------------------------------------

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
                # A concurrent writer stored the same content first; the next attempt sees it
                # and de-duplicates against it.
                log.info("write raced a concurrent writer (attempt %d)", attempt)
                time.sleep(random.uniform(0, 0.01 * attempt))
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
        metadata_limits = self._settings.metadata_limits
        for index, item in enumerate(items):
            if len(item.content) > limit:
                raise PayloadTooLarge(
                    f"Memory {index} has {len(item.content)} characters; the limit is {limit}.",
                    code="content_too_large",
                )
            metadata_limits.check(item.metadata, f"Memory {index}'s")

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
            known = self._active_duplicates(session, prepared)
        texts: dict[str, str] = {}
        for p in prepared:
            if p.item.kind == MESSAGE_KIND or p.dedup_key not in known:
                texts.setdefault(p.content_hash, p.item.content)
        vectors = self._embedder.embed(list(texts.values()))
        return dict(zip(texts.keys(), vectors, strict=True))

    def _write(
        self,
        principal: Principal,
        prepared: Sequence[_Prepared],
        embeddings: dict[str, list[float]],
    ) -> list[WriteOutcome]:
        """Insert the batch in one flush: duplicates and current keyed values looked up once."""
        now = utcnow()
        outcomes: list[WriteOutcome] = []
        new_embeddings: list[tuple[Memory, list[float]]] = []
        with self._indexed_transaction(Actor.of(principal)) as (session, ops):
            # permission again, inside the transaction: a grant revoked since `_prepare` counts
            for namespace_id in {p.namespace_id for p in prepared}:
                authorize_namespace(session, principal, namespace_id, Action.WRITE)
            self._lock_keyed_slots(session, prepared)
            duplicates = self._active_duplicates(session, prepared)
            current = self._active_keyed(session, prepared)
            for p in prepared:
                item = p.item
                if item.kind != MESSAGE_KIND and p.dedup_key in duplicates:
                    outcomes.append(WriteOutcome(duplicates[p.dedup_key], created=False))
                    continue
                memory = self._new_memory(principal, p, now)
                session.add(memory)
                session.add_all(MemoryTag(memory_id=memory.id, tag=tag) for tag in item.tags)
                previous = current.get(p.keyed_slot) if p.keyed_slot else None
                if previous is not None:
                    previous.status = MemoryStatus.SUPERSEDED
                    previous.superseded_by = memory.id
                    previous.version += 1
                    previous.updated_at = now
                    session.add(previous)
                    duplicates.pop(_dedup_key_of(previous), None)
                    ops.metadata_updates.append((previous.id, vector_metadata(previous)))
                    ops.events.append(
                        _event(
                            EventType.SUPERSEDED,
                            previous,
                            superseded_by=memory.id,
                            key=previous.key,
                        )
                    )
                ops.events.append(_event(EventType.CREATED, memory, key=memory.key))
                if p.keyed_slot:
                    current[p.keyed_slot] = memory
                if item.kind != MESSAGE_KIND:
                    duplicates[p.dedup_key] = memory
                embedding = (
                    embeddings.get(p.content_hash) or self._embedder.embed([item.content])[0]
                )
                new_embeddings.append((memory, embedding))
                outcomes.append(
                    WriteOutcome(
                        memory, created=True, superseded_id=previous.id if previous else None
                    )
                )
            # One flush: SQLAlchemy emits the UPDATEs (superseded values) before the INSERTs, so
            # the one-active-value-per-key index never sees two active values.
            session.flush()
            # built after the loop, so a value superseded within this batch is indexed as such
            ops.upserts.extend(vector_record(m, e) for m, e in new_embeddings)
            record_response(session, outcomes)
        return outcomes

    def _lock_keyed_slots(self, session: Session, prepared: Sequence[_Prepared]) -> None:
        """On PostgreSQL, writers of one keyed fact queue on a transaction lock instead of racing.

        (SQLite writers are serialised by `Database.write` already.) Locks are taken in sorted
        order, so two batches touching the same keys cannot deadlock.
        """
        if self._db.is_sqlite:
            return
        slots = sorted({p.keyed_slot for p in prepared if p.keyed_slot is not None})
        for slot in slots:
            digest = hashlib.sha256("\x1f".join(slot).encode()).digest()
            lock_id = int.from_bytes(digest[:8], "big", signed=True)
            session.connection().execute(
                text("SELECT pg_advisory_xact_lock(:lock_id)"), {"lock_id": lock_id}
            )

    def _new_memory(self, principal: Principal, p: _Prepared, now: datetime) -> Memory:
        item = p.item
        return Memory(
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

    def _active_duplicates(
        self, session: Session, prepared: Sequence[_Prepared]
    ) -> dict[tuple[str, ...], Memory]:
        """Active memories that a batch item would duplicate, by de-duplication key."""
        wanted = [p for p in prepared if p.item.kind != MESSAGE_KIND]
        if not wanted:
            return {}
        rows = session.exec(
            select(Memory).where(
                col(Memory.namespace_id).in_({p.namespace_id for p in wanted}),
                col(Memory.content_hash).in_({p.content_hash for p in wanted}),
                Memory.status == MemoryStatus.ACTIVE,
                Memory.kind != MESSAGE_KIND,
            )
        ).all()
        return {_dedup_key_of(m): m for m in rows}

    def _active_keyed(
        self, session: Session, prepared: Sequence[_Prepared]
    ) -> dict[tuple[str, str, str], Memory]:
        """The current value of every key the batch writes, by (namespace, user, key)."""
        keyed = [p for p in prepared if p.item.key is not None]
        if not keyed:
            return {}
        rows = session.exec(
            select(Memory).where(
                col(Memory.namespace_id).in_({p.namespace_id for p in keyed}),
                col(Memory.key).in_({p.item.key for p in keyed}),
                Memory.status == MemoryStatus.ACTIVE,
            )
        ).all()
        return {(m.namespace_id, m.user_id or "", m.key or ""): m for m in rows}

    def indexed_transaction(
        self, actor: Actor = SYSTEM
    ) -> contextlib.AbstractContextManager[tuple[Session, IndexOps]]:
        """A write transaction whose index changes and events land with it, or not at all."""
        return self._indexed_transaction(actor)

    @contextmanager
    def _indexed_transaction(self, actor: Actor = SYSTEM) -> Iterator[tuple[Session, IndexOps]]:
        """A SQL transaction whose index changes are applied, and events appended, just before it
        commits."""
        ops = IndexOps()
        applied = False
        try:
            with self._db.write() as session:
                yield session, ops
                session.flush()
                store_embeddings(session, ops.upserts, self._embedder.name)
                self._apply_index_ops(ops)
                applied = True
                append_events(session, actor, ops.events)  # last: see services/events.py
        except BaseException:
            if applied:
                self._undo_index_upserts(ops)
            raise

    def _apply_index_ops(self, ops: IndexOps) -> None:
        try:
            self._vectors.delete(ops.deletes, sorted(ops.delete_namespaces) or None)
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

    def _undo_index_upserts(self, ops: IndexOps) -> None:
        try:
            namespaces = sorted({str(r.metadata["namespace_id"]) for r in ops.upserts})
            self._vectors.delete([r.id for r in ops.upserts], namespaces)
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
            query = select(Memory).where(
                *memory_conditions(namespace_ids, filters, filters.statuses)
            )
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
        if change.metadata is not None:
            self._settings.metadata_limits.check(change.metadata, "The")
        with self._db.read() as session:
            authorize_memory(session, principal, memory_id, Action.WRITE)
        embedding = self._embedder.embed([change.content])[0] if change.content else None
        try:
            with self._indexed_transaction(Actor.of(principal)) as (session, ops):
                memory = authorize_memory(session, principal, memory_id, Action.WRITE)
                previous_status = memory.status
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
                archived = (
                    previous_status != MemoryStatus.ARCHIVED
                    and memory.status == MemoryStatus.ARCHIVED
                )
                changed = sorted(
                    "metadata" if name == "meta" else name
                    for name in values
                    if name not in ("version", "updated_at", "content_hash", "token_count")
                )
                ops.events.append(
                    _event(
                        EventType.ARCHIVED if archived else EventType.UPDATED,
                        memory,
                        fields=changed,
                    )
                )
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

    def delete(self, principal: Principal, memory_id: str) -> DeleteOutcome:
        """Remove a memory's content from SQL and the index for good; keep that it was deleted.

        Summaries condensed from it (and summaries of those) are deleted with it, since they may
        repeat its content; `also_deleted` lists them.
        """
        with self._indexed_transaction(Actor.of(principal)) as (session, ops):
            memory = authorize_memory(session, principal, memory_id, Action.WRITE)
            derived = self._derived_summaries(session, [memory_id])
            tombstones = self._delete_rows(session, [memory, *derived], principal.agent_id)
            ops.deletes.extend(t.memory_id for t in tombstones)
            ops.events.extend(_deleted_events([memory], derived, "deleted"))
            ops.delete_namespaces.update(m.namespace_id for m in [memory, *derived])
        return DeleteOutcome(tombstones[0], [m.id for m in derived])

    def forget_user(
        self, principal: Principal, namespace_id: str, user_id: str
    ) -> list[MemoryDeletion]:
        """Delete every memory about `user_id` in a namespace, in any status, with its summaries."""
        with self._indexed_transaction(Actor.of(principal)) as (session, ops):
            authorize_namespace(session, principal, namespace_id, Action.WRITE)
            memories = list(
                session.exec(
                    select(Memory).where(
                        col(Memory.namespace_id) == namespace_id, col(Memory.user_id) == user_id
                    )
                ).all()
            )
            known = {m.id for m in memories}
            derived = [
                m for m in self._derived_summaries(session, list(known)) if m.id not in known
            ]
            own = list(memories)
            memories += derived
            tombstones = self._delete_rows(session, memories, principal.agent_id)
            ops.deletes.extend(t.memory_id for t in tombstones)
            ops.events.extend(_deleted_events(own, derived, "forget_user"))
            ops.delete_namespaces.add(namespace_id)
        return tombstones

    def _derived_summaries(self, session: Session, ids: Sequence[str]) -> list[Memory]:
        """Every summary built, directly or through other summaries, from the memories `ids`."""
        seen: set[str] = set(ids)
        found: list[str] = []
        frontier = list(ids)
        while frontier:
            parents = session.exec(
                select(MemoryLink.summary_id).where(col(MemoryLink.source_id).in_(frontier))
            ).all()
            frontier = [p for p in dict.fromkeys(parents) if p not in seen]
            seen.update(frontier)
            found.extend(frontier)
        if not found:
            return []
        return list(session.exec(select(Memory).where(col(Memory.id).in_(found))).all())

    # ---- summaries ---------------------------------------------------------------------------

    def store_summary(self, draft: SummaryDraft, actor: Actor = SYSTEM) -> Memory:
        """Store a summary, link it to its sources and archive them, all in one transaction.

        Raises Conflict, storing nothing, when any source is gone, no longer active, or changed
        since it was read (`draft.source_versions`), or when an identical summary is already
        active in the same scope: the group is then left for a later run.
        """
        now = utcnow()
        ids = list(draft.source_versions)
        try:
            with self._indexed_transaction(actor) as (session, ops):
                sources = session.exec(select(Memory).where(col(Memory.id).in_(ids))).all()
                if len(sources) != len(ids) or any(
                    m.status != MemoryStatus.ACTIVE or m.version != draft.source_versions[m.id]
                    for m in sources
                ):
                    raise _SourcesChanged
                if len({(m.namespace_id, m.user_id, m.thread_id) for m in sources}) != 1:
                    raise InvalidRequest(
                        "A summary's sources must share one namespace, user and thread.",
                        code="mixed_scopes",
                    )
                first = min(sources, key=lambda m: m.created_at)
                tags = list(dict.fromkeys(t for m in sources for t in m.tags))[:32]
                summary = Memory(
                    id=new_id("mem"),
                    namespace_id=first.namespace_id,
                    user_id=first.user_id,
                    thread_id=first.thread_id,
                    kind="summary",
                    content=draft.content,
                    meta=draft.metadata,
                    tags=tags,
                    importance=max(m.importance for m in sources),
                    created_at=max(m.covers_to or m.created_at for m in sources),
                    updated_at=now,
                    token_count=count_tokens(draft.content, self._settings.default_token_model),
                    content_hash=content_hash(draft.content),
                    level=1 + max(m.level for m in sources),
                    covers_from=min(m.covers_from or m.created_at for m in sources),
                    covers_to=max(m.covers_to or m.created_at for m in sources),
                )
                # Archive first: a summary may repeat a source summary word for word, and only
                # one active copy of a text may exist per scope.
                archived = session.exec(
                    update(Memory)
                    .where(
                        col(Memory.id).in_(ids),
                        col(Memory.status) == MemoryStatus.ACTIVE,
                        or_(
                            *(
                                and_(col(Memory.id) == i, col(Memory.version) == v)
                                for i, v in draft.source_versions.items()
                            )
                        ),
                    )
                    .values(
                        status=MemoryStatus.ARCHIVED.value,
                        version=col(Memory.version) + 1,
                        updated_at=now,
                    )
                )
                if archived.rowcount != len(ids):
                    raise _SourcesChanged
                session.add(summary)
                session.add_all(MemoryTag(memory_id=summary.id, tag=t) for t in tags)
                session.add_all(MemoryLink(summary_id=summary.id, source_id=i) for i in ids)
                session.flush()
                ops.events.append(
                    _event(
                        EventType.SUMMARIZED,
                        summary,
                        level=summary.level,
                        source_count=len(ids),
                        run_id=draft.metadata.get("run_id"),
                    )
                )
                for source in sources:
                    session.refresh(source)
                    ops.metadata_updates.append((source.id, vector_metadata(source)))
                    ops.events.append(_event(EventType.ARCHIVED, source, summary_id=summary.id))
                ops.upserts.append(vector_record(summary, draft.embedding))
        except _SourcesChanged:
            raise Conflict(
                "A source changed or was deleted since it was read.", code="sources_changed"
            ) from None
        except IntegrityError:
            raise Conflict(
                "An identical summary is already active in this scope.", code="duplicate_summary"
            ) from None
        return summary

    def provenance(self, principal: Principal, memory_id: str) -> ProvenanceNode:
        """A memory and, for a summary, the tree of entries it was condensed from.

        Only what the caller may read is shown; anything else is counted in `hidden_sources`.
        """
        with self._db.read() as session:
            root = authorize_memory(session, principal, memory_id, Action.READ)
            readable = set(scope_namespace_ids(session, principal, None))
            links: dict[str, list[str]] = {}
            frontier = [root.id]
            memories: dict[str, Memory] = {root.id: root}
            while frontier:
                rows = session.exec(
                    select(MemoryLink).where(col(MemoryLink.summary_id).in_(frontier))
                ).all()
                for link in rows:
                    links.setdefault(link.summary_id, []).append(link.source_id)
                wanted = [r.source_id for r in rows if r.source_id not in memories]
                found = session.exec(select(Memory).where(col(Memory.id).in_(wanted))).all()
                memories.update((m.id, m) for m in found)
                frontier = [m.id for m in found if m.kind == "summary"]

        def node(memory: Memory) -> ProvenanceNode:
            children = [memories[i] for i in links.get(memory.id, []) if i in memories]
            visible = sorted(
                (c for c in children if c.namespace_id in readable),
                key=lambda m: (m.created_at, m.id),
            )
            return ProvenanceNode(
                memory, [node(c) for c in visible], len(links.get(memory.id, [])) - len(visible)
            )

        return node(root)

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
                derived = self._derived_summaries(session, [m.id for m in expired])
                derived = [m for m in derived if m not in expired]
                self._delete_rows(session, [*expired, *derived], None)
                ops.deletes.extend(m.id for m in [*expired, *derived])
                ops.events.extend(_deleted_events(expired, derived, "expired"))
                ops.delete_namespaces.update(m.namespace_id for m in [*expired, *derived])
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
        delete_embeddings(session, ids)
        session.exec(
            delete(MemoryLink).where(
                or_(col(MemoryLink.summary_id).in_(ids), col(MemoryLink.source_id).in_(ids))
            )
        )
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


class _SourcesChanged(Exception):
    """A summary's source changed between reading and archiving it; the transaction rolls back."""


@dataclass
class IndexOps:
    """Index changes and events collected during a write transaction, applied just before it
    commits."""

    upserts: list[VectorRecord] = field(default_factory=list)
    metadata_updates: list[tuple[str, dict[str, Scalar]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    delete_namespaces: set[str] = field(default_factory=set)  # where the deleted ids live
    events: list[PendingEvent] = field(default_factory=list)


def _event(kind: EventType, memory: Memory, **details: Any) -> PendingEvent:
    """An event about `memory`: its kind, version and status, plus `details`; never its content."""
    base: dict[str, Any] = {
        "kind": memory.kind,
        "version": memory.version,
        "status": str(memory.status),
    }
    base.update({name: value for name, value in details.items() if value is not None})
    return PendingEvent(kind, memory.namespace_id, memory.id, base)


def _deleted_events(
    memories: Sequence[Memory], derived: Sequence[Memory], reason: str
) -> list[PendingEvent]:
    """`deleted` events: `reason` for the memories themselves, `derived` for their summaries."""
    return [_event(EventType.DELETED, m, reason=reason) for m in memories] + [
        _event(EventType.DELETED, m, reason="derived") for m in derived
    ]


def _expired(memory: Memory) -> bool:
    return memory.expires_at is not None and memory.expires_at <= datetime.now(UTC)


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
