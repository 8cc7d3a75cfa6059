"""Export and import: a namespace as JSONL (for machines, and back in) or Markdown (for people).

Tasks travel with the memories: the JSONL carries each one (parents first), the Markdown page a
TODO section, and an import restores them under the same rules as memories (identical: skipped;
different: a conflict), keeping the one-task-in-progress rule of the namespace it lands in.

The file format is in `export_format.py`, the Markdown page in `memory_md.py`. Import takes a JSONL
export into a namespace the caller may write, keeping ids, versions, states and timestamps. It is
idempotent: a record already stored identically is skipped, a different one is reported as a
conflict and left alone. Everything it stores lands in one transaction with its index entries and
its events, so a failure stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ..access import Action, authorize_namespace
from ..auth import Principal
from ..config import Settings
from ..db import Database
from ..embeddings import Embedder
from ..errors import Conflict
from ..models import Memory, MemoryLink, MemoryTag, Namespace, Task, utcnow
from ..schemas import MemoryStatus, TaskStatus
from ..tokens import count_tokens
from ..vectors import VectorStore
from .events import Actor, EventType, PendingEvent
from .export_format import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ImportFile,
    MemoryRecord,
    TaskRecord,
    memory_record,
    parse_import,
)
from .indexing import vector_record
from .memories import MESSAGE_KIND, MemoryService, content_hash
from .memory_md import render_markdown
from .tasks import task_record

PAGE_SIZE = 500
EMBED_BATCH = 256
# Fields that may differ between two copies of one memory without it being a different memory.
VOLATILE_FIELDS = frozenset({"namespace_id", "access_count", "last_accessed_at", "content_hash"})


@dataclass(frozen=True)
class ImportConflictItem:
    line: int
    record: str
    id: str
    reason: str


@dataclass(frozen=True)
class ImportOutcome:
    namespace_id: str
    created: int
    skipped: int
    links_created: int
    links_skipped: int
    conflicts: list[ImportConflictItem]
    tasks_created: int = 0
    tasks_skipped: int = 0


class TransferService:
    """Exports a namespace (JSONL or Markdown) and imports JSONL exports."""

    def __init__(
        self,
        db: Database,
        memories: MemoryService,
        vectors: VectorStore,
        embedder: Embedder,
        settings: Settings,
    ):
        self._db = db
        self._memories = memories
        self._vectors = vectors
        self._embedder = embedder
        self._settings = settings

    # ---- export ------------------------------------------------------------------------------

    def open_export(self, principal: Principal, namespace_id: str) -> Namespace:
        """The namespace to export, if the caller may read it (404 otherwise, before streaming)."""
        with self._db.read() as session:
            return authorize_namespace(session, principal, namespace_id, Action.READ)

    def jsonl(self, namespace: Namespace, *, include_embeddings: bool) -> Iterator[str]:
        """The JSONL export, one line at a time, read from one consistent snapshot."""
        header = {
            "type": "header",
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "namespace": {
                "id": namespace.id,
                "name": namespace.name,
                "description": namespace.description,
                "owner_agent_id": namespace.owner_agent_id,
                "created_at": namespace.created_at.isoformat(),
            },
            "embedding_model": self._embedder.name,
            "embedding_dimension": self._embedder.dimension,
            "include_embeddings": include_embeddings,
            "exported_at": utcnow().isoformat(),
        }
        yield _line(header)
        memories = links = tasks = 0
        exported: set[str] = set()
        with self._db.snapshot() as session:
            for page in _memory_pages(session, namespace.id):
                vectors = (
                    self._vectors.embeddings([m.id for m in page], [namespace.id])
                    if include_embeddings
                    else {}
                )
                for memory in page:
                    item: dict[str, Any] = {"type": "memory", "memory": memory_record(memory)}
                    if include_embeddings and memory.id in vectors:
                        item["embedding"] = [float(x) for x in vectors[memory.id]]
                    exported.add(memory.id)
                    memories += 1
                    yield _line(item)
            for link in _links(session, namespace.id):
                if link.summary_id in exported and link.source_id in exported:
                    links += 1
                    yield _line(
                        {"type": "link", "summary_id": link.summary_id, "source_id": link.source_id}
                    )
            for task in _tasks(session, namespace.id):
                tasks += 1
                yield _line({"type": "task", "task": task_record(task)})
        yield _line({"type": "end", "memories": memories, "links": links, "tasks": tasks})

    def markdown(self, namespace: Namespace) -> Iterator[str]:
        """A readable `memory.md`: facts by key (with their history), memories by date, summaries
        with their sources."""
        with self._db.snapshot() as session:
            rows = [m for page in _memory_pages(session, namespace.id) for m in page]
            sources: dict[str, list[str]] = {}
            for link in _links(session, namespace.id):
                sources.setdefault(link.summary_id, []).append(link.source_id)
            tasks = _tasks(session, namespace.id)
        yield from render_markdown(namespace, rows, sources, utcnow(), tasks)

    # ---- import ------------------------------------------------------------------------------

    def import_jsonl(self, principal: Principal, namespace_id: str, body: bytes) -> ImportOutcome:
        """Restore a JSONL export into `namespace_id` (which the caller may write), idempotently."""
        with self._db.read() as session:
            authorize_namespace(session, principal, namespace_id, Action.WRITE)
        parsed = parse_import(
            body,
            max_content_chars=self._settings.max_content_chars,
            metadata_limits=self._settings.metadata_limits,
        )
        with self._db.read() as session:
            existing = _existing(session, [m.record.id for m in parsed.memories])
        embeddings = self._embeddings(parsed, {m.record.id for m in parsed.memories} - existing)
        try:
            with self._memories.indexed_transaction(Actor.of(principal)) as (session, ops):
                authorize_namespace(session, principal, namespace_id, Action.WRITE)
                outcome, new = self._plan(session, namespace_id, parsed)
                session.add_all(memory for memory, _ in new)
                session.add_all(
                    MemoryTag(memory_id=memory.id, tag=tag)
                    for memory, _ in new
                    for tag in memory.tags
                )
                session.flush()
                links_created, links_skipped = self._link(session, namespace_id, parsed, outcome)
                new_tasks = self._plan_tasks(session, namespace_id, parsed, outcome)
                session.add_all(new_tasks)
                session.flush()
                ops.events.extend(
                    PendingEvent(
                        EventType.TASK_CREATED,
                        namespace_id,
                        details={
                            "status": task.status,
                            "version": task.version,
                            "agent_id": task.agent_id,
                            "thread_id": task.thread_id,
                            "via": "import",
                        },
                        task_id=task.id,
                    )
                    for task in new_tasks
                )
                for memory, _ in new:
                    embedding = (
                        embeddings.get(memory.id) or self._embedder.embed([memory.content])[0]
                    )
                    ops.upserts.append(vector_record(memory, embedding))
                    ops.events.append(
                        PendingEvent(
                            EventType.CREATED,
                            namespace_id,
                            memory.id,
                            {
                                "kind": memory.kind,
                                "version": memory.version,
                                "status": str(memory.status),
                                **({"key": memory.key} if memory.key else {}),
                                "via": "import",
                            },
                        )
                    )
        except IntegrityError:
            raise Conflict(
                "The import collided with memories written at the same time; nothing was stored. "
                "Retry it.",
                code="import_conflict",
            ) from None
        return ImportOutcome(
            namespace_id=namespace_id,
            created=len(new),
            skipped=outcome.skipped,
            links_created=links_created,
            links_skipped=links_skipped,
            conflicts=outcome.conflicts,
            tasks_created=len(new_tasks),
            tasks_skipped=outcome.tasks_skipped,
        )

    def _embeddings(self, parsed: ImportFile, wanted: set[str]) -> dict[str, list[float]]:
        """Embeddings of the memories to store: the file's own when made by this server's model,
        else computed now."""
        same_model = parsed.embedding_model == self._embedder.name
        found: dict[str, list[float]] = {}
        missing: list[MemoryRecord] = []
        for item in parsed.memories:
            if item.record.id not in wanted:
                continue
            given = item.embedding
            if same_model and given is not None and len(given) == self._embedder.dimension:
                found[item.record.id] = [float(x) for x in given]
            else:
                missing.append(item.record)
        for start in range(0, len(missing), EMBED_BATCH):
            chunk = missing[start : start + EMBED_BATCH]
            vectors = self._embedder.embed([r.content for r in chunk])
            found.update((r.id, v) for r, v in zip(chunk, vectors, strict=True))
        return found

    def _plan(
        self, session: Session, namespace_id: str, parsed: ImportFile
    ) -> tuple[_Plan, list[tuple[Memory, int]]]:
        """Sort the file's memories into new, already there (skipped) and conflicting."""
        plan = _Plan()
        ids = [m.record.id for m in parsed.memories]
        stored = {
            m.id: m
            for chunk in _chunks(ids)
            for m in session.exec(select(Memory).where(col(Memory.id).in_(chunk))).all()
        }
        candidates: list[tuple[Memory, int]] = []
        for item in parsed.memories:
            memory = self._to_memory(item.record, namespace_id)
            current = stored.get(memory.id)
            if current is None:
                candidates.append((memory, item.line))
            elif current.namespace_id != namespace_id:
                plan.conflict(
                    item.line, "memory", memory.id, "the id is taken in another namespace"
                )
            elif _same(current, memory):
                plan.skipped += 1
                plan.present.add(memory.id)
            else:
                plan.conflict(
                    item.line,
                    "memory",
                    memory.id,
                    f"a different version of this memory is stored (version {current.version})",
                )
        new: list[tuple[Memory, int]] = []
        for memory, line in candidates:
            reason = _slot_taken(session, memory)
            if reason is not None:
                plan.conflict(line, "memory", memory.id, reason)
            else:
                new.append((memory, line))
                plan.present.add(memory.id)
        return plan, new

    def _to_memory(self, r: MemoryRecord, namespace_id: str) -> Memory:
        return Memory(
            id=r.id,
            namespace_id=namespace_id,
            author_agent_id=r.author_agent_id,
            user_id=r.user_id,
            thread_id=r.thread_id,
            kind=r.kind,
            role=r.role.value if r.role else None,
            content=r.content,
            meta=r.metadata,
            tags=list(dict.fromkeys(r.tags)),
            importance=r.importance,
            key=r.key,
            created_at=r.created_at,
            updated_at=r.updated_at or r.created_at,
            last_accessed_at=r.last_accessed_at,
            access_count=r.access_count,
            token_count=(
                r.token_count
                if r.token_count is not None
                else count_tokens(r.content, self._settings.default_token_model)
            ),
            content_hash=content_hash(r.content),
            version=r.version,
            status=r.status.value,
            expires_at=r.expires_at,
            superseded_by=r.superseded_by,
            level=r.level,
            covers_from=r.covers_from,
            covers_to=r.covers_to,
        )

    def _plan_tasks(
        self, session: Session, namespace_id: str, parsed: ImportFile, plan: _Plan
    ) -> list[Task]:
        """The file's tasks to store: not those already there identically (skipped), nor those
        that differ from a stored one, whose parent is missing, or that would be a second task in
        progress in their lane (conflicts). File order: parents come before their subtasks."""
        ids = [t.record.id for t in parsed.tasks]
        stored = {
            t.id: t
            for chunk in _chunks(ids)
            for t in session.exec(select(Task).where(col(Task.id).in_(chunk))).all()
        }
        present: set[str] = set()
        new: list[Task] = []
        for item in parsed.tasks:
            task = _to_task(item.record, namespace_id)
            current = stored.get(task.id)
            reason = None
            if current is not None:
                if current.namespace_id != namespace_id:
                    reason = "the id is taken in another namespace"
                elif _same_task(current, task):
                    plan.tasks_skipped += 1
                    present.add(task.id)
                    continue
                else:
                    reason = (
                        f"a different version of this task is stored (version {current.version})"
                    )
            elif task.parent_task_id is not None and not _parent_present(
                session, namespace_id, task.parent_task_id, present
            ):
                reason = "its parent task is neither in the file before it nor in the namespace"
            elif task.status == TaskStatus.IN_PROGRESS and (holder := _running(session, task, new)):
                reason = f"task {holder} is already in progress for its agent and thread"
            if reason is not None:
                plan.conflict(item.line, "task", task.id, reason)
                continue
            new.append(task)
            present.add(task.id)
        return new

    def _link(
        self, session: Session, namespace_id: str, parsed: ImportFile, plan: _Plan
    ) -> tuple[int, int]:
        """Store the file's provenance links between memories now in the namespace."""
        wanted = list(dict.fromkeys((s, t) for _, s, t in parsed.links))
        stored: set[tuple[str, str]] = set()
        summaries = list({s for s, _ in wanted})
        for chunk in _chunks(summaries):
            rows = session.exec(
                select(MemoryLink).where(col(MemoryLink.summary_id).in_(chunk))
            ).all()
            stored.update((r.summary_id, r.source_id) for r in rows)
        ends = {i for pair in wanted for i in pair}
        present = set(plan.present)
        for chunk in _chunks(list(ends - present)):
            present.update(
                session.exec(
                    select(Memory.id).where(
                        col(Memory.id).in_(chunk), col(Memory.namespace_id) == namespace_id
                    )
                ).all()
            )
        created = skipped = 0
        lines = {(s, t): line for line, s, t in parsed.links}
        for pair in wanted:
            if pair[0] in present and pair[1] in present:
                if pair in stored:
                    skipped += 1
                else:
                    session.add(MemoryLink(summary_id=pair[0], source_id=pair[1]))
                    created += 1
            else:
                plan.conflict(
                    lines[pair],
                    "link",
                    f"{pair[0]}>{pair[1]}",
                    "a linked memory is neither in the file nor in the namespace",
                )
        session.flush()
        return created, skipped


