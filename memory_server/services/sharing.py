"""Sharing: a namespace's owner grants other agents `read` or `write` on it, and revokes them.

Grants are read from SQL on every request (see `access.py`), so a change takes effect on the next
request; nothing caches them.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ..access import Action, authorize_namespace
from ..auth import Principal
from ..db import Database
from ..errors import Conflict, InvalidRequest, NotFound
from ..models import Agent, Grant, Namespace, new_id, utcnow
from ..schemas import GrantCreate
from .events import Actor, EventType, PendingEvent, append_events

GRANT_ATTEMPTS = 2


class SharingService:
    def __init__(self, db: Database):
        self._db = db

    def grant(
        self, principal: Principal, namespace_id: str, request: GrantCreate
    ) -> tuple[Grant, bool]:
        """Give an agent `read` or `write` on a namespace; re-granting changes the permission.

        Returns the grant and whether it is new. Only the owner (or the admin) may grant.
        """
        for _ in range(GRANT_ATTEMPTS):
            try:
                with self._db.write() as session:
                    namespace = authorize_namespace(session, principal, namespace_id, Action.MANAGE)
                    self._check_grantee(session, namespace, request.agent_id)
                    grant, created = self._upsert(session, namespace_id, request)
                    append_events(
                        session, Actor.of(principal), [_grant_event(EventType.SHARED, grant)]
                    )
                    return grant, created
            except IntegrityError:
                continue  # a concurrent grant to the same agent won; the next attempt updates it
        raise Conflict(
            "Concurrent grants to this agent kept colliding; retry.", code="grant_conflict"
        )

    def _check_grantee(self, session: Session, namespace: Namespace, agent_id: str) -> None:
        if agent_id == namespace.owner_agent_id:
            raise InvalidRequest(
                f"Agent {agent_id!r} owns namespace {namespace.id!r}; an owner needs no grant.",
                code="grantee_is_owner",
            )
        if session.get(Agent, agent_id) is None:
            raise InvalidRequest(f"Agent {agent_id!r} was not found.", code="agent_not_found")

    def _upsert(
        self, session: Session, namespace_id: str, request: GrantCreate
    ) -> tuple[Grant, bool]:
        grant = session.exec(
            select(Grant).where(
                Grant.namespace_id == namespace_id, Grant.agent_id == request.agent_id
            )
        ).first()
        created = grant is None
        if grant is None:
            grant = Grant(
                id=new_id("grt"),
                namespace_id=namespace_id,
                agent_id=request.agent_id,
                permission=request.permission.value,
                created_at=utcnow(),
            )
        else:
            grant.permission = request.permission.value
        session.add(grant)
        session.flush()
        return grant, created

    def list_grants(self, principal: Principal, namespace_id: str) -> list[Grant]:
        """The grants on a namespace, oldest first; only for its owner (or the admin)."""
        with self._db.read() as session:
            authorize_namespace(session, principal, namespace_id, Action.MANAGE)
            return list(
                session.exec(
                    select(Grant)
                    .where(Grant.namespace_id == namespace_id)
                    .order_by(col(Grant.created_at), col(Grant.id))
                ).all()
            )

    def revoke(self, principal: Principal, namespace_id: str, grant_id: str) -> Grant:
        """Delete a grant; the agent loses access on its very next request."""
        with self._db.write() as session:
            authorize_namespace(session, principal, namespace_id, Action.MANAGE)
            grant = session.get(Grant, grant_id)
            if grant is None or grant.namespace_id != namespace_id:
                raise NotFound(f"Grant {grant_id!r} was not found.", code="grant_not_found")
            session.delete(grant)
            append_events(session, Actor.of(principal), [_grant_event(EventType.REVOKED, grant)])
            return grant


def _grant_event(kind: EventType, grant: Grant) -> PendingEvent:
    details = {"grant_id": grant.id, "agent_id": grant.agent_id, "permission": grant.permission}
    return PendingEvent(kind, grant.namespace_id, None, details)
