"""Wire shapes: what the API accepts and returns. Tables live in `models.py`."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from .ranking import RankingOptions
from .safe_json import find_text_problem

Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
ScopeId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
MemoryKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:/-]{1,128}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{1,128}$")]

RESERVED_KINDS = frozenset({"summary"})
# Values one filter list may hold (namespaces, kinds, tags, statuses).
MAX_FILTER_VALUES = 100


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class MemoryStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"
    SUPERSEDED = "superseded"


class StrictModel(BaseModel):
    """A request shape: unknown fields are refused, and every string in it, at any depth, must be
    storable (valid Unicode, no NUL: `safe_json.text_problem`)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        found = find_text_problem(data)
        if found is not None:
            where, problem = found
            raise ValueError(f"{where or 'the value'} {problem}")
        return data


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# ---- agents and keys -------------------------------------------------------------------------


class AgentCreate(StrictModel):
    name: Name


class AgentPublic(BaseModel):
    id: str
    name: str
    default_namespace_id: str | None
    created_at: datetime


class AgentsPublic(BaseModel):
    data: list[AgentPublic]
    count: int


class ApiKeyCreate(StrictModel):
    name: str | None = Field(default=None, max_length=128)
    read_only: bool = False
    namespace_ids: list[str] | None = Field(
        default=None, description="Limit the key to these namespaces; omit for all of the agent's."
    )
    expires_at: datetime | None = None

    _aware_expiry = field_validator("expires_at")(_aware)


class ApiKeyPublic(BaseModel):
    id: str
    agent_id: str
    name: str | None
    prefix: str
    read_only: bool
    namespace_ids: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeysPublic(BaseModel):
    data: list[ApiKeyPublic]
    count: int


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The secret. Shown once, here; only its hash is stored.")


class WhoAmI(BaseModel):
    agent_id: str | None
    key_id: str | None
    is_admin: bool
    read_only: bool
    namespace_ids: list[str] | None


# ---- namespaces -----------------------------------------------------------------------------


class NamespaceCreate(StrictModel):
    name: Name
    description: str | None = Field(default=None, max_length=1000)


class NamespacePublic(BaseModel):
    id: str
    name: str
    owner_agent_id: str
    description: str | None
    is_default: bool
    created_at: datetime
    permission: str = Field(description="The caller's access: owner, write, read or admin.")


class NamespacesPublic(BaseModel):
    data: list[NamespacePublic]
    count: int


# ---- memories -------------------------------------------------------------------------------


class MemoryCreate(StrictModel):
    namespace_id: str | None = Field(
        default=None, description="Target namespace; the caller's default namespace if omitted."
    )
    user_id: ScopeId | None = None
    thread_id: ScopeId | None = None
    kind: Kind = "note"
    role: Role | None = None
    content: str = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    key: MemoryKey | None = Field(
        default=None,
        description="A keyed fact (e.g. 'user.tone'): a new value supersedes the old one.",
    )
    created_at: datetime | None = Field(
        default=None, description="When it happened; defaults to now (set it for imports/replays)."
    )
    expires_at: datetime | None = None

    _aware_times = field_validator("created_at", "expires_at")(_aware)

    @field_validator("content")
    @classmethod
    def _content_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content must not be blank")
        return value

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> MemoryCreate:
        if self.kind in RESERVED_KINDS:
            raise ValueError(f"kind {self.kind!r} is reserved for the summarizer")
        if self.kind == "message" and self.role is None:
            raise ValueError("a message needs a role (user, assistant, system or tool)")
        if self.kind != "message" and self.role is not None:
            raise ValueError("role is only for kind 'message'")
        if self.kind == "message" and self.key is not None:
            raise ValueError("a message cannot have a key; keys are for facts and preferences")
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            raise ValueError("expires_at is in the past")
        return self