def _to_task(r: TaskRecord, namespace_id: str) -> Task:
    return Task(
        id=r.id,
        namespace_id=namespace_id,
        agent_id=r.agent_id,
        author_agent_id=r.author_agent_id,
        user_id=r.user_id,
        thread_id=r.thread_id,
        parent_task_id=r.parent_task_id,
        title=r.title,
        description=r.description,
        context=r.context,
        priority=r.priority,
        status=r.status.value,
        result=r.result,
        created_at=r.created_at,
        updated_at=r.updated_at or r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        version=r.version,
    )


def _same_task(stored: Task, imported: Task) -> bool:
    left, right = task_record(stored), task_record(imported)
    left.pop("namespace_id")
    right.pop("namespace_id")
    return left == right


def _parent_present(session: Session, namespace_id: str, parent_id: str, present: set[str]) -> bool:
    if parent_id in present:
        return True
    parent = session.get(Task, parent_id)
    return parent is not None and parent.namespace_id == namespace_id


def _running(session: Session, task: Task, new: Sequence[Task]) -> str | None:
    """The task in progress in `task`'s lane of the namespace (stored, or earlier in the file)."""
    for other in new:
        if other.status == TaskStatus.IN_PROGRESS and (other.agent_id, other.thread_id) == (
            task.agent_id,
            task.thread_id,
        ):
            return other.id
    same_thread = (
        col(Task.thread_id).is_(None)
        if task.thread_id is None
        else col(Task.thread_id) == task.thread_id
    )
    return session.exec(
        select(Task.id).where(
            col(Task.namespace_id) == task.namespace_id,
            col(Task.agent_id) == task.agent_id,
            same_thread,
            col(Task.status) == TaskStatus.IN_PROGRESS.value,
        )
    ).first()


