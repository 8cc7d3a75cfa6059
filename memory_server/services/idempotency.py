"""Idempotency keys: a retried POST gets the first response back instead of writing twice.

A request carrying a key first claims it: a pending row with a fresh claim token, committed before
the work starts, so a concurrent request with the same key is told the first is still in
progress. The response is then stored *inside the write's own transaction*: a write path calls
`record_response(session, result)` before it commits, which fills in the pending row only while
the claim is still this request's. The write and its stored response therefore commit together or
not at all, whatever the timing of a crash:

- killed before the commit: nothing was written, the claim stays pending; a retry takes it over
  once it is abandoned (at the next start on SQLite, whose file has one server process; after
  `claim_timeout` on PostgreSQL, where other processes may still be working) and runs the work;
- killed after the commit: a retry finds the stored response and replays it.

A request that outlives its claim (another took it over) fails its write at `record_response`,
rolls back, and answers with whatever the request that took over stored.

Work that never calls `record_response` (a grant, an import, a summarisation run: each is
idempotent by nature) gets its response stored in a transaction of its own after the work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from ..db import Database
from ..errors import Conflict, InvalidRequest
from ..models import IdempotencyRecord, utcnow

DEFAULT_CLAIM_TIMEOUT = timedelta(seconds=30)
MAX_KEY_LENGTH = 255

Render = Callable[[Any], tuple[int, Any]]


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    replayed: bool


@dataclass
class _Claim:
    """The key this request holds, and how to turn its work's result into the stored response."""

    principal_id: str
    key: str
    token: str
    render: Render
    recorded: StoredResponse | None = None


_current_claim: ContextVar[_Claim | None] = ContextVar("idempotency_claim", default=None)


class ClaimLost(Conflict):
    """Another request took this key over while this one worked; nothing of this one is kept."""

    code = "idempotency_in_progress"


def request_fingerprint(method: str, path: str, body: Any) -> str:
    payload = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def record_response(session: Session, result: Any) -> None:
    """Store the response to the idempotent request that this write serves, in `session`'s
    transaction; a no-op when the request carries no key.

    `result` is what the request's work will return (the route's `render` turns it into the
    response). Raises `ClaimLost` when the claim is no longer this request's, so that the write
    rolls back.
    """
    claim = _current_claim.get()
    if claim is None:
        return
    status_code, body = claim.render(result)
    stored = _complete(session, claim, status_code, body)
    if not stored:
        raise ClaimLost(
            "Another request with this Idempotency-Key took it over; retry to get its answer.",
            headers={"Retry-After": "1"},
        )
    claim.recorded = StoredResponse(status_code, body, replayed=False)


def _complete(session: Session, claim: _Claim, status_code: int, body: Any) -> bool:
    result = session.execute(
        update(IdempotencyRecord)
        .where(
            col(IdempotencyRecord.principal) == claim.principal_id,
            col(IdempotencyRecord.key) == claim.key,
            col(IdempotencyRecord.claim_token) == claim.token,
            col(IdempotencyRecord.status_code).is_(None),
        )
        .values(status_code=status_code, response_body=body)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


class IdempotencyService:
    def __init__(self, db: Database, claim_timeout: timedelta = DEFAULT_CLAIM_TIMEOUT):
        self._db = db
        self._claim_timeout = claim_timeout

    def run(
        self,
        principal_id: str,
        key: str,
        fingerprint: str,
        work: Callable[[], Any],
        render: Render,
        *,
        recorded_by_work: bool,
    ) -> StoredResponse:
        """Run `work` once per (caller, key) and answer `render(result)`; a repeat with the same
        request replays the stored answer. `recorded_by_work`: the work's write path calls
        `record_response` with its result, inside its transaction; otherwise the answer is
        stored after the work."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidRequest(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters.",
                code="invalid_idempotency_key",
            )
        previous, token = self._claim(principal_id, key, fingerprint)
        if previous is not None:
            return previous
        claim = _Claim(principal_id, key, token, render)
        try:
            with _holding(claim) if recorded_by_work else contextlib.nullcontext():
                result = work()
        except ClaimLost:
            return self._replay_or_conflict(principal_id, key, fingerprint)
        except BaseException:
            self._release(claim)
            raise
        if claim.recorded is not None:
            return claim.recorded
        status_code, body = render(result)
        with self._db.write() as session:
            _complete(session, claim, status_code, body)
        return StoredResponse(status_code, body, replayed=False)

    def release_abandoned_claims(self) -> int:
        """Drop every pending claim: on SQLite at startup, when no request of the one process
        that serves the file can still hold one. Returns how many were dropped."""
        with self._db.write() as session:
            result = session.execute(
                delete(IdempotencyRecord).where(col(IdempotencyRecord.status_code).is_(None))
            )
        assert isinstance(result, CursorResult)
        return result.rowcount

    def _claim(
        self, principal_id: str, key: str, fingerprint: str
    ) -> tuple[StoredResponse | None, str]:
        token = secrets.token_hex(16)
        try:
            with self._db.write() as session:
                record = session.get(IdempotencyRecord, (principal_id, key))
                if record is None:
                    session.add(
                        IdempotencyRecord(
                            principal=principal_id,
                            key=key,
                            request_hash=fingerprint,
                            claim_token=token,
                            created_at=utcnow(),
                        )
                    )
                    return None, token
                stored = _stored(record, fingerprint)
                if stored is not None:
                    return stored, token
                if self._take_over(session, record, token):
                    return None, token
        except IntegrityError:
            pass  # a concurrent request claimed the key between our read and insert
        raise _in_progress()

    def _take_over(self, session: Session, record: IdempotencyRecord, token: str) -> bool:
        """Claim the key from an abandoned request: only if it is still pending and old enough,
        checked in the UPDATE itself so that two retries cannot both take it."""
        cutoff = utcnow() - self._claim_timeout
        if record.created_at > cutoff:
            return False
        result = session.execute(
            update(IdempotencyRecord)
            .where(
                col(IdempotencyRecord.principal) == record.principal,
                col(IdempotencyRecord.key) == record.key,
                col(IdempotencyRecord.status_code).is_(None),
                col(IdempotencyRecord.created_at) <= cutoff,
            )
            .values(claim_token=token, created_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    def _replay_or_conflict(self, principal_id: str, key: str, fingerprint: str) -> StoredResponse:
        with self._db.read() as session:
            record = session.get(IdempotencyRecord, (principal_id, key))
            stored = _stored(record, fingerprint) if record is not None else None
        if stored is None:
            raise _in_progress()
        return stored

    def _release(self, claim: _Claim) -> None:
        """A failed request gives its key back, so that a retry can run the work afresh."""
        with self._db.write() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    col(IdempotencyRecord.principal) == claim.principal_id,
                    col(IdempotencyRecord.key) == claim.key,
                    col(IdempotencyRecord.claim_token) == claim.token,
                    col(IdempotencyRecord.status_code).is_(None),
                )
            )


@contextmanager
def _holding(claim: _Claim) -> Iterator[None]:
    reset = _current_claim.set(claim)
    try:
        yield
    finally:
        _current_claim.reset(reset)


def _stored(record: IdempotencyRecord, fingerprint: str) -> StoredResponse | None:
    """The stored answer, if the key's request is finished; refuses a key reused for another
    request."""
    if record.request_hash != fingerprint:
        raise InvalidRequest(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
        )
    if record.status_code is None:
        return None
    return StoredResponse(record.status_code, record.response_body, replayed=True)


def _in_progress() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still in progress; retry shortly.",
        code="idempotency_in_progress",
        headers={"Retry-After": "1"},
    )
