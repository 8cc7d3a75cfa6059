"""Wire models. All of them accept unknown fields, so a newer server does not break this client.

Names match the server's OpenAPI components. Request models mirror the server's fields but leave
validation to the server; unset fields are not sent, so the server's defaults apply.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Role(StrEnum):
    """Who said a message."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"
    TOOL = "tool"


class MemoryStatus(StrEnum):
    """A memory's lifecycle state."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    SUPERSEDED = "superseded"


class TaskStatus(StrEnum):
    """A task's state: pending, in_progress (one per agent and thread), or how it ended."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class GrantPermission(StrEnum):
    """What a grant lets another agent do in a namespace; `write` includes `read`."""

    READ = "read"
    WRITE = "write"


# ---- agents and keys -------------------------------------------------------------------------


class AgentCreate(_Model):
    """Body of `POST /v1/agents`."""

    name: str


class AgentPublic(_Model):
    """An agent; `default_namespace_id` is its private namespace."""

    id: str
    name: str
    default_namespace_id: str | None = None
    created_at: datetime


class AgentsPublic(_Model):
    """Every agent, with the count."""

    data: list[AgentPublic]
    count: int


class ApiKeyCreate(_Model):
    """Body of `POST /v1/agents/{agent_id}/keys`."""

    name: str | None = None
    read_only: bool | None = None
    namespace_ids: list[str] | None = None
    expires_at: datetime | None = None


class ApiKeyPublic(_Model):
    """An API key without its secret."""

    id: str
    agent_id: str
    name: str | None = None
    prefix: str
    read_only: bool
    namespace_ids: list[str] | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyPublic):
    """A new API key; `key` is the secret, returned only here."""

    key: str


class ApiKeysPublic(_Model):
    """An agent's API keys (without their secrets), with the count."""

    data: list[ApiKeyPublic]
    count: int


class WhoAmI(_Model):
    """The caller as the server sees it."""

    agent_id: str | None = None
    key_id: str | None = None
    is_admin: bool
    read_only: bool
    namespace_ids: list[str] | None = None


# ---- namespaces -----------------------------------------------------------------------------


class NamespaceCreate(_Model):
    """Body of `POST /v1/namespaces`."""

    name: str
    description: str | None = None


class NamespacePublic(_Model):
    """A namespace and the caller's `permission` in it (owner, write, read, admin)."""

    id: str
    name: str
    owner_agent_id: str
    description: str | None = None
    is_default: bool
    created_at: datetime
    permission: str


class NamespacesPublic(_Model):
    """The namespaces the caller may read, with the count."""

    data: list[NamespacePublic]
    count: int


# ---- sharing: grants and the audit trail ------------------------------------------------------


class GrantCreate(_Model):
    """Body of `POST /v1/namespaces/{namespace_id}/grants`."""

    agent_id: str
    permission: str


class GrantPublic(_Model):
    """Another agent's access to a namespace: `permission` is "read" or "write"."""

    id: str
    namespace_id: str
    agent_id: str
    permission: str
    created_at: datetime


class GrantsPublic(_Model):
    """The grants on a namespace, oldest first, with the count."""

    data: list[GrantPublic]
    count: int


class AuditEventPublic(_Model):
    """One request's access to a namespace by someone other than its owner; never content.

    `agent_id` and `key_id` are None for the admin key; `action` is "read" or "write";
    `operation` is get, list, search, context, create, update or delete.
    """

    id: int
    namespace_id: str
    agent_id: str | None = None
    key_id: str | None = None
    action: str
    operation: str
    memory_count: int
    request_id: str | None = None
    created_at: datetime


class AuditEventsPublic(_Model):
    """A page of a namespace's audit trail, newest first; `next_cursor` is None on the last."""

    data: list[AuditEventPublic]
    next_cursor: str | None = None


# ---- memories -------------------------------------------------------------------------------


class MemoryCreate(_Model):
    """One memory to write; fields left as None take the server's defaults."""

    content: str
    namespace_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    kind: str | None = None
    role: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    importance: float | None = None
    key: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None


class MemoryBatchCreate(_Model):
    """Body of `POST /v1/memories/batch`."""

    memories: list[MemoryCreate]