@dataclass
class _Plan:
    skipped: int = 0
    tasks_skipped: int = 0
    present: set[str] = field(default_factory=set)
    conflicts: list[ImportConflictItem] = field(default_factory=list)

    def conflict(self, line: int, record: str, id_: str, reason: str) -> None:
        self.conflicts.append(ImportConflictItem(line, record, id_, reason))


def _same(stored: Memory, imported: Memory) -> bool:
    left = {k: v for k, v in memory_record(stored).items() if k not in VOLATILE_FIELDS}
    right = {k: v for k, v in memory_record(imported).items() if k not in VOLATILE_FIELDS}
    return left == right


def _slot_taken(session: Session, memory: Memory) -> str | None:
    """Why an active memory cannot be stored next to what the namespace holds, if it cannot."""
    if memory.status != MemoryStatus.ACTIVE:
        return None
    user = memory.user_id
    same_user = col(Memory.user_id).is_(None) if user is None else col(Memory.user_id) == user
    scope = [
        col(Memory.namespace_id) == memory.namespace_id,
        col(Memory.status) == MemoryStatus.ACTIVE.value,
        same_user,
    ]
    if memory.key is not None:
        taken = session.exec(select(Memory.id).where(*scope, col(Memory.key) == memory.key)).first()
        if taken is not None:
            return f"key {memory.key!r} already has an active value ({taken})"
    if memory.kind != MESSAGE_KIND:
        same_key = (
            col(Memory.key).is_(None) if memory.key is None else col(Memory.key) == memory.key
        )
        taken = session.exec(
            select(Memory.id).where(
                *scope,
                col(Memory.kind) == memory.kind,
                same_key,
                col(Memory.content_hash) == memory.content_hash,
            )
        ).first()
        if taken is not None:
            return f"the same {memory.kind} is already active ({taken})"
    return None


