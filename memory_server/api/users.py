"""Users (the people agents talk to): forgetting one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ..schemas import UserForgotten
from .deps import AuditDep, PrincipalDep, RuntimeDep, error_responses

router = APIRouter(prefix="/v1/users", tags=["users"], responses=error_responses(404))


@router.delete("/{user_id}/memories", response_model=UserForgotten)
def forget_user(
    user_id: str,
    namespace_id: Annotated[str, Query(min_length=1)],
    runtime: RuntimeDep,
    principal: PrincipalDep,
    audit: AuditDep,
) -> UserForgotten:
    """Delete every memory about this user in the namespace, summaries made from them included."""
    tombstones = runtime.memories.forget_user(principal, namespace_id, user_id)
    audit.wrote("forget_user", [t.namespace_id for t in tombstones] or [namespace_id])
    return UserForgotten(
        user_id=user_id, namespace_id=namespace_id, deleted=[t.memory_id for t in tombstones]
    )
