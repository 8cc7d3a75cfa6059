"""Namespaces: the resources memories live in, each owned by one agent."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ..access import (
    Action,
    authorize_agent_change,
    authorize_namespace,
    namespace_permission,
    readable_namespaces,
)
from ..auth import Principal
from ..db import Database
from ..errors import Conflict, PermissionDenied
from ..models import Namespace, new_id, utcnow
from ..schemas import NamespaceCreate
from .idempotency import record_response


class NamespaceService:
    def __init__(self, db: Database):
        self._db = db

    def create(self, principal: Principal, request: NamespaceCreate) -> Namespace:
        """Create a namespace owned by the calling agent."""
        if principal.agent_id is None:
            raise PermissionDenied(
                "Namespaces are owned by agents; create it with the agent's key.",
                code="agent_required",
            )
        authorize_agent_change(principal, "create namespaces")
        namespace = Namespace(
            id=new_id("ns"),
            name=request.name,
            owner_agent_id=principal.agent_id,
            description=request.description,
            is_default=False,
            created_at=utcnow(),
        )
        try:
            with self._db.write() as session:
                session.add(namespace)
                session.flush()
                record_response(session, namespace)
        except IntegrityError:
            raise Conflict(
                f"You already own a namespace named {request.name!r}.", code="namespace_exists"
            ) from None
        return namespace

    def list_readable(self, principal: Principal) -> list[tuple[Namespace, str]]:
        """Every namespace the caller may read, with the caller's permission in each."""
        with self._db.read() as session:
            return readable_namespaces(session, principal)

    def get(self, principal: Principal, namespace_id: str) -> tuple[Namespace, str]:
        with self._db.read() as session:
            namespace = authorize_namespace(session, principal, namespace_id, Action.READ)
            return namespace, namespace_permission(session, principal, namespace)