class MemoryUpdate(StrictModel):
    content: str | None = Field(default=None, min_length=1)
    metadata: dict[str, Any] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=32)
    importance: float | None = Field(default=None, ge=0.0, le=1.0)
    expires_at: datetime | None = None
    status: MemoryStatus | None = Field(
        default=None,
        description="'archived' or 'active'; 'superseded' is set by keyed writes only.",
    )

    _aware_expiry = field_validator("expires_at")(_aware)

    @model_validator(mode="after")
    def _sensible(self) -> MemoryUpdate:
        if self.status == MemoryStatus.SUPERSEDED:
            raise ValueError("status 'superseded' is set by writing a new value for the key")
        if self.content is not None and not self.content.strip():
            raise ValueError("content must not be blank")
        if not self.model_fields_set:
            raise ValueError("nothing to update")
        return self


class MemoryPublic(BaseModel):
    id: str
    namespace_id: str
    author_agent_id: str | None
    user_id: str | None
    thread_id: str | None
    kind: str
    role: str | None
    content: str
    metadata: dict[str, Any]
    tags: list[str]
    importance: float
    key: str | None
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None
    access_count: int
    token_count: int
    content_hash: str
    version: int
    status: str
    expires_at: datetime | None
    superseded_by: str | None
    level: int = Field(
        default=0, description="0 for an original entry; 1 + its sources' for a summary."
    )
    covers_from: datetime | None = Field(
        default=None, description="A summary's first source's time; null for other memories."
    )
    covers_to: datetime | None = Field(
        default=None, description="A summary's last source's time; null for other memories."
    )


