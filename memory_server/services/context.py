"""Context: what an agent needs to know for a query, packed into a hard token budget.

Up to four tiers share one budget, in order: the workflow tier (the caller's task in progress and
its next pending tasks, `services/tasks.py`), the recent messages of the current thread (verbatim,
newest last), the user's current keyed facts and preferences, then long-term memories ranked by
`ranking.rank`. Each tier may spend its share plus what earlier tiers left; `packing.pack` enforces
the budget on the final string. The workflow tier is there when the call has a thread (or asks with
`include_tasks`) and there are tasks to show; otherwise the other three split the budget alone.

Summaries and their sources: the archived sources of the summaries in scope are retrieved as
candidates like any memory, by their own dense and keyword relevance (`Scope.of`'s `summarized`),
so a call ranks as many candidates whether its memories were condensed or not, however many
sources stand behind each summary. A summary and its own sources never both take budget:
whichever ranks first and fits wins, so a summary is expanded into its sources when they score
higher and the budget allows, and stands in for them when they do not fit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from .. import metrics
from ..access import scope_namespace_ids
from ..auth import Principal
from ..config import Settings
from ..db import Database
from ..driver_reads import rows
from ..filters import Scope, ScopeShape, scope_conditions
from ..models import Memory, MemoryLink, Task, utcnow
from ..packing import Line, Tier, normalise_shares, pack
from ..ranking import Ranked, for_query, rank
from ..records import MemoryRecord, read_records, select_records
from ..schemas import (
    ContextItem,
    ContextRequest,
    ContextResponse,
    DroppedItem,
    MemoryFilters,
    MemoryStatus,
    ScoreComponents,
)
from ..tokens import count_tokens
from .retrieval import Retriever
from .search import requested_statuses
from .tasks import open_tasks
from .usage import AccessRecorder

MAX_FACTS = 100
MIN_CANDIDATES, MAX_CANDIDATES = 20, 60
TOKENS_PER_CANDIDATE = 12  # a memory's line is ~30 tokens: ~2.5 candidates per line that fits
CONTEXT_MIN_RELEVANCE = 0.12  # below this a candidate is noise in a prompt
MAX_DROPPED_REPORTED = 100
TASK_TEXT_CHARS = 300  # of a task's description, and of its context's JSON, in the prompt
TITLES = {
    "tasks": "## Tasks",
    "thread": "## Recent conversation",
    "facts": "## Known facts and preferences",
    "memories": "## Relevant memories",
}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def render_date(moment: datetime, *, with_time: bool = False) -> str:
    """`22 Nov 2026` (`22 Nov 2026 14:05` with the time): 5 tokens where `2026-11-22` takes 6
    in the cl100k and o200k tokenizers. Month names are English whatever the process's locale."""
    day = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"
    return f"{day} {moment:%H:%M}" if with_time else day


def render_line(memory: Memory | MemoryRecord, *, with_time: bool = False) -> str:
    """One memory as a prompt line with its date and kind in front: `[2 Nov 2026 · fact ·
    home.city] ...`; a message's time of day too when `with_time`. The facts tier writes its
    lines so, in the order of their importance."""
    when = render_date(memory.created_at, with_time=with_time and memory.kind == "message")
    return f"[{when} · {_kind_label(memory)}] {memory.content}"


def dated_line(
    memory: Memory | MemoryRecord,
    conflicts: frozenset[str] = frozenset(),
    *,
    with_time: bool = False,
) -> Line:
    """One memory as a line under its date's sub-heading (`### 22 Nov 2026`, written once above
    the lines of that day), with its kind in front: `[user] ...`, `[14:05 · user] ...` with the
    time. A label with the date costs 10 tokens for a message's ~25 (cl100k, o200k); on its own
    line once per day the date costs 7 and the kind 3, so more of a budget goes to content."""
    label = _kind_label(memory)
    if with_time and memory.kind == "message":
        label = f"{memory.created_at:%H:%M} · {label}"
    return Line(
        key=memory.id,
        text=f"[{label}] {memory.content}",
        conflicts=conflicts,
        heading=f"### {render_date(memory.created_at)}",
        order=memory.created_at.timestamp(),
    )