class MemoryUpdate(_Model):
    """Body of `PATCH /v1/memories/{id}`: only the fields that change."""

    content: str | None = None
    metadata: dict[str, Any] | None = None
    tags: list[str] | None = None
    importance: float | None = None
    expires_at: datetime | None = None
    status: str | None = None


class MemoryPublic(_Model):
    """A stored memory; `version` is what `update_memory` needs.

    `level` is 0 for an original entry and 1 + its sources' level for a summary; a summary's
    `covers_from` and `covers_to` are the times of its first and last source (None otherwise).
    """

    id: str
    namespace_id: str
    author_agent_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    kind: str
    role: str | None = None
    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    importance: float
    key: str | None = None
    created_at: datetime
    updated_at: datetime
    last_accessed_at: datetime | None = None
    access_count: int
    token_count: int
    content_hash: str
    version: int
    status: str
    expires_at: datetime | None = None
    superseded_by: str | None = None
    level: int = 0
    covers_from: datetime | None = None
    covers_to: datetime | None = None


class MemoriesPublic(_Model):
    """A page of memories; `next_cursor` is None on the last page."""

    data: list[MemoryPublic]
    next_cursor: str | None = None


class MemoryWriteResult(_Model):
    """A write's outcome: `created` is False when an identical memory existed."""

    memory: MemoryPublic
    created: bool
    superseded_id: str | None = None


class MemoryBatchResult(_Model):
    """A batch write's outcomes, in request order, with counts."""

    results: list[MemoryWriteResult]
    created: int
    deduplicated: int


class MemoryDeleted(_Model):
    """What remains of a deleted memory: that it was deleted, when and by whom.

    `also_deleted` lists the summaries condensed from it, deleted with it.
    """

    id: str
    namespace_id: str
    deleted_at: datetime
    deleted_by: str | None = None
    also_deleted: list[str] = Field(default_factory=list)


class ProvenancePublic(_Model):
    """A memory and the tree of entries it was condensed from, down to the originals.

    `sources` is empty for an original entry; `hidden_sources` counts the sources the caller may
    not read, left out of `sources`.
    """

    memory: MemoryPublic
    sources: list[ProvenancePublic]
    hidden_sources: int = 0


class UserForgotten(_Model):
    """What `forget_user` deleted: the user's memories and the summaries condensed from them."""

    user_id: str
    namespace_id: str
    deleted: list[str]


# ---- summaries ------------------------------------------------------------------------------


class SummaryRunRequest(_Model):
    """Body of `POST /v1/summaries/run`."""

    namespace_id: str | None = None
    dry_run: bool | None = None


class SummaryGroupPlan(_Model):
    """A group of memories a dry run would condense into one summary."""

    namespace_id: str
    user_id: str | None = None
    thread_id: str | None = None
    source_ids: list[str]
    source_tokens: int


class SummaryFailure(_Model):
    """A group the summarizer could not condense, and why."""

    source_ids: list[str]
    reason: str


class SummaryRunPublic(_Model):
    """A summarizer run: `status` is "running", "completed" or "abandoned".

    `groups` and `sources` count what was condensed (on a dry run: what would be); `cost` is in
    USD (0 when unknown). `summary_ids` (what this request stored) and `plan` (dry run only: the
    groups that would be condensed) are empty when the run is read back with `get_summary_run`.
    """

    id: str
    namespace_id: str | None = None
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    groups: int
    sources: int
    tokens_before: int
    tokens_after: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    failures: list[SummaryFailure]
    triggered_by: str | None = None
    summary_ids: list[str] = Field(default_factory=list)
    plan: list[SummaryGroupPlan] = Field(default_factory=list)


# ---- ranking --------------------------------------------------------------------------------


class RankingWeights(_Model):
    """How much each score component counts (each >= 0, no need to sum to 1); None: default."""

    dense: float | None = None
    keyword: float | None = None
    recency: float | None = None
    importance: float | None = None
    frequency: float | None = None
    thread: float | None = None


