"""Job leases: when several server processes share one database, one of them runs a job at a time.

A lease is a row (name, holder, expires_at). Taking it is one atomic statement: an UPDATE that
succeeds only when the lease has expired or is already ours, else an INSERT that the primary key
lets only one process win. A holder renews while it works; a crashed holder's lease simply expires.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from ..db import Database
from ..models import JobLease, utcnow

log = logging.getLogger(__name__)


def holder_id() -> str:
    """A name for this process (and object) that no other lease holder shares."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One named lease, taken and renewed by one holder."""

    def __init__(self, db: Database, name: str, *, ttl: timedelta, holder: str | None = None):
        self._db = db
        self.name = name
        self.ttl = ttl
        self.holder = holder or holder_id()

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True when we hold it now."""
        now = utcnow()
        with self._db.write() as session:
            taken = session.exec(
                update(JobLease)
                .where(
                    col(JobLease.name) == self.name,
                    or_(col(JobLease.expires_at) < now, col(JobLease.holder) == self.holder),
                )
                .values(holder=self.holder, expires_at=now + self.ttl)
            )
            if taken.rowcount == 1:
                return True
        try:
            with self._db.write() as session:
                session.add(JobLease(name=self.name, holder=self.holder, expires_at=now + self.ttl))
        except IntegrityError:
            return False
        return True

    def renew(self) -> bool:
        """Extend the lease; False when it was lost (expired and taken by another holder)."""
        with self._db.write() as session:
            renewed = session.exec(
                update(JobLease)
                .where(col(JobLease.name) == self.name, col(JobLease.holder) == self.holder)
                .values(expires_at=utcnow() + self.ttl)
            )
            return bool(renewed.rowcount == 1)

    def release(self) -> None:
        """Give the lease up at once, if we still hold it."""
        with self._db.write() as session:
            session.exec(
                update(JobLease)
                .where(col(JobLease.name) == self.name, col(JobLease.holder) == self.holder)
                .values(expires_at=utcnow())
            )


@contextmanager
def holding(lease: Lease) -> Iterator[bool]:
    """Hold `lease` for the body, renewed every third of its term; yields False (and runs the
    body without it) when another holder has it."""
    if not lease.acquire():
        yield False
        return
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(lease.ttl.total_seconds() / 3):
            try:
                if not lease.renew():
                    log.warning("lost the %s lease", lease.name)
                    return
            except Exception:
                log.exception("could not renew the %s lease", lease.name)

    renewer = threading.Thread(target=keep, daemon=True, name=f"{lease.name}-lease")
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join()
        lease.release()