def task_line(task: Task, *, with_thread: bool = False) -> Line:
    """A task as a prompt line: `[in progress since 22 Nov 2026 14:05 · priority 2] Title:
    description. Context: {...}` (the context only for the task in progress, which an agent
    resumes from); `[pending] Title` for the next ones."""
    if task.status == "in_progress" and task.started_at is not None:
        label = [f"in progress since {render_date(task.started_at, with_time=True)}"]
    else:
        label = [task.status.replace("_", " ")]
    if task.priority:
        label.append(f"priority {task.priority}")
    if with_thread and task.thread_id is not None:
        label.append(f"thread {task.thread_id}")
    text = f"[{' · '.join(label)}] {' '.join(task.title.split())}"
    if task.description:
        text += f": {_clip(' '.join(task.description.split()))}"
    if task.status == "in_progress" and task.context:
        text += f" Context: {_clip(json.dumps(task.context, separators=(',', ':')))}"
    return Line(key=task.id, text=text)


def _clip(text: str) -> str:
    return text if len(text) <= TASK_TEXT_CHARS else text[: TASK_TEXT_CHARS - 1] + "…"


def memories_tier(share: float, lines: Sequence[Line]) -> Tier:
    """The long-term tier: `lines` best first, rendered oldest first under their dates."""
    return Tier("memories", TITLES["memories"], share, lines, chronological=True)


def _kind_label(memory: Memory | MemoryRecord) -> str:
    """A message's role (or `message`); any other memory's kind and key."""
    if memory.kind == "message":
        return memory.role or "message"
    return f"{memory.kind} · {memory.key}" if memory.key else memory.kind