class MemoriesPublic(BaseModel):
    data: list[MemoryPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class MemoryBatchCreate(StrictModel):
    memories: list[MemoryCreate] = Field(min_length=1)


class MemoryWriteResult(BaseModel):
    memory: MemoryPublic
    created: bool = Field(description="False when an identical memory already existed in scope.")
    superseded_id: str | None = Field(
        default=None, description="The keyed memory this write superseded, if any."
    )


class MemoryBatchResult(BaseModel):
    results: list[MemoryWriteResult]
    created: int
    deduplicated: int


class MemoryDeleted(BaseModel):
    id: str
    namespace_id: str
    deleted_at: datetime
    deleted_by: str | None
    also_deleted: list[str] = Field(
        default_factory=list,
        description="Summaries condensed from this memory, deleted with it.",
    )


class UserForgotten(BaseModel):
    user_id: str
    namespace_id: str
    deleted: list[str] = Field(
        description="Every memory deleted: the user's own, and summaries condensed from them."
    )


# ---- search ---------------------------------------------------------------------------------


class MemoryFilters(StrictModel):
    """Filters shared by listing, search and context."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    namespace_ids: list[str] | None = Field(
        default=None,
        max_length=MAX_FILTER_VALUES,
        validation_alias=AliasChoices("namespace_ids", "namespaces"),
        description="Namespaces to cover (alias `namespaces`); every readable one if omitted.",
    )
    user_id: str | None = None
    thread_id: str | None = None
    kinds: list[Kind] | None = Field(default=None, max_length=MAX_FILTER_VALUES)
    tags: list[Tag] | None = Field(
        default=None, max_length=MAX_FILTER_VALUES, description="Memories carrying all these tags."
    )
    statuses: list[MemoryStatus] | None = Field(
        default=None, max_length=MAX_FILTER_VALUES, description="Default: active only."
    )
    created_after: datetime | None = None
    created_before: datetime | None = None

    _aware_times = field_validator("created_after", "created_before")(_aware)


class SearchRequest(MemoryFilters):
    query: str = Field(min_length=1, max_length=8000)
    k: int = Field(default=10, ge=1, le=100)
    include_archived: bool = False
    min_similarity: float | None = Field(
        default=None, ge=-1.0, le=1.0, description="Drop results whose dense similarity is lower."
    )
    ranking: RankingOptions = Field(
        default_factory=RankingOptions,
        description="Weights and knobs of the hybrid ranking (see POST /v1/context).",
    )


class ScoreComponents(BaseModel):
    """score = length x (the weighted sum of dense, keyword, recency, importance and frequency)
    + the thread weight x thread."""

    dense: float
    keyword: float
    recency: float
    importance: float
    frequency: float
    length: float = Field(description="Length factor in (0, 1]: long memories must earn budget.")
    thread: float = Field(
        default=0.0,
        description="Thread support: the mean score of the best other candidates of the same "
        "conversation thread.",
    )


class SearchHit(BaseModel):
    memory: MemoryPublic
    similarity: float = Field(description="Dense (embedding) similarity to the query.")
    score: float = Field(description="The fused ranking score.")
    components: ScoreComponents


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]


# ---- embeddings (maps of memory) -------------------------------------------------------------


class MemoryEmbedding(BaseModel):
    id: str
    kind: str
    role: str | None
    status: str
    user_id: str | None
    thread_id: str | None
    key: str | None
    level: int = Field(description="0 for an original entry; 1 + its sources' for a summary.")
    created_at: datetime
    preview: str = Field(description="The start of the content, on one line.")
    embedding: list[float] = Field(description="The vector search compares, as stored.")


class QueryEmbedding(BaseModel):
    text: str
    embedding: list[float] = Field(description="The query's vector, embedded as search does.")


class EmbeddingsPublic(BaseModel):
    namespace_id: str
    model: str = Field(description="The embedding model that made every vector here.")
    dimensions: int
    data: list[MemoryEmbedding] = Field(description="Newest first, as listing orders them.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    query: QueryEmbedding | None = Field(
        default=None, description="The `query` parameter's embedding, when one was given."
    )


# ---- context --------------------------------------------------------------------------------


class TierShares(StrictModel):
    """Shares of the budget per tier, in order; what a tier leaves unused flows to the next.

    `tasks` counts only when the call includes the workflow tier and it has tasks to show; the
    other three shares then split the rest as they would without it."""

    tasks: float = Field(default=0.2, ge=0)
    thread: float = Field(default=0.35, ge=0)
    facts: float = Field(default=0.15, ge=0)
    memories: float = Field(default=0.5, ge=0)


class ContextRequest(MemoryFilters):
    query: str = Field(min_length=1, max_length=8000)
    budget_tokens: int = Field(ge=1, le=1_000_000)
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Model whose tokenizer counts the budget (litellm); default gpt-4o-mini.",
    )
    include_archived: bool = False
    ranking: RankingOptions = Field(default_factory=RankingOptions)
    tiers: TierShares = Field(default_factory=TierShares)
    max_thread_messages: int = Field(default=30, ge=0, le=500)
    include_tasks: bool | None = Field(
        default=None,
        description="The workflow tier: the caller's task in progress and its next pending "
        "tasks (of `thread_id` when given). Default: included when `thread_id` is given.",
    )
    max_pending_tasks: int = Field(
        default=5, ge=0, le=50, description="Pending tasks the workflow tier may list."
    )
    max_candidates: int | None = Field(
        default=None,
        ge=1,
        le=500,
        description="Long-term candidates to rank. Default: what the budget can use, "
        "budget_tokens / 12 between 20 and 60.",
    )


class ContextItem(BaseModel):
    id: str = Field(description="A memory's id; a task's in the tasks tier (kind 'task').")
    namespace_id: str
    kind: str
    tier: str = Field(description="tasks, thread, facts or memories")
    created_at: datetime
    tokens: int
    score: float | None
    components: ScoreComponents | None
    provenance: str | None = Field(
        default=None, description="Where a summary's sources can be browsed."
    )


class DroppedItem(BaseModel):
    id: str
    tier: str
    reason: str = Field(
        description="over_budget, duplicate, below_threshold, superseded, summarized (a kept "
        "summary stands for it) or expanded (its sources are used instead)"
    )
    score: float | None = None
    duplicate_of: str | None = None


class ContextResponse(BaseModel):
    context: str
    tokens_used: int
    budget_tokens: int
    model: str
    items: list[ContextItem]
    dropped: list[DroppedItem]


# ---- errors ---------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error response: a machine-readable code and a human sentence."""

    code: str = Field(description="e.g. memory_not_found, version_mismatch, rate_limited")
    detail: str
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Per-field problems, on validation errors (422) only."
    )


