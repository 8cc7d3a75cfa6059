"""Idempotency keys: a retried POST gets the first response back instead of writing twice.

The key is claimed (a pending row) before the work starts, so two concurrent requests with one key
cannot both write: the second is told the first is still in progress. A claim left behind by a
crashed request expires after `STALE_AFTER`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from ..db import Database
from ..errors import Conflict, InvalidRequest
from ..models import IdempotencyRecord, utcnow

STALE_AFTER = timedelta(minutes=2)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    replayed: bool


def request_fingerprint(method: str, path: str, body: Any) -> str:
    payload = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class IdempotencyService:
    def __init__(self, db: Database):
        self._db = db

    def run(
        self,
        principal_id: str,
        key: str,
        fingerprint: str,
        work: Callable[[], tuple[int, Any]],
    ) -> StoredResponse:
        """Run `work` once per (caller, key); a repeat with the same request replays its answer."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
                code="invalid_idempotency_key",
            )
        previous = self._claim(principal_id, key, fingerprint)
        if previous is not None:
            return previous
        try:
            status_code, body = work()
        except BaseException:
            self._release(principal_id, key)
            raise
        with self._db.write() as session:
            record = session.get(IdempotencyRecord, (principal_id, key))
            if record is not None:
                record.status_code = status_code
                record.response_body = body
                session.add(record)
        return StoredResponse(status_code, body, replayed=False)

    def _claim(self, principal_id: str, key: str, fingerprint: str) -> StoredResponse | None:
        try:
            with self._db.write() as session:
                record = session.get(IdempotencyRecord, (principal_id, key))
                if record is None:
                    session.add(
                        IdempotencyRecord(
                            principal=principal_id,
                            key=key,
                            request_hash=fingerprint,
                            created_at=utcnow(),
                        )
                    )
                    return None
                if record.request_hash != fingerprint:
                    raise InvalidRequest(
                        "This Idempotency-Key was already used for a different request.",
                        code="idempotency_key_reused",
                    )
                if record.status_code is not None:
                    return StoredResponse(record.status_code, record.response_body, replayed=True)
                if utcnow() - record.created_at > STALE_AFTER:
                    record.created_at = utcnow()
                    session.add(record)
                    return None
        except IntegrityError:
            pass  # a concurrent request claimed the key between our read and insert
        raise Conflict(
            "A request with this Idempotency-Key is still in progress; retry shortly.",
            code="idempotency_in_progress",
            headers={"Retry-After": "1"},
        )

    def _release(self, principal_id: str, key: str) -> None:
        with self._db.write() as session:
            record = session.get(IdempotencyRecord, (principal_id, key))
            if record is not None and record.status_code is None:
                session.delete(record)