def candidate_pool(budget_tokens: int) -> int:
    """How many long-term candidates to rank when the caller does not say: a few for every line
    the budget can hold, between 20 and 60. Fewer candidates cost less SQL, ranking and packing;
    recall at 256 and 512 tokens held with 20 to 40 of them, at 1024 it needs 60
    (docs/benchmarks.md)."""
    return max(MIN_CANDIDATES, min(MAX_CANDIDATES, budget_tokens // TOKENS_PER_CANDIDATE))


@dataclass
class _Scored:
    memory: MemoryRecord
    ranked: Ranked | None = None


class ContextService:
    def __init__(
        self,
        db: Database,
        retriever: Retriever,
        recorder: AccessRecorder,
        settings: Settings,
    ):
        self._db = db
        self._retriever = retriever
        self._recorder = recorder
        self._settings = settings

    def build(
        self,
        principal: Principal,
        request: ContextRequest,
        query_embedding: Future[list[float]] | None = None,
    ) -> ContextResponse:
        """Pack the context for `request`; `tokens_used` never exceeds `budget_tokens`.
        `query_embedding`: the query's embedding, if the caller already asked for it."""
        metrics.begin("context")
        model = request.model or self._settings.default_token_model
        counts: dict[str, int] = {}

        def count(text: str) -> int:
            if text not in counts:
                counts[text] = count_tokens(text, model)
            return counts[text]

        if query_embedding is None:
            query_embedding = self._retriever.embed_soon(request.query)  # while SQL runs
        # Every tier reads one snapshot: a fact replaced between two tiers' reads cannot be
        # served in both its old and new version.
        with self._db.snapshot() as session:
            namespace_ids = scope_namespace_ids(session, principal, request.namespace_ids)
            tasks = self._open_tasks(session, namespace_ids, principal, request)
            thread = self._recent_thread(session, namespace_ids, request)
            facts = self._user_facts(session, namespace_ids, request)
            metrics.lap("sql")
            taken = {m.id for m in thread} | {m.id for m in facts}
            ranked, not_ranked, conflicts = self._long_term(
                session, namespace_ids, request, taken, query_embedding
            )

        by_id: dict[str, _Scored] = {m.id: _Scored(m) for m in [*thread, *facts]}
        by_id.update({r.memory.id: _Scored(r.memory, r) for r in ranked})
        memory_shares = [request.tiers.thread, request.tiers.facts, request.tiers.memories]
        # The workflow tier takes a share only when it has lines: a call without tasks packs
        # exactly as it would without the tier.
        shares = normalise_shares([request.tiers.tasks, *memory_shares] if tasks else memory_shares)
        task_tiers = []
        if tasks:
            with_thread = request.thread_id is None
            task_lines = [task_line(t, with_thread=with_thread) for t in tasks]
            task_tiers = [Tier("tasks", TITLES["tasks"], shares.pop(0), task_lines)]
        tiers = [
            *task_tiers,
            Tier(
                "thread",
                TITLES["thread"],
                shares[0],
                [dated_line(m, with_time=True) for m in thread],
                contiguous=True,
            ),
            Tier("facts", TITLES["facts"], shares[1], [Line(m.id, render_line(m)) for m in facts]),
            memories_tier(
                shares[2],
                [dated_line(r.memory, conflicts.get(r.memory.id, frozenset())) for r in ranked],
            ),
        ]
        packed = pack(tiers, request.budget_tokens, count)
        metrics.lap("packing")

        task_by_id = {t.id: t for t in tasks}
        items = [
            _task_item(task_by_id[line.key], count(line.text))
            if tier == "tasks"
            else _item(by_id[line.key], tier, count(line.text))
            for tier, lines in packed.included.items()
            for line in lines
        ]
        dropped = [
            DroppedItem(
                id=line.key,
                tier=tier,
                reason="over_budget",
                score=_score(by_id[line.key]) if line.key in by_id else None,
            )
            for tier, line in packed.over_budget
        ]
        dropped += [
            DroppedItem(
                id=line.key,
                tier=tier,
                # a summary skipped for its sources was expanded; a source, summarized
                reason="expanded" if by_id[line.key].memory.kind == "summary" else "summarized",
                score=_score(by_id[line.key]),
                duplicate_of=winner,
            )
            for tier, line, winner in packed.conflicted
        ]
        dropped += not_ranked
        self._recorder.record(item.id for item in items if item.tier != "tasks")
        return ContextResponse(
            context=packed.context,
            tokens_used=packed.tokens_used,
            budget_tokens=request.budget_tokens,
            model=model,
            items=items,
            dropped=dropped[:MAX_DROPPED_REPORTED],
        )

    def _open_tasks(
        self,
        session: Session,
        namespace_ids: Sequence[str],
        principal: Principal,
        request: ContextRequest,
    ) -> list[Task]:
        """The caller's task in progress and next pending tasks (every agent's for the admin),
        of the request's thread when it has one; none unless the tier is asked for."""
        include = request.include_tasks
        if include is None:
            include = request.thread_id is not None
        if not include:
            return []
        return open_tasks(
            session,
            namespace_ids,
            agent_id=principal.agent_id,
            thread_id=request.thread_id,
            max_pending=request.max_pending_tasks,
        )

    def _recent_thread(
        self, session: Session, namespace_ids: Sequence[str], request: ContextRequest
    ) -> list[MemoryRecord]:
        if request.thread_id is None or request.max_thread_messages == 0:
            return []
        scope = Scope.of(
            namespace_ids, MemoryFilters(thread_id=request.thread_id, kinds=["message"])
        )
        parameters = {**scope.parameters, "tier_limit": request.max_thread_messages}
        return read_records(session, _thread_statement(scope.shape), parameters)

    def _user_facts(
        self, session: Session, namespace_ids: Sequence[str], request: ContextRequest
    ) -> list[MemoryRecord]:
        if request.user_id is None:
            return []
        scope = Scope.of(namespace_ids, MemoryFilters(user_id=request.user_id))
        parameters = {**scope.parameters, "tier_limit": MAX_FACTS}
        return read_records(session, _facts_statement(scope.shape), parameters)

    def _long_term(
        self,
        session: Session,
        namespace_ids: Sequence[str],
        request: ContextRequest,
        taken: set[str],
        query_embedding: Future[list[float]],
    ) -> tuple[list[Ranked], list[DroppedItem], dict[str, frozenset[str]]]:
        """Ranked long-term memories, what was dropped, and which lines exclude which."""
        if not namespace_ids:
            return [], [], {}
        statuses = [
            *requested_statuses(request.statuses, request.include_archived),
            MemoryStatus.SUPERSEDED,
        ]
        scope = request.model_copy(update={"thread_id": None})  # long-term spans every thread
        retrieved = self._retriever.retrieve(
            session,
            request.query,
            namespace_ids,
            scope,
            statuses,
            request.max_candidates or candidate_pool(request.budget_tokens),
            query_embedding=query_embedding,
            summarized=True,
        )
        dropped: list[DroppedItem] = []
        candidates = []
        for candidate in retrieved.candidates:
            if candidate.memory.id in taken:
                continue
            if candidate.memory.status == MemoryStatus.SUPERSEDED:
                dropped.append(
                    DroppedItem(id=candidate.memory.id, tier="memories", reason="superseded")
                )
                continue
            candidates.append(candidate)
        summaries = [c.memory.id for c in candidates if c.memory.kind == "summary"]
        links = _summary_links(session, summaries, [c.memory.id for c in candidates])
        metrics.lap("sql")  # which candidates condense which
        options = request.ranking
        if options.min_relevance is None:
            options = options.model_copy(update={"min_relevance": CONTEXT_MIN_RELEVANCE})
        ranked, rejected = rank(candidates, for_query(request.query, options), utcnow())
        metrics.lap("ranking")
        dropped += [
            DroppedItem(
                id=r.memory.id,
                tier="memories",
                reason=r.reason,
                score=round(r.score, 6) if r.score is not None else None,
                duplicate_of=r.duplicate_of,
            )
            for r in rejected
        ]
        return ranked, dropped, _summary_conflicts(links)


# Written as the partial index `ix_memory_user_facts` (migration m0009) states it, with a literal
# and not a parameter, so that SQLite and PostgreSQL can tell the index holds every row this
# condition admits (tests/test_tier_indexes.py); in parentheses, since it is ANDed with others.
_IS_USER_FACT = sa.text("(key IS NOT NULL OR kind = 'preference')")


@lru_cache(maxsize=16)
def _thread_statement(shape: ScopeShape) -> sa.Select[Any]:
    """A thread's messages, newest first (built once: filters.py says why)."""
    return (
        select_records()
        .where(*scope_conditions(shape))
        .order_by(col(Memory.created_at).desc(), col(Memory.id).desc())
        .limit(sa.bindparam("tier_limit"))
    )


@lru_cache(maxsize=16)
def _facts_statement(shape: ScopeShape) -> sa.Select[Any]:
    """A user's keyed facts and preferences, the most important first."""
    return (
        select_records()
        .where(*scope_conditions(shape), _IS_USER_FACT)
        .order_by(col(Memory.importance).desc(), col(Memory.updated_at).desc())
        .limit(sa.bindparam("tier_limit"))
    )


_LINKS = MemoryLink.__table__  # type: ignore[attr-defined]
_LINKS_AMONG = sa.select(_LINKS.c.summary_id, _LINKS.c.source_id).where(
    _LINKS.c.summary_id.in_(sa.bindparam("summary_ids", expanding=True)),
    _LINKS.c.source_id.in_(sa.bindparam("candidate_ids", expanding=True)),
)


def _summary_links(
    session: Session, summary_ids: Sequence[str], candidate_ids: Sequence[str]
) -> list[tuple[str, str]]:
    """(summary, source) links between the candidates: one read of at most a pool's worth of
    primary-key lookups, whatever the number of sources behind each summary."""
    if not summary_ids:
        return []
    parameters = {"summary_ids": list(summary_ids), "candidate_ids": list(candidate_ids)}
    return [(str(row[0]), str(row[1])) for row in rows(session, _LINKS_AMONG, parameters)]


def _summary_conflicts(links: Sequence[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """A summary excludes its sources and each source excludes its summaries."""
    conflicts: dict[str, set[str]] = {}
    for summary_id, source_id in links:
        conflicts.setdefault(summary_id, set()).add(source_id)
        conflicts.setdefault(source_id, set()).add(summary_id)
    return {key: frozenset(value) for key, value in conflicts.items()}


def _score(scored: _Scored) -> float | None:
    return round(scored.ranked.score, 6) if scored.ranked is not None else None


def _task_item(task: Task, tokens: int) -> ContextItem:
    return ContextItem(
        id=task.id,
        namespace_id=task.namespace_id,
        kind="task",
        tier="tasks",
        created_at=task.created_at,
        tokens=tokens,
        score=None,
        components=None,
    )


def _item(scored: _Scored, tier: str, tokens: int) -> ContextItem:
    memory = scored.memory
    components = (
        ScoreComponents(**scored.ranked.components.as_dict()) if scored.ranked is not None else None
    )
    return ContextItem(
        id=memory.id,
        namespace_id=memory.namespace_id,
        kind=memory.kind,
        tier=tier,
        created_at=memory.created_at,
        tokens=tokens,
        score=_score(scored),
        components=components,
        provenance=f"/v1/memories/{memory.id}/provenance" if memory.kind == "summary" else None,
    )
