"""Tasks: create, read, list, change (optimistic, along the allowed transitions), delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from ..models import Task
from ..schemas import (
    TaskConflict,
    TaskCreate,
    TaskDeleted,
    TaskPublic,
    TasksPublic,
    TaskStatus,
    TaskUpdate,
)
from ..services.tasks import TaskFilters
from .deps import (
    AuditDep,
    IdempotencyKey,
    IfMatch,
    PrincipalDep,
    RuntimeDep,
    error_responses,
    expected_version,
    respond_once,
)

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": TaskConflict,
        "description": "another_task_in_progress (with the `task` holding the slot), "
        "invalid_task_transition, task_already_completed, task_finished or task_has_subtasks",
    }
}
router = APIRouter(
    prefix="/v1/tasks",
    tags=["tasks"],
    responses={**error_responses(404, 412, 413, 428), **_CONFLICT},
)


def task_public(task: Task) -> TaskPublic:
    return TaskPublic.model_validate(task, from_attributes=True)


def _etag(task: Task) -> dict[str, str]:
    return {"ETag": f'"{task.version}"'}


@router.post("", status_code=201, response_model=TaskPublic)
def create_task(
    body: TaskCreate,
    request: Request,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Plan a task for the calling agent (pending), or start it at once (`in_progress`).

    409 `another_task_in_progress`, with the holder in `task`, when the agent already has a task
    in progress in the same namespace and thread.
    """

    def work() -> Task:
        task = runtime.tasks.create(principal, body)
        audit.wrote("create_task", [task.namespace_id])
        return task

    def render(task: Task) -> tuple[int, TaskPublic]:
        return 201, task_public(task)

    return respond_once(runtime, principal, request, idempotency_key, body, work, render)


@router.get("", response_model=TasksPublic)
def list_tasks(
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    namespace_id: Annotated[list[str] | None, Query(max_length=100)] = None,
    agent_id: str | None = None,
    user_id: str | None = None,
    thread_id: str | None = None,
    status: Annotated[list[TaskStatus] | None, Query(max_length=5)] = None,
    parent_task_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> TasksPublic:
    """Tasks the caller may read, oldest first (the order they were planned), filtered; follow
    `next_cursor` for more."""
    filters = TaskFilters(
        namespace_ids=namespace_id,
        agent_id=agent_id,
        user_id=user_id,
        thread_id=thread_id,
        statuses=status,
        parent_task_id=parent_task_id,
    )
    rows, next_cursor = runtime.tasks.list_page(principal, filters, limit=limit, cursor=cursor)
    audit.read("list_tasks", [t.namespace_id for t in rows])
    return TasksPublic(data=[task_public(t) for t in rows], next_cursor=next_cursor)


@router.get("/{task_id}", response_model=TaskPublic)
def get_task(
    task_id: str, response: Response, runtime: RuntimeDep, principal: PrincipalDep, audit: AuditDep
) -> TaskPublic:
    """One task; its `ETag` is the version that `PATCH` expects in `If-Match`."""
    task = runtime.tasks.get(principal, task_id)
    audit.read("get_task", [task.namespace_id])
    response.headers.update(_etag(task))
    return task_public(task)


@router.patch("/{task_id}", response_model=TaskPublic)
def update_task(
    task_id: str,
    body: TaskUpdate,
    response: Response,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
    if_match: IfMatch = None,
) -> TaskPublic:
    """Change a task still at the version in `If-Match` (412 if not); `status` moves it along
    the allowed transitions (409 `invalid_task_transition` otherwise).

    A change to what already is (completing a completed task with the same result, starting the
    task in progress) writes nothing and returns the task, at any version: a retry is safe.
    """
    outcome = runtime.tasks.update(principal, task_id, body, expected_version(if_match, "task"))
    if outcome.changed:
        audit.wrote("update_task", [outcome.task.namespace_id])
    response.headers.update(_etag(outcome.task))
    return task_public(outcome.task)


@router.delete("/{task_id}", response_model=TaskDeleted)
def delete_task(
    task_id: str, runtime: RuntimeDep, principal: PrincipalDep, audit: AuditDep
) -> TaskDeleted:
    """Delete a task for good (409 `task_has_subtasks` while it has subtasks)."""
    task, deleted_at = runtime.tasks.delete(principal, task_id)
    audit.wrote("delete_task", [task.namespace_id])
    return TaskDeleted(id=task.id, namespace_id=task.namespace_id, deleted_at=deleted_at)