class RankingOptions(_Model):
    """Knobs of the hybrid ranking used by search and context; fields left None keep the defaults.

    `min_relevance` drops candidates whose best of dense and keyword relevance is lower,
    `length_penalty` is the exponent of the length factor for long memories (0: off),
    `diversity` trades score for novelty (0 to 1), `diversity_threshold` is the similarity to what
    is already chosen below which a candidate is not redundant at all, `duplicate_similarity` is
    the similarity at which a candidate counts as a near-duplicate of one already chosen.
    """

    weights: RankingWeights | None = None
    recency_half_life_days: float | None = None
    min_relevance: float | None = None
    length_penalty: float | None = None
    diversity: float | None = None
    diversity_threshold: float | None = None
    duplicate_similarity: float | None = None


class ScoreComponents(_Model):
    """The parts of a ranking score, each in [0, 1].

    score = length * (the weighted sum of dense, keyword, recency, importance and frequency)
    + the thread weight * thread.
    """

    dense: float
    keyword: float
    recency: float
    importance: float
    frequency: float
    length: float = 1.0
    thread: float = 0.0


# ---- search ---------------------------------------------------------------------------------


class MemoryFilters(_Model):
    """The filters search and context share: which memories they may draw on."""

    namespace_ids: list[str] | None = None
    user_id: str | None = None
    thread_id: str | None = None
    kinds: list[str] | None = None
    tags: list[str] | None = None
    statuses: list[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class SearchRequest(MemoryFilters):
    """Body of `POST /v1/search`."""

    query: str
    k: int | None = None
    include_archived: bool | None = None
    min_similarity: float | None = None
    ranking: RankingOptions | None = None


class SearchHit(_Model):
    """A search result: its fused ranking `score`, the score's `components`, dense `similarity`."""

    memory: MemoryPublic
    similarity: float
    score: float
    components: ScoreComponents


class SearchResponse(_Model):
    """Search results, best first."""

    query: str
    results: list[SearchHit]


# ---- embeddings: maps of memory --------------------------------------------------------------


class MemoryEmbedding(_Model):
    """A memory's stored embedding (the vector search compares) with what a map labels it by.

    `preview` is the start of its content on one line; `level` is 0 for an original entry and
    1 + its sources' for a summary.
    """

    id: str
    kind: str
    role: str | None = None
    status: str
    user_id: str | None = None
    thread_id: str | None = None
    key: str | None = None
    level: int
    created_at: datetime
    preview: str
    embedding: list[float]


class QueryEmbedding(_Model):
    """A query's embedding, made the way search makes it, to place the query among memories."""

    text: str
    embedding: list[float]


class EmbeddingsPublic(_Model):
    """A page of a namespace's memories with their embeddings, newest first.

    `model` made every vector; `next_cursor` fetches the next page (None at the end); `query` is
    the embedding of the `query` argument, when one was given.
    """

    namespace_id: str
    model: str
    dimensions: int
    data: list[MemoryEmbedding]
    next_cursor: str | None = None
    query: QueryEmbedding | None = None


# ---- conversation helpers and context -------------------------------------------------------


class Message(_Model):
    """A chat message for `remember()`: `content` is text or a list of parts (`{"text": ...}`).

    `metadata`, `tags`, `importance`, `created_at` and `expires_at` are stored as such; any other
    field (`name`, `tool_call_id`, ...) is kept in the memory's metadata.
    """

    role: str
    content: str | list[Any] | None = None


class TierShares(_Model):
    """Shares of a context's budget per tier, in order; what one tier leaves flows to the next.
    `tasks` counts only when the workflow tier has tasks to show."""

    tasks: float | None = None
    thread: float | None = None
    facts: float | None = None
    memories: float | None = None


class ContextRequest(MemoryFilters):
    """Body of `POST /v1/context`."""

    query: str
    budget_tokens: int
    model: str | None = None
    include_archived: bool | None = None
    ranking: RankingOptions | None = None
    tiers: TierShares | None = None
    max_thread_messages: int | None = None
    include_tasks: bool | None = None
    max_pending_tasks: int | None = None
    max_candidates: int | None = None


class ContextItem(_Model):
    """A memory packed into the context, in `tier` "thread", "facts" or "memories".

    `tokens` is what its line costs; `score` and `components` are None outside the ranked
    "memories" tier. `provenance` (summaries only) is where its sources can be browsed.
    """

    id: str
    namespace_id: str
    kind: str
    tier: str
    created_at: datetime
    tokens: int
    score: float | None = None
    components: ScoreComponents | None = None
    provenance: str | None = None


class DroppedItem(_Model):
    """A candidate left out of the context, and why.

    `reason` is "over_budget", "duplicate" (a near-duplicate of `duplicate_of`),
    "below_threshold" (under `min_relevance`), "superseded" (a keyed value replaced since),
    "summarized" (a kept summary stands for it) or "expanded" (its sources are used instead).
    """

    id: str
    tier: str
    reason: str
    score: float | None = None
    duplicate_of: str | None = None


class ContextResponse(_Model):
    """A context string packed under the token budget, with what went in and what did not."""

    context: str
    tokens_used: int
    budget_tokens: int
    model: str
    items: list[ContextItem]
    dropped: list[DroppedItem]


# ---- errors ---------------------------------------------------------------------------------


class ErrorBody(_Model):
    """The body of every error response; `errors` lists per-field problems on a 422 only."""

    code: str
    detail: str
    errors: list[dict[str, Any]] | None = None


# ---- health ---------------------------------------------------------------------------------


class Health(_Model):
    """Liveness or readiness, with per-store checks."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# ---- the event log --------------------------------------------------------------------------


class EventPublic(_Model):
    """One thing that happened in a namespace; never content.

    `type` is created, updated, superseded, archived, summarized, deleted, shared or revoked,
    or for a task (`task_id`) task_created, task_updated, task_started, task_paused,
    task_completed, task_failed, task_cancelled, task_reopened or task_deleted; `actor` an agent
    id, "admin" or "system"; `id` is the cursor to resume after.
    """

    id: int
    type: str
    namespace_id: str
    memory_id: str | None = None
    task_id: str | None = None
    actor: str
    agent_id: str | None = None
    key_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class EventsPublic(_Model):
    """A page of events, oldest first; pass `next_cursor` as `after` to continue."""

    data: list[EventPublic]
    next_cursor: str
    has_more: bool = False


# ---- export and import ----------------------------------------------------------------------


class ImportConflict(_Model):
    """A record of an import file that was not imported, and why."""

    line: int
    record: str
    id: str
    reason: str


class ImportResult(_Model):
    """What an import did: memories, links and tasks created or already there, and the
    conflicts."""

    namespace_id: str
    created: int
    skipped: int
    links_created: int
    links_skipped: int
    tasks_created: int = 0
    tasks_skipped: int = 0
    conflicts: list[ImportConflict] = Field(default_factory=list)


# ---- tasks ----------------------------------------------------------------------------------


class TaskCreate(_Model):
    """Body of `POST /v1/tasks`."""

    namespace_id: str | None = None
    title: str
    description: str | None = None
    context: dict[str, Any] | None = None
    priority: int | None = None
    user_id: str | None = None
    thread_id: str | None = None
    parent_task_id: str | None = None
    status: TaskStatus | str | None = None


class TaskUpdate(_Model):
    """Body of `PATCH /v1/tasks/{task_id}`; only the fields set are sent."""

    title: str | None = None
    description: str | None = None
    context: dict[str, Any] | None = None
    priority: int | None = None
    status: TaskStatus | str | None = None
    result: Any = None


class TaskPublic(_Model):
    """A task: what an agent is doing or will do, its JSON `context`, and how it ended."""

    id: str
    namespace_id: str
    agent_id: str
    author_agent_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    parent_task_id: str | None = None
    title: str
    description: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    status: TaskStatus | str
    result: Any = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: int


class TasksPublic(_Model):
    """A page of tasks, oldest first; pass `next_cursor` as `cursor` for the next."""

    data: list[TaskPublic]
    next_cursor: str | None = None


class TaskDeleted(_Model):
    """A deleted task."""

    id: str
    namespace_id: str
    deleted_at: datetime


class TaskConflict(ErrorBody):
    """A 409 on a task; for `another_task_in_progress`, `task` is the one holding the slot."""

    task: TaskPublic | None = None
