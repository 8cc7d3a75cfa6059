"""The permission rule. Every read and write path asks `allowed_actions`, through the helpers below.

A caller who may not read a namespace gets the same answer for it as for one that does not exist,
so ids cannot be probed; a caller who may read but not write gets 403.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .auth import Principal
from .errors import NotFound, PermissionDenied
from .models import Grant, Memory, Namespace, Task


class Action(StrEnum):
    READ = "read"
    WRITE = "write"
    MANAGE = "manage"


_BY_GRANT = {
    "read": frozenset({Action.READ}),
    "write": frozenset({Action.READ, Action.WRITE}),
}
_ALL = frozenset(Action)


class OwnedNamespace(Protocol):
    """What the rule needs to know of a namespace: a `Namespace`, or a row read for the rule."""

    @property
    def id(self) -> str: ...

    @property
    def owner_agent_id(self) -> str: ...


def allowed_actions(
    principal: Principal, namespace: OwnedNamespace, grant_permission: str | None
) -> frozenset[Action]:
    """The one rule: what `principal` may do in `namespace`, given its grant there (if any)."""
    if principal.is_admin:
        return _ALL
    if principal.namespace_ids is not None and namespace.id not in principal.namespace_ids:
        return frozenset()
    if namespace.owner_agent_id == principal.agent_id:
        actions = _ALL
    else:
        actions = _BY_GRANT.get(grant_permission or "", frozenset())
    if principal.read_only:
        actions = actions & {Action.READ}
    return actions


def authorize_agent_change(principal: Principal, doing: str) -> None:
    """The rule for changes to the agent itself (a new namespace, revoking another of its keys):
    only a key that may do everything its agent may. A read-only key, or one limited to some
    namespaces, can neither widen its agent's powers nor cut them."""
    if principal.is_admin:
        return
    if principal.read_only:
        raise PermissionDenied(f"A read-only key cannot {doing}.")
    if principal.namespace_ids is not None:
        raise PermissionDenied(
            f"A key limited to some namespaces cannot {doing}; use an unrestricted key of the "
            "agent.",
            code="key_scope_limited",
        )


def _grant_permission(session: Session, principal: Principal, namespace_id: str) -> str | None:
    if principal.agent_id is None:
        return None
    grant = session.exec(
        select(Grant).where(
            Grant.namespace_id == namespace_id, Grant.agent_id == principal.agent_id
        )
    ).first()
    return grant.permission if grant else None


def authorize_namespace(
    session: Session, principal: Principal, namespace_id: str, action: Action
) -> Namespace:
    """The namespace, if `principal` may do `action` in it; else NotFound or PermissionDenied."""
    namespace = session.get(Namespace, namespace_id)
    actions = (
        allowed_actions(principal, namespace, _grant_permission(session, principal, namespace_id))
        if namespace is not None
        else frozenset()
    )
    if namespace is None or Action.READ not in actions:
        raise NotFound(f"Namespace {namespace_id!r} was not found.", code="namespace_not_found")
    if action not in actions:
        raise PermissionDenied(
            f"This key may not {action.value} in namespace {namespace_id!r}.",
        )
    return namespace


def authorize_memory(
    session: Session, principal: Principal, memory_id: str, action: Action
) -> Memory:
    """The memory, if `principal` may do `action` on it; a memory it may not read is 'not found'."""
    memory = session.get(Memory, memory_id)
    if memory is None:
        raise NotFound(f"Memory {memory_id!r} was not found.", code="memory_not_found")
    try:
        authorize_namespace(session, principal, memory.namespace_id, action)
    except NotFound:
        raise NotFound(f"Memory {memory_id!r} was not found.", code="memory_not_found") from None
    return memory


def authorize_task(session: Session, principal: Principal, task_id: str, action: Action) -> Task:
    """The task, if `principal` may do `action` on it (the rule of its namespace, as for a
    memory); a task it may not read is 'not found'."""
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"Task {task_id!r} was not found.", code="task_not_found")
    try:
        authorize_namespace(session, principal, task.namespace_id, action)
    except NotFound:
        raise NotFound(f"Task {task_id!r} was not found.", code="task_not_found") from None
    return task


