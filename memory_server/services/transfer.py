"""Export and import: a namespace as JSONL (for machines, and back in) or Markdown (for people).

The JSONL export is one record a line: a header (format, version, namespace, embedding model, time),
then every memory in every state (active, archived, superseded keyed-fact history, summaries with
their level and span), then every provenance link, then a trailer with the counts. Import takes the
same file into a namespace the caller may write, keeping ids, versions, states and timestamps. It is
idempotent: a record already stored identically is skipped, a different one is reported as a
conflict and left alone. Everything it stores lands in one transaction with its index entries and
its events, so a failure stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ..access import Action, authorize_namespace
from ..auth import Principal
from ..config import Settings
from ..db import Database
from ..embeddings import Embedder
from ..errors import BadRequest, Conflict
from ..models import Memory, MemoryLink, MemoryTag, Namespace, utcnow
from ..schemas import (
    Kind,
    MemoryKey,
    MemoryPublic,
    MemoryStatus,
    Role,
    ScopeId,
    Tag,
)
from ..tokens import count_tokens
from ..vectors import VectorStore
from .events import Actor, EventType, PendingEvent
from .indexing import vector_record
from .memories import MESSAGE_KIND, MemoryService, content_hash

EXPORT_FORMAT = "memory-server/export"
EXPORT_VERSION = 1
PAGE_SIZE = 500
EMBED_BATCH = 256
# Fields that may differ between two copies of one memory without it being a different memory.
VOLATILE_FIELDS = frozenset({"namespace_id", "access_count", "last_accessed_at", "content_hash"})


def memory_record(memory: Memory) -> dict[str, Any]:
    """A memory as the export writes it: the API's memory shape, JSON-ready."""
    public = MemoryPublic(**memory.model_dump(exclude={"meta"}), metadata=memory.meta)
    return public.model_dump(mode="json")


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class MemoryRecord(BaseModel):
    """One memory of an import file. `namespace_id` and `content_hash` are ignored (re-derived)."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
    author_agent_id: str | None = Field(default=None, max_length=40)
    user_id: ScopeId | None = None
    thread_id: ScopeId | None = None
    kind: Kind = "note"
    role: Role | None = None
    content: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    key: MemoryKey | None = None
    created_at: datetime
    updated_at: datetime | None = None
    last_accessed_at: datetime | None = None
    access_count: int = Field(default=0, ge=0)
    token_count: int | None = Field(default=None, ge=0)
    version: int = Field(default=1, ge=1)
    status: MemoryStatus = MemoryStatus.ACTIVE
    expires_at: datetime | None = None
    superseded_by: str | None = Field(default=None, max_length=40)
    level: int = Field(default=0, ge=0)
    covers_from: datetime | None = None
    covers_to: datetime | None = None

    _aware_times = field_validator(
        "created_at", "updated_at", "last_accessed_at", "expires_at", "covers_from", "covers_to"
    )(_aware)


class _Header(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: str
    version: int
    embedding_model: str | None = None


class _Link(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary_id: str = Field(min_length=1, max_length=40)
    source_id: str = Field(min_length=1, max_length=40)


class _Trailer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    memories: int
    links: int


@dataclass(frozen=True)
class _ImportedMemory:
    line: int
    record: MemoryRecord
    embedding: list[float] | None


@dataclass
class ImportFile:
    """A parsed, validated import file."""

    embedding_model: str | None
    memories: list[_ImportedMemory] = field(default_factory=list)
    links: list[tuple[int, str, str]] = field(default_factory=list)


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


def _bad_line(
    line: int, message: str, loc: Sequence[Any] = (), kind: str = "invalid"
) -> BadRequest:
    return BadRequest(
        f"line {line}: {message}",
        code="invalid_import_line",
        errors=[{"loc": ["line", line, *loc], "msg": message, "type": kind}],
    )


def parse_import(body: bytes, *, max_content_chars: int) -> ImportFile:
    """Validate a whole JSONL import file; any bad line is a 400 naming it, before anything is
    stored."""
    lines = body.split(b"\n")
    parsed: ImportFile | None = None
    seen_ids: dict[str, int] = {}
    trailer: tuple[int, _Trailer] | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if trailer is not None:
            raise _bad_line(number, "nothing may follow the 'end' record")
        try:
            item = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad_line(number, f"not a JSON object ({exc})", kind="json_invalid") from None
        if not isinstance(item, dict):
            raise _bad_line(number, "not a JSON object", kind="json_invalid")
        kind = item.get("type")
        try:
            if parsed is None:
                if kind != "header":
                    raise _bad_line(number, "the first record must be the export 'header'")
                header = _Header.model_validate(item)
                if header.format != EXPORT_FORMAT or header.version != EXPORT_VERSION:
                    raise _bad_line(
                        number,
                        f"unsupported export format {header.format!r} version {header.version} "
                        f"(this server reads {EXPORT_FORMAT!r} version {EXPORT_VERSION})",
                        kind="unsupported_format",
                    )
                parsed = ImportFile(header.embedding_model)
            elif kind == "memory":
                record = MemoryRecord.model_validate(item.get("memory"))
                _check_memory(number, record, max_content_chars)
                if record.id in seen_ids:
                    raise _bad_line(
                        number,
                        f"memory {record.id!r} already appeared on line {seen_ids[record.id]}",
                    )
                seen_ids[record.id] = number
                embedding = item.get("embedding")
                if embedding is not None and (
                    not isinstance(embedding, list)
                    or not all(isinstance(x, int | float) for x in embedding)
                ):
                    raise _bad_line(number, "embedding must be a list of numbers", ["embedding"])
                parsed.memories.append(_ImportedMemory(number, record, embedding))
            elif kind == "link":
                link = _Link.model_validate(item)
                parsed.links.append((number, link.summary_id, link.source_id))
            elif kind == "end":
                trailer = (number, _Trailer.model_validate(item))
            else:
                raise _bad_line(number, f"unknown record type {kind!r}", ["type"])
        except ValidationError as exc:
            first = exc.errors()[0]
            where = [str(part) for part in first["loc"]]
            loc = (["memory", *where] if kind == "memory" else where) or []
            raise _bad_line(
                number, f"{'.'.join(loc) or 'record'}: {first['msg']}", loc, first["type"]
            ) from None
    if parsed is None:
        raise BadRequest(
            "The import file is empty; it needs at least a header.", code="empty_import"
        )
    if trailer is not None:
        number, end = trailer
        if (end.memories, end.links) != (len(parsed.memories), len(parsed.links)):
            raise _bad_line(
                number,
                f"the file ends with {end.memories} memories and {end.links} links announced, but "
                f"holds {len(parsed.memories)} and {len(parsed.links)}: it was cut or edited",
            )
    _check_slots(parsed)
    return parsed


def _check_memory(line: int, record: MemoryRecord, max_content_chars: int) -> None:
    if len(record.content) > max_content_chars:
        raise _bad_line(
            line,
            f"content has {len(record.content)} characters; the limit is {max_content_chars}",
            ["memory", "content"],
        )
    if record.kind == MESSAGE_KIND and (record.role is None or record.key is not None):
        raise _bad_line(line, "a message needs a role and no key", ["memory", "kind"])
    if record.kind != MESSAGE_KIND and record.role is not None:
        raise _bad_line(line, "role is only for kind 'message'", ["memory", "role"])


def _check_slots(parsed: ImportFile) -> None:
    """The file on its own must keep the rules the database keeps: one active value per key, one
    active copy of a non-message text per scope."""
    keyed: dict[tuple[str, str], int] = {}
    texts: dict[tuple[str, ...], int] = {}
    for item in parsed.memories:
        r = item.record
        if r.status != MemoryStatus.ACTIVE:
            continue
        if r.key is not None:
            slot = (r.user_id or "", r.key)
            if slot in keyed:
                raise _bad_line(
                    item.line, f"a second active value for key {r.key!r} (line {keyed[slot]})"
                )
            keyed[slot] = item.line
        if r.kind != MESSAGE_KIND:
            dedup = (r.user_id or "", r.kind, r.key or "", content_hash(r.content))
            if dedup in texts:
                raise _bad_line(
                    item.line, f"the same active {r.kind} as line {texts[dedup]} in one scope"
                )
            texts[dedup] = item.line


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
        memories = links = 0
        exported: set[str] = set()
        with self._snapshot() as session:
            for page in _memory_pages(session, namespace.id):
                vectors = (
                    self._vectors.embeddings([m.id for m in page]) if include_embeddings else {}
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
        yield _line({"type": "end", "memories": memories, "links": links})

    def markdown(self, namespace: Namespace) -> Iterator[str]:
        """A readable `memory.md`: facts by key (with their history), memories by date, summaries
        with their sources."""
        with self._snapshot() as session:
            rows = [m for page in _memory_pages(session, namespace.id) for m in page]
            sources: dict[str, list[str]] = {}
            for link in _links(session, namespace.id):
                sources.setdefault(link.summary_id, []).append(link.source_id)
        yield from _markdown(namespace, rows, sources, utcnow())

    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        """A read session; on PostgreSQL one REPEATABLE READ transaction, so the export is one
        consistent picture even while others write."""
        with self._db.read() as session:
            if not self._db.is_sqlite:
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    # ---- import ------------------------------------------------------------------------------

    def import_jsonl(self, principal: Principal, namespace_id: str, body: bytes) -> ImportOutcome:
        """Restore a JSONL export into `namespace_id` (which the caller may write), idempotently."""
        with self._db.read() as session:
            authorize_namespace(session, principal, namespace_id, Action.WRITE)
        parsed = parse_import(body, max_content_chars=self._settings.max_content_chars)
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


@dataclass
class _Plan:
    skipped: int = 0
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


def _links(session: Session, namespace_id: str) -> list[MemoryLink]:
    return list(
        session.exec(
            select(MemoryLink)
            .join(Memory, col(Memory.id) == col(MemoryLink.summary_id))
            .where(col(Memory.namespace_id) == namespace_id)
            .order_by(col(MemoryLink.summary_id), col(MemoryLink.source_id))
        ).all()
    )


# ---- Markdown ----------------------------------------------------------------------------------


def _markdown(
    namespace: Namespace, rows: list[Memory], sources: dict[str, list[str]], now: datetime
) -> Iterator[str]:
    by_id = {m.id: m for m in rows}
    keyed = [m for m in rows if m.key is not None]
    summaries = [m for m in rows if m.kind == "summary"]
    others = [m for m in rows if m.key is None and m.kind != "summary"]
    yield f"# Memory: {namespace.name}\n\n"
    yield (
        f"Namespace `{namespace.id}`, exported {now:%Y-%m-%d %H:%M} UTC: {len(rows)} memories "
        f"({len(keyed)} keyed facts and their history, {len(others)} other memories, "
        f"{len(summaries)} summaries).\n\n"
    )
    if namespace.description:
        yield f"{namespace.description}\n\n"
    yield "## Facts by key\n\n"
    if not keyed:
        yield "_None._\n\n"
    slots: dict[tuple[str, str], list[Memory]] = {}
    for memory in keyed:
        slots.setdefault((memory.key or "", memory.user_id or ""), []).append(memory)
    for (key, user), history in sorted(slots.items()):
        yield f"### `{key}`" + (f" (user {user})" if user else "") + "\n\n"
        for memory in sorted(history, key=lambda m: (m.created_at, m.id), reverse=True):
            state = "current" if memory.status == MemoryStatus.ACTIVE else str(memory.status)
            yield f"- **{state}** ({memory.created_at:%Y-%m-%d}, {memory.kind}): {_text(memory)}\n"
        yield "\n"
    yield "## Memories by date\n\n"
    if not others:
        yield "_None._\n\n"
    day = None
    for memory in others:
        if memory.created_at.date() != day:
            day = memory.created_at.date()
            yield f"\n### {day:%Y-%m-%d}\n\n"
        label = [memory.kind] + ([memory.role] if memory.role else [])
        if memory.thread_id:
            label.append(f"thread {memory.thread_id}")
        if memory.user_id:
            label.append(f"user {memory.user_id}")
        if memory.status != MemoryStatus.ACTIVE:
            label.append(str(memory.status))
        yield f"- {memory.created_at:%H:%M} · {' · '.join(label)}: {_text(memory)}\n"
    yield "\n## Summaries\n\n"
    if not summaries:
        yield "_None._\n"
    for summary in summaries:
        span = ""
        if summary.covers_from and summary.covers_to:
            span = f", {summary.covers_from:%Y-%m-%d %H:%M} to {summary.covers_to:%Y-%m-%d %H:%M}"
        yield f"### Summary `{summary.id}` (level {summary.level}{span})\n\n"
        yield f"{summary.content.strip()}\n\nSources:\n\n"
        for source_id in sorted(sources.get(summary.id, [])):
            source = by_id.get(source_id)
            if source is None:
                yield f"- `{source_id}` (not in this export)\n"
            else:
                yield (
                    f"- `{source_id}` ({source.created_at:%Y-%m-%d %H:%M}, {source.kind}): "
                    f"{_text(source, 120)}\n"
                )
        yield "\n"


def _text(memory: Memory, limit: int | None = None) -> str:
    text = " ".join(memory.content.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