# ---- health ---------------------------------------------------------------------------------


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# ---- sharing: grants and the audit trail ------------------------------------------------------


class GrantPermission(StrEnum):
    READ = "read"
    WRITE = "write"


class GrantCreate(StrictModel):
    agent_id: str = Field(min_length=1, max_length=40, description="The agent to share with.")
    permission: GrantPermission = Field(description="'read', or 'write' (which includes read).")


class GrantPublic(BaseModel):
    id: str
    namespace_id: str
    agent_id: str
    permission: GrantPermission
    created_at: datetime


class GrantsPublic(BaseModel):
    data: list[GrantPublic]
    count: int


class AuditEventPublic(BaseModel):
    id: int
    namespace_id: str
    agent_id: str | None = Field(description="Who accessed the namespace; null for the admin key.")
    key_id: str | None = Field(description="Through which API key; null for the admin key.")
    action: str = Field(description="read or write")
    operation: str = Field(
        description="get, list, search, context, provenance, embeddings, create, update, delete, "
        "summarize or forget_user"
    )
    memory_count: int = Field(description="How many of the namespace's memories it touched.")
    request_id: str | None
    created_at: datetime


class AuditEventsPublic(BaseModel):
    data: list[AuditEventPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end."
    )


# ---- summaries ------------------------------------------------------------------------------


class SummaryRunRequest(StrictModel):
    namespace_id: str | None = Field(
        default=None,
        description="The namespace to condense; every namespace (admin only) if omitted.",
    )
    dry_run: bool = Field(
        default=False, description="Report the groups it would condense; write nothing."
    )


class SummaryGroupPlan(BaseModel):
    namespace_id: str
    user_id: str | None
    thread_id: str | None
    source_ids: list[str]
    source_tokens: int


class SummaryFailure(BaseModel):
    source_ids: list[str]
    reason: str


class SummaryRunPublic(BaseModel):
    id: str
    namespace_id: str | None
    status: str = Field(
        description="running, completed, interrupted (the server shut down between groups; the "
        "rest is left for the next run) or abandoned (the process died mid-run)"
    )
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    groups: int = Field(description="Groups condensed (dry run: that would be condensed).")
    sources: int = Field(description="Memories archived into summaries (dry run: that would be).")
    tokens_before: int
    tokens_after: int
    prompt_tokens: int
    completion_tokens: int
    cost: float = Field(description="USD, as litellm prices the model; 0 when it cannot.")
    failures: list[SummaryFailure]
    triggered_by: str | None
    summary_ids: list[str] = Field(
        default_factory=list, description="Summaries this request stored (not kept for GET)."
    )
    plan: list[SummaryGroupPlan] = Field(
        default_factory=list, description="Dry run only: the groups that would be condensed."
    )


class ProvenancePublic(BaseModel):
    memory: MemoryPublic
    sources: list[ProvenancePublic] = Field(
        description="What this summary was condensed from (empty for an original entry)."
    )
    hidden_sources: int = Field(
        default=0, description="Sources the caller may not read, left out of `sources`."
    )


# ---- the event log ----------------------------------------------------------------------------


class EventPublic(BaseModel):
    id: int = Field(description="The event's cursor: pass it as `after` to read what came next.")
    type: str = Field(
        description="created, updated, superseded, archived, summarized, deleted, shared or "
        "revoked; for tasks task_created, task_updated, task_started, task_paused, "
        "task_completed, task_failed, task_cancelled, task_reopened or task_deleted"
    )
    namespace_id: str
    memory_id: str | None = Field(
        description="The memory it happened to; null for task and grant events."
    )
    task_id: str | None = Field(
        default=None, description="The task it happened to (task_* events); null otherwise."
    )
    actor: str = Field(
        description="Who did it: an agent id, 'admin', or 'system' (scheduled jobs)."
    )
    agent_id: str | None = Field(description="The acting agent; null for the admin and the system.")
    key_id: str | None = Field(description="The API key it acted through, when known.")
    details: dict[str, Any] = Field(
        description="Small non-content facts: kind, key, version, status, summary_id, reason, ..."
    )
    created_at: datetime