@dataclass(frozen=True, slots=True)
class _NamespaceRow:
    id: str
    owner_agent_id: str


_NAMESPACES: sa.Table = Namespace.__table__  # type: ignore[attr-defined]
_GRANTS: sa.Table = Grant.__table__  # type: ignore[attr-defined]
# Built once: every search and context call asks it (SQLAlchemy keeps the compiled form).
_ALL_NAMESPACE_IDS = sa.select(_NAMESPACES.c.id)
# Two indexed lookups (by owner; by grantee), not one join with an OR across both tables, which
# would scan every namespace on each call.
_OWNED_OR_GRANTED = sa.union_all(
    sa.select(_NAMESPACES.c.id, _NAMESPACES.c.owner_agent_id, sa.null().label("permission")).where(
        _NAMESPACES.c.owner_agent_id == sa.bindparam("agent_id")
    ),
    sa.select(_NAMESPACES.c.id, _NAMESPACES.c.owner_agent_id, _GRANTS.c.permission)
    .join(_GRANTS, _GRANTS.c.namespace_id == _NAMESPACES.c.id)
    .where(_GRANTS.c.agent_id == sa.bindparam("agent_id")),
)


def _readable_by_agent(session: Session, principal: Principal) -> dict[str, str | None]:
    """For an agent (not the admin): each namespace it may read, with its grant there (None
    where it owns it). One query of plain rows (owned or granted), judged by `allowed_actions`."""
    rows = session.connection().execute(_OWNED_OR_GRANTED, {"agent_id": principal.agent_id})
    return {
        row.id: row.permission
        for row in rows
        if Action.READ
        in allowed_actions(principal, _NamespaceRow(row.id, row.owner_agent_id), row.permission)
    }


def readable_namespaces(session: Session, principal: Principal) -> list[tuple[Namespace, str]]:
    """Every namespace `principal` may read, with its permission there (owner/write/read/admin),
    in id order."""
    if principal.is_admin:
        namespaces = session.exec(select(Namespace)).all()
        return [(ns, "admin") for ns in sorted(namespaces, key=lambda ns: ns.id)]
    readable = _readable_by_agent(session, principal)
    if not readable:
        return []
    namespaces = session.exec(select(Namespace).where(col(Namespace.id).in_(list(readable)))).all()
    return [
        (namespace, _label(principal, namespace, readable[namespace.id]))
        for namespace in sorted(namespaces, key=lambda ns: ns.id)
    ]


def readable_namespace_ids(session: Session, principal: Principal) -> list[str]:
    """The ids of the namespaces `readable_namespaces` lists, in the same order, without loading
    the namespaces: what search and context scope to."""
    if principal.is_admin:
        return sorted(session.connection().scalars(_ALL_NAMESPACE_IDS))
    return sorted(_readable_by_agent(session, principal))


def namespace_permission(session: Session, principal: Principal, namespace: Namespace) -> str:
    """The caller's access to a namespace it may read: owner, write, read or admin."""
    return _label(principal, namespace, _grant_permission(session, principal, namespace.id))


def _label(principal: Principal, namespace: OwnedNamespace, grant_permission: str | None) -> str:
    if principal.is_admin:
        return "admin"
    if namespace.owner_agent_id == principal.agent_id:
        return "owner" if not principal.read_only else "read"
    if principal.read_only:
        return "read"
    return grant_permission or "read"


def scope_namespace_ids(
    session: Session, principal: Principal, requested: Iterable[str] | None
) -> list[str]:
    """The namespaces a read may cover: the requested ones (each checked), or all readable ones."""
    if requested is not None:
        ids = list(dict.fromkeys(requested))
        for namespace_id in ids:
            authorize_namespace(session, principal, namespace_id, Action.READ)
        return ids
    return readable_namespace_ids(session, principal)
