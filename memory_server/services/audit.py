"""The audit trail of shared memory: who other than a namespace's owner read or wrote it, and how.

Recording is cheap by design: the touched namespaces' owners (looked up once per namespace and
remembered), then (only when someone other than the owner touched one) one append-only insert with
a row per namespace. Owners working in their own namespaces write nothing. The trail is written
after the request's own transaction. A read is refused if its trail cannot be written, so nothing
is served unaudited; a write has already committed by then, so a failure to record it is logged
instead of failing a request whose retry would write twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from ..access import Action, authorize_namespace
from ..auth import Principal
from ..db import Database
from ..errors import InvalidRequest, StoreUnavailable
from ..models import Namespace, NamespaceAudit, utcnow

log = logging.getLogger(__name__)
MAX_REMEMBERED_OWNERS = 100_000


class AuditAction(StrEnum):
    READ = "read"
    WRITE = "write"


class AuditService:
    def __init__(self, db: Database):
        self._db = db
        # A namespace's owner never changes and ids are never reused, so owners are remembered:
        # most reads are by the owner, and then nothing needs to be queried.
        self._owners: dict[str, str] = {}

    def record(
        self,
        principal: Principal,
        namespace_ids: Iterable[str],
        action: AuditAction,
        *,
        operation: str,
        request_id: str | None = None,
    ) -> None:
        """Note access to `namespace_ids` (one id per memory) by anyone but each one's owner."""
        counts = Counter(namespace_ids)
        if not counts:
            return
        try:
            self._insert(principal, counts, action, operation, request_id)
        except SQLAlchemyError as exc:
            if action == AuditAction.READ:
                raise StoreUnavailable(
                    "The audit trail is unavailable, so shared memories are not served; retry."
                ) from exc
            log.exception("could not record %s by %s in the audit trail", operation, principal.id)

    def _insert(
        self,
        principal: Principal,
        counts: Counter[str],
        action: AuditAction,
        operation: str,
        request_id: str | None,
    ) -> None:
        owners = self._owners_of(list(counts))
        now = utcnow()
        rows = [
            NamespaceAudit(
                namespace_id=namespace_id,
                agent_id=principal.agent_id,
                key_id=principal.key_id,
                action=action.value,
                operation=operation,
                memory_count=count,
                request_id=request_id,
                created_at=now,
            )
            for namespace_id, count in sorted(counts.items())
            if namespace_id in owners and owners[namespace_id] != principal.agent_id
        ]
        if rows:
            with self._db.write() as session:
                session.add_all(rows)

    def _owners_of(self, namespace_ids: list[str]) -> dict[str, str]:
        unknown = [i for i in namespace_ids if i not in self._owners]
        if unknown:
            with self._db.read() as session:
                found = session.exec(
                    select(Namespace.id, Namespace.owner_agent_id).where(
                        col(Namespace.id).in_(unknown)
                    )
                ).all()
            if len(self._owners) > MAX_REMEMBERED_OWNERS:
                self._owners.clear()
            self._owners.update(found)
        return {i: self._owners[i] for i in namespace_ids if i in self._owners}

    def page(
        self,
        principal: Principal,
        namespace_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        agent_id: str | None = None,
    ) -> tuple[list[NamespaceAudit], str | None]:
        """A page of a namespace's trail, newest first, for its owner (or the admin)."""
        with self._db.read() as session:
            authorize_namespace(session, principal, namespace_id, Action.MANAGE)
            query = select(NamespaceAudit).where(NamespaceAudit.namespace_id == namespace_id)
            if agent_id is not None:
                query = query.where(NamespaceAudit.agent_id == agent_id)
            if cursor is not None:
                query = query.where(col(NamespaceAudit.id) < _decode_cursor(cursor))
            query = query.order_by(col(NamespaceAudit.id).desc()).limit(limit + 1)
            rows = list(session.exec(query).all())
        next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
        return rows[:limit], next_cursor


def _decode_cursor(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > 19:
        raise InvalidRequest("cursor is not one this server issued.", code="invalid_cursor")
    return int(cursor)


@dataclass(frozen=True)
class AuditTrail:
    """The audit service bound to one request: its caller and request id."""

    service: AuditService
    principal: Principal
    request_id: str | None

    def read(self, operation: str, namespace_ids: Iterable[str]) -> None:
        """Record that this request served memories from these namespaces (one id per memory)."""
        self.service.record(
            self.principal,
            namespace_ids,
            AuditAction.READ,
            operation=operation,
            request_id=self.request_id,
        )

    def wrote(self, operation: str, namespace_ids: Iterable[str]) -> None:
        """Record that this request wrote memories in these namespaces (one id per memory)."""
        self.service.record(
            self.principal,
            namespace_ids,
            AuditAction.WRITE,
            operation=operation,
            request_id=self.request_id,
        )
