"""Tasks: what an agent is doing and will do, beside what it knows (the workflow layer).

A task lives in a namespace under the same keys and permission rule as memories (`access.py`):
whoever may read the namespace sees its tasks, whoever may write it changes them.

The TODO rule: at most one task `in_progress` per namespace, agent and thread (a task without a
thread is in the agent's thread-less lane). The database holds it, not a read-then-write here: the
partial unique index `uq_task_in_progress` (migration m0012) makes the second of two concurrent
starts fail at its write, on SQLite as on PostgreSQL (where it waits for the first to commit). The
loser gets 409 `another_task_in_progress` with the task that holds the slot.

Statuses move only along `TRANSITIONS`; completed and cancelled are final. A change that asks for
what is already so (completing a completed task with the same result, starting the task that is in
progress) changes nothing and returns the task, whatever version `If-Match` names: so a retried
completion is answered like the first. Every change appends an event (`task_*`) in its own
transaction, as memory writes do.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from ..access import Action, authorize_namespace, authorize_task, scope_namespace_ids
from ..auth import Principal
from ..config import Settings
from ..db import Database
from ..errors import Conflict, InvalidRequest, PayloadTooLarge, PreconditionFailed
from ..models import Agent, Namespace, Task, new_id, utcnow
from ..schemas import TaskCreate, TaskPublic, TaskStatus, TaskUpdate
from .events import Actor, EventType, PendingEvent, append_events
from .idempotency import record_response

log = logging.getLogger(__name__)

PENDING, IN_PROGRESS = TaskStatus.PENDING, TaskStatus.IN_PROGRESS
COMPLETED, FAILED, CANCELLED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED

# Where each status may go. Completed and cancelled are final; a failed task may be retried.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    PENDING: frozenset({IN_PROGRESS, COMPLETED, CANCELLED}),
    IN_PROGRESS: frozenset({PENDING, COMPLETED, FAILED, CANCELLED}),
    FAILED: frozenset({PENDING, IN_PROGRESS, CANCELLED}),
    COMPLETED: frozenset(),
    CANCELLED: frozenset(),
}
FINAL = frozenset({COMPLETED, CANCELLED})
WITH_RESULT = frozenset({COMPLETED, FAILED})
SLOT_ATTEMPTS = 3  # a start whose slot holder finished before it could be named is retried
_EVENT_FOR: dict[TaskStatus, EventType] = {
    IN_PROGRESS: EventType.TASK_STARTED,
    COMPLETED: EventType.TASK_COMPLETED,
    FAILED: EventType.TASK_FAILED,
    CANCELLED: EventType.TASK_CANCELLED,
}


def task_record(task: Task) -> dict[str, Any]:
    """A task as the API shows it (and the export writes it), JSON-ready."""
    return TaskPublic.model_validate(task, from_attributes=True).model_dump(mode="json")


@dataclass(frozen=True)
class TaskChange:
    task: Task
    changed: bool  # False: the task already was as asked (nothing written, no event)


@dataclass(frozen=True)
class TaskFilters:
    namespace_ids: Sequence[str] | None = None
    agent_id: str | None = None
    user_id: str | None = None
    thread_id: str | None = None
    statuses: Sequence[TaskStatus] | None = None
    parent_task_id: str | None = None


class TaskService:
    """All work on tasks; the routes and the context call use these methods."""

    def __init__(self, db: Database, settings: Settings):
        self._db = db
        self._settings = settings

    # ---- writes ------------------------------------------------------------------------------

    def create(self, principal: Principal, body: TaskCreate) -> Task:
        """Store a task (pending, or started at once); 409 when it would be a second task in
        progress in its scope. With an Idempotency-Key, the response is stored with it."""
        self._check_limits(body.description, body.context, None)
        for _ in range(SLOT_ATTEMPTS):
            try:
                return self._insert(principal, body)
            except IntegrityError:
                if body.status != IN_PROGRESS:
                    raise Conflict(
                        "The task collided with a concurrent change (its parent was deleted?); "
                        "retry the request.",
                        code="task_write_conflict",
                    ) from None
                namespace_id, agent_id = self._placement(principal, body)
                self._raise_if_held(namespace_id, agent_id, body.thread_id)
        raise _slot_churn()

    def _insert(self, principal: Principal, body: TaskCreate) -> Task:
        now = utcnow()
        with self._db.write() as session:
            namespace = self._namespace(session, principal, body.namespace_id)
            if body.parent_task_id is not None:
                parent = session.get(Task, body.parent_task_id)
                if parent is None or parent.namespace_id != namespace.id:
                    raise InvalidRequest(
                        f"Parent task {body.parent_task_id!r} is not a task of namespace "
                        f"{namespace.id!r}.",
                        code="invalid_parent_task",
                    )
            started = body.status == IN_PROGRESS
            task = Task(
                id=new_id("tsk"),
                namespace_id=namespace.id,
                agent_id=principal.agent_id or namespace.owner_agent_id,
                author_agent_id=principal.agent_id,
                user_id=body.user_id,
                thread_id=body.thread_id,
                parent_task_id=body.parent_task_id,
                title=body.title,
                description=body.description,
                context=body.context,
                priority=body.priority,
                status=body.status.value,
                created_at=now,
                updated_at=now,
                started_at=now if started else None,
                version=1,
            )
            session.add(task)
            session.flush()  # the in-progress index speaks here
            record_response(session, task)
            append_events(session, Actor.of(principal), [_event(EventType.TASK_CREATED, task)])
        return task

    def update(
        self, principal: Principal, task_id: str, change: TaskUpdate, expected_version: int
    ) -> TaskChange:
        """Apply `change` if the task is still at `expected_version`; a change to what already
        is returns the task unchanged at any version. 409 for a transition `TRANSITIONS` does not
        allow, a change to a final task, or a start while another task holds the slot."""
        fields = change.model_fields_set
        self._check_limits(
            change.description if "description" in fields else None,
            change.context,
            change.result if "result" in fields else None,
        )
        for _ in range(SLOT_ATTEMPTS):
            try:
                return self._apply(principal, task_id, change, expected_version)
            except IntegrityError:
                with self._db.read() as session:
                    task = authorize_task(session, principal, task_id, Action.WRITE)
                self._raise_if_held(task.namespace_id, task.agent_id, task.thread_id)
        raise _slot_churn()

    def _apply(
        self, principal: Principal, task_id: str, change: TaskUpdate, expected_version: int
    ) -> TaskChange:
        with self._db.write() as session:
            task = authorize_task(session, principal, task_id, Action.WRITE)
            values = _differences(task, change)
            if not values:
                return TaskChange(task, changed=False)
            current = TaskStatus(task.status)
            target = TaskStatus(values.get("status", current))
            if current in FINAL:  # final at any version: say so rather than ask for a re-read
                _check_transition(task, current, target, values)
            if task.version != expected_version:
                raise PreconditionFailed(
                    f"Task {task_id!r} is at version {task.version}, not {expected_version}; "
                    "re-read it and retry.",
                )
            _check_transition(task, current, target, values)
            now = utcnow()
            values.update(version=task.version + 1, updated_at=now)
            if target != current:
                values.update(_entering(target, now))
            result = session.exec(
                update(Task)
                .where(col(Task.id) == task_id, col(Task.version) == expected_version)
                .values(**values)
            )
            if result.rowcount != 1:
                raise PreconditionFailed(
                    f"Task {task_id!r} changed while updating; re-read it and retry."
                )
            session.refresh(task)
            kind = _event_type(current, target)
            changed = sorted(
                name for name in values if name not in ("version", "updated_at", "status")
            )
            append_events(
                session,
                Actor.of(principal),
                [_event(kind, task, previous_status=current.value, fields=changed)],
            )
        return TaskChange(task, changed=True)

    def delete(self, principal: Principal, task_id: str) -> tuple[Task, datetime]:
        """Delete a task for good (its event stays); 409 while it has subtasks."""
        with self._db.write() as session:
            task = authorize_task(session, principal, task_id, Action.WRITE)
            children = session.exec(
                select(func.count()).select_from(Task).where(col(Task.parent_task_id) == task_id)
            ).one()
            if children:
                raise Conflict(
                    f"Task {task_id!r} has {children} subtasks; delete them first.",
                    code="task_has_subtasks",
                )
            session.exec(delete(Task).where(col(Task.id) == task_id))
            append_events(session, Actor.of(principal), [_event(EventType.TASK_DELETED, task)])
        return task, utcnow()

    # ---- reads -------------------------------------------------------------------------------

    def get(self, principal: Principal, task_id: str) -> Task:
        """One task the caller may read."""
        with self._db.read() as session:
            return authorize_task(session, principal, task_id, Action.READ)

    def list_page(
        self, principal: Principal, filters: TaskFilters, *, limit: int, cursor: str | None
    ) -> tuple[list[Task], str | None]:
        """A page of the tasks the caller may read, oldest first (the order they were planned),
        and the cursor of the next page."""
        with self._db.read() as session:
            namespace_ids = scope_namespace_ids(session, principal, filters.namespace_ids)
            if not namespace_ids:
                return [], None
            query = select(Task).where(col(Task.namespace_id).in_(namespace_ids))
            for column, value in (
                (Task.agent_id, filters.agent_id),
                (Task.user_id, filters.user_id),
                (Task.thread_id, filters.thread_id),
                (Task.parent_task_id, filters.parent_task_id),
            ):
                if value is not None:
                    query = query.where(col(column) == value)
            if filters.statuses:
                query = query.where(col(Task.status).in_([s.value for s in filters.statuses]))
            if cursor is not None:
                created_at, last_id = _decode_cursor(cursor)
                query = query.where(
                    or_(
                        col(Task.created_at) > created_at,
                        and_(col(Task.created_at) == created_at, col(Task.id) > last_id),
                    )
                )
            query = query.order_by(col(Task.created_at), col(Task.id)).limit(limit + 1)
            rows = list(session.exec(query).all())
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return rows[:limit], next_cursor

    # ---- helpers -----------------------------------------------------------------------------

    def _check_limits(
        self, description: str | None, context: dict[str, Any] | None, result: Any
    ) -> None:
        limit = self._settings.max_content_chars
        if description is not None and len(description) > limit:
            raise PayloadTooLarge(
                f"description has {len(description)} characters; the limit is {limit}.",
                code="content_too_large",
            )
        limits = self._settings.metadata_limits
        if context is not None:
            limits.check(context, "The task's context")
        if result is not None:
            limits.check(result, "The task's result")

    def _namespace(
        self, session: Session, principal: Principal, namespace_id: str | None
    ) -> Namespace:
        if namespace_id is None and principal.agent_id is not None:
            agent = session.get(Agent, principal.agent_id)
            namespace_id = agent.default_namespace_id if agent else None
        if namespace_id is None:
            raise InvalidRequest(
                "namespace_id is required when the caller has no default namespace.",
                code="namespace_required",
            )
        return authorize_namespace(session, principal, namespace_id, Action.WRITE)

    def _placement(self, principal: Principal, body: TaskCreate) -> tuple[str, str]:
        with self._db.read() as session:
            namespace = self._namespace(session, principal, body.namespace_id)
        return namespace.id, principal.agent_id or namespace.owner_agent_id

    def _raise_if_held(self, namespace_id: str, agent_id: str, thread_id: str | None) -> None:
        """Raise 409 with the task in progress in this scope; return if none is (any more)."""
        with self._db.read() as session:
            holder = session.exec(
                select(Task).where(*_slot(namespace_id, agent_id, thread_id))
            ).first()
        if holder is None:
            return
        where = f"thread {thread_id!r}" if thread_id is not None else "no thread"
        raise Conflict(
            f"Task {holder.id!r} is already in progress for agent {agent_id!r} ({where}) in "
            f"namespace {namespace_id!r}; finish, pause or cancel it first.",
            code="another_task_in_progress",
            extra={"task": task_record(holder)},
        )


def open_tasks(
    session: Session,
    namespace_ids: Sequence[str],
    *,
    agent_id: str | None,
    thread_id: str | None,
    max_pending: int,
) -> list[Task]:
    """What an agent is doing and will do next, for the context call: its tasks in progress, then
    up to `max_pending` pending ones, the highest priority and then the oldest first. Of one
    thread when `thread_id` is given; of the agent's (or, `agent_id` None, every agent's)."""
    if not namespace_ids:
        return []
    scope: list[ColumnElement[bool]] = [col(Task.namespace_id).in_(namespace_ids)]
    if agent_id is not None:
        scope.append(col(Task.agent_id) == agent_id)
    if thread_id is not None:
        scope.append(col(Task.thread_id) == thread_id)
    running = session.exec(
        select(Task)
        .where(*scope, col(Task.status) == IN_PROGRESS.value)
        .order_by(col(Task.started_at).desc(), col(Task.id))
        .limit(50)
    ).all()
    pending = (
        session.exec(
            select(Task)
            .where(*scope, col(Task.status) == PENDING.value)
            .order_by(col(Task.priority).desc(), col(Task.created_at), col(Task.id))
            .limit(max_pending)
        ).all()
        if max_pending
        else []
    )
    return [*running, *pending]


def _slot(namespace_id: str, agent_id: str, thread_id: str | None) -> list[Any]:
    same_thread = (
        col(Task.thread_id).is_(None) if thread_id is None else col(Task.thread_id) == thread_id
    )
    return [
        col(Task.namespace_id) == namespace_id,
        col(Task.agent_id) == agent_id,
        same_thread,
        col(Task.status) == IN_PROGRESS.value,
    ]


def _differences(task: Task, change: TaskUpdate) -> dict[str, Any]:
    """The fields `change` would set to something other than what the task holds."""
    fields = change.model_fields_set
    wanted: dict[str, Any] = {}
    for name in ("title", "context", "priority"):
        value = getattr(change, name)
        if name in fields and value is not None:
            wanted[name] = value
    if "status" in fields and change.status is not None:
        wanted["status"] = change.status.value
    for name in ("description", "result"):  # null clears these
        if name in fields:
            wanted[name] = getattr(change, name)
    return {name: value for name, value in wanted.items() if getattr(task, name) != value}


def _check_transition(
    task: Task, current: TaskStatus, target: TaskStatus, values: dict[str, Any]
) -> None:
    if current in FINAL:
        if current == COMPLETED and target == COMPLETED and "result" in values:
            raise Conflict(
                f"Task {task.id!r} is already completed with a different result.",
                code="task_already_completed",
            )
        if target != current:
            raise _bad_transition(task, current, target)
        raise Conflict(
            f"Task {task.id!r} is {current.value}; a {current.value} task does not change.",
            code="task_finished",
        )
    if target != current and target not in TRANSITIONS[current]:
        raise _bad_transition(task, current, target)
    if "result" in values and values["result"] is not None and target not in WITH_RESULT:
        raise InvalidRequest(
            "A result goes with status completed or failed.", code="result_needs_outcome"
        )


def _bad_transition(task: Task, current: TaskStatus, target: TaskStatus) -> Conflict:
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (it is final)"
    return Conflict(
        f"Task {task.id!r} is {current.value}; it cannot become {target.value}. "
        f"Allowed from {current.value}: {allowed}.",
        code="invalid_task_transition",
    )


def _entering(target: TaskStatus, now: datetime) -> dict[str, Any]:
    """The timestamps (and cleared outcome) that entering `target` sets."""
    if target == IN_PROGRESS:
        return {"started_at": now, "finished_at": None, "result": None}
    if target == PENDING:
        return {"finished_at": None, "result": None}
    return {"finished_at": now}


def _event_type(current: TaskStatus, target: TaskStatus) -> EventType:
    if target == current:
        return EventType.TASK_UPDATED
    if target == PENDING:
        return EventType.TASK_PAUSED if current == IN_PROGRESS else EventType.TASK_REOPENED
    return _EVENT_FOR[target]


def _event(kind: EventType, task: Task, **details: Any) -> PendingEvent:
    """An event about `task`: its status, version, agent and thread; never its text."""
    base: dict[str, Any] = {
        "status": task.status,
        "version": task.version,
        "agent_id": task.agent_id,
        "thread_id": task.thread_id,
    }
    base.update({name: value for name, value in details.items() if value is not None})
    return PendingEvent(kind, task.namespace_id, details=base, task_id=task.id)


def _slot_churn() -> Conflict:
    return Conflict(
        "The in-progress slot kept changing hands while this request ran; retry it.",
        code="task_write_conflict",
        headers={"Retry-After": "1"},
    )


def _encode_cursor(task: Task) -> str:
    raw = json.dumps([task.created_at.isoformat(), task.id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, task_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), str(task_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest(
            "cursor is not one this server issued.", code="invalid_cursor"
        ) from None
