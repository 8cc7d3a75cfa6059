"""The export file format (JSONL): what a memory record looks like, and reading an import file.

A file is a `header` line (format and version, the namespace, the embedding model), one `memory`
record per memory (the API's memory shape, optionally with its `embedding`), one `link` record per
provenance link (`summary_id`, `source_id`), one `task` record per task (the API's task shape,
parents before their subtasks), and an `end` record with the counts (`tasks` is absent from
files written before tasks existed: 0). `parse_import`
validates a whole file before anything is stored: any bad line is a 400 that names it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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

from ..errors import BadRequest, MemoryServerError
from ..models import Memory
from ..safe_json import MetadataLimits, find_text_problem
from ..schemas import (
    Kind,
    MemoryKey,
    MemoryPublic,
    MemoryStatus,
    Role,
    ScopeId,
    Tag,
    TaskPriority,
    TaskStatus,
    TaskTitle,
)
from .memories import MESSAGE_KIND, content_hash

EXPORT_FORMAT = "memory-server/export"
EXPORT_VERSION = 1


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


class TaskRecord(BaseModel):
    """One task of an import file. `namespace_id` is ignored (the import's namespace is used)."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")]
    agent_id: str = Field(min_length=1, max_length=40)
    author_agent_id: str | None = Field(default=None, max_length=40)
    user_id: ScopeId | None = None
    thread_id: ScopeId | None = None
    parent_task_id: str | None = Field(default=None, max_length=40)
    title: TaskTitle
    description: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    priority: TaskPriority = 0
    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    created_at: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int = Field(default=1, ge=1)

    _aware_times = field_validator("created_at", "updated_at", "started_at", "finished_at")(_aware)


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
    tasks: int = 0


@dataclass(frozen=True)
class ImportedMemory:
    line: int
    record: MemoryRecord
    embedding: list[float] | None


@dataclass(frozen=True)
class ImportedTask:
    line: int
    record: TaskRecord


@dataclass
class ImportFile:
    """A parsed, validated import file."""

    embedding_model: str | None
    memories: list[ImportedMemory] = field(default_factory=list)
    links: list[tuple[int, str, str]] = field(default_factory=list)
    tasks: list[ImportedTask] = field(default_factory=list)


def _bad_line(
    line: int, message: str, loc: Sequence[Any] = (), kind: str = "invalid"
) -> BadRequest:
    return BadRequest(
        f"line {line}: {message}",
        code="invalid_import_line",
        errors=[{"loc": ["line", line, *loc], "msg": message, "type": kind}],
    )


def parse_import(
    body: bytes, *, max_content_chars: int, metadata_limits: MetadataLimits
) -> ImportFile:
    """Validate a whole JSONL import file; any bad line is a 400 naming it, before anything is
    stored."""
    lines = body.split(b"\n")
    parsed: ImportFile | None = None
    seen_ids: dict[str, int] = {}
    seen_tasks: dict[str, int] = {}
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
        if (problem := find_text_problem(item)) is not None:
            location, why = problem
            raise _bad_line(number, f"{location} {why}", location.split("."), kind="text_invalid")
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
                try:
                    metadata_limits.check(record.metadata, "The memory's")
                except MemoryServerError as exc:
                    raise _bad_line(number, exc.detail, ["memory", "metadata"]) from None
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
                parsed.memories.append(ImportedMemory(number, record, embedding))
            elif kind == "link":
                link = _Link.model_validate(item)
                parsed.links.append((number, link.summary_id, link.source_id))
            elif kind == "task":
                task = TaskRecord.model_validate(item.get("task"))
                _check_task(number, task, max_content_chars, metadata_limits)
                if task.id in seen_tasks:
                    raise _bad_line(
                        number, f"task {task.id!r} already appeared on line {seen_tasks[task.id]}"
                    )
                seen_tasks[task.id] = number
                parsed.tasks.append(ImportedTask(number, task))
            elif kind == "end":
                trailer = (number, _Trailer.model_validate(item))
            else:
                raise _bad_line(number, f"unknown record type {kind!r}", ["type"])
        except ValidationError as exc:
            first = exc.errors()[0]
            where = [str(part) for part in first["loc"]]
            loc = ([kind, *where] if kind in ("memory", "task") else where) or []
            raise _bad_line(
                number, f"{'.'.join(loc) or 'record'}: {first['msg']}", loc, first["type"]
            ) from None
    if parsed is None:
        raise BadRequest(
            "The import file is empty; it needs at least a header.", code="empty_import"
        )
    if trailer is not None:
        number, end = trailer
        announced = (end.memories, end.links, end.tasks)
        held = (len(parsed.memories), len(parsed.links), len(parsed.tasks))
        if announced != held:
            raise _bad_line(
                number,
                f"the file ends with {end.memories} memories, {end.links} links and {end.tasks} "
                f"tasks announced, but holds {held[0]}, {held[1]} and {held[2]}: it was cut or "
                "edited",
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


def _check_task(
    line: int, record: TaskRecord, max_content_chars: int, metadata_limits: MetadataLimits
) -> None:
    if record.description is not None and len(record.description) > max_content_chars:
        raise _bad_line(
            line,
            f"description has {len(record.description)} characters; the limit is "
            f"{max_content_chars}",
            ["task", "description"],
        )
    for name, value in (("context", record.context), ("result", record.result)):
        try:
            metadata_limits.check(value, f"The task's {name}")
        except MemoryServerError as exc:
            raise _bad_line(line, exc.detail, ["task", name]) from None


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
    running: dict[tuple[str, str], int] = {}
    for task in parsed.tasks:
        t = task.record
        if t.status != TaskStatus.IN_PROGRESS:
            continue
        lane = (t.agent_id, t.thread_id or "")
        if lane in running:
            raise _bad_line(
                task.line,
                f"a second task in progress for one agent and thread (line {running[lane]})",
            )
        running[lane] = task.line