class EventsPublic(BaseModel):
    data: list[EventPublic]
    next_cursor: str = Field(
        description="Pass as `after` to continue: the last event's id, or `after` if none came."
    )
    has_more: bool = Field(description="More events are waiting past `next_cursor`.")


# ---- export and import ------------------------------------------------------------------------


class ImportConflict(BaseModel):
    line: int = Field(description="The line of the import file (1-based).")
    record: str = Field(description="memory, link or task")
    id: str = Field(description="The memory or task id, or 'summary_id>source_id' for a link.")
    reason: str


class ImportResult(BaseModel):
    namespace_id: str
    created: int = Field(description="Memories stored.")
    skipped: int = Field(description="Memories already there, identical: left as they were.")
    links_created: int
    links_skipped: int
    tasks_created: int = Field(default=0, description="Tasks stored.")
    tasks_skipped: int = Field(default=0, description="Tasks already there, identical.")
    conflicts: list[ImportConflict] = Field(
        description="Records not imported because something different is already stored."
    )


# ---- tasks ------------------------------------------------------------------------------------


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TaskTitle = Annotated[str, StringConstraints(min_length=1, max_length=500)]
TaskPriority = Annotated[int, Field(ge=-1000, le=1000)]


def _title_not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("title must not be blank")
    return value


class TaskCreate(StrictModel):
    namespace_id: str | None = Field(
        default=None, description="Target namespace; the caller's default namespace if omitted."
    )
    title: TaskTitle
    description: str | None = None
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Free JSON state of the work: checkpoints, files, ids (JSONB on PostgreSQL).",
    )
    priority: TaskPriority = Field(default=0, description="Higher comes first among pending.")
    user_id: ScopeId | None = None
    thread_id: ScopeId | None = Field(
        default=None,
        description="The conversation the task belongs to: one task in progress per agent and "
        "thread in a namespace (no thread is a lane of its own).",
    )
    parent_task_id: str | None = Field(
        default=None, max_length=40, description="A task of the same namespace it is part of."
    )
    status: TaskStatus = Field(
        default=TaskStatus.PENDING, description="pending, or in_progress to start it at once."
    )

    _title = field_validator("title")(_title_not_blank)

    @model_validator(mode="after")
    def _startable(self) -> TaskCreate:
        if self.status not in (TaskStatus.PENDING, TaskStatus.IN_PROGRESS):
            raise ValueError("a new task is pending or in_progress")
        return self


class TaskUpdate(StrictModel):
    title: TaskTitle | None = None
    description: str | None = Field(default=None, description="null clears it.")
    context: dict[str, Any] | None = None
    priority: TaskPriority | None = None
    status: TaskStatus | None = Field(
        default=None, description="A transition: see the task statuses in the README."
    )
    result: Any = Field(
        default=None, description="Any JSON: what came of it (with completed or failed)."
    )

    _title = field_validator("title")(_title_not_blank)

    @model_validator(mode="after")
    def _something(self) -> TaskUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to update")
        return self


class TaskPublic(BaseModel):
    id: str
    namespace_id: str
    agent_id: str = Field(description="Whose task: the in-progress slot it takes is this agent's.")
    author_agent_id: str | None
    user_id: str | None
    thread_id: str | None
    parent_task_id: str | None
    title: str
    description: str | None
    context: dict[str, Any]
    priority: int
    status: TaskStatus
    result: Any = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="When it last entered in_progress.")
    finished_at: datetime | None = Field(description="When it was completed, failed or cancelled.")
    version: int


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class TaskDeleted(BaseModel):
    id: str
    namespace_id: str
    deleted_at: datetime


class TaskConflict(ErrorBody):
    """A 409 on a task: `another_task_in_progress` carries the task that holds the slot."""

    task: TaskPublic | None = Field(
        default=None,
        description="The task in progress in the same namespace, agent and thread, for "
        "another_task_in_progress; null for other conflicts.",
    )