def _existing(session: Session, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(list(ids)):
        found.update(session.exec(select(Memory.id).where(col(Memory.id).in_(chunk))).all())
    return found


def _chunks(items: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _line(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n"


def _memory_pages(session: Session, namespace_id: str) -> Iterator[list[Memory]]:
    """The namespace's memories in every state, oldest first, a page at a time (expired left
    out: they are gone for every read)."""
    now = datetime.now(UTC)
    last: tuple[datetime, str] | None = None
    while True:
        query = select(Memory).where(
            col(Memory.namespace_id) == namespace_id,
            or_(col(Memory.expires_at).is_(None), col(Memory.expires_at) > now),
        )
        if last is not None:
            query = query.where(
                or_(
                    col(Memory.created_at) > last[0],
                    and_(col(Memory.created_at) == last[0], col(Memory.id) > last[1]),
                )
            )
        page = list(
            session.exec(
                query.order_by(col(Memory.created_at), col(Memory.id)).limit(PAGE_SIZE)
            ).all()
        )
        if page:
            yield page
        if len(page) < PAGE_SIZE:
            return
        last = (page[-1].created_at, page[-1].id)


def _tasks(session: Session, namespace_id: str) -> list[Task]:
    """The namespace's tasks, oldest first: a parent always before its subtasks."""
    return list(
        session.exec(
            select(Task)
            .where(col(Task.namespace_id) == namespace_id)
            .order_by(col(Task.created_at), col(Task.id))
        ).all()
    )


def _links(session: Session, namespace_id: str) -> list[MemoryLink]:
    return list(
        session.exec(
            select(MemoryLink)
            .join(Memory, col(Memory.id) == col(MemoryLink.summary_id))
            .where(col(Memory.namespace_id) == namespace_id)
            .order_by(col(MemoryLink.summary_id), col(MemoryLink.source_id))
        ).all()
    )
