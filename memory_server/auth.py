"""Who is calling: API keys (stored hashed, shown once), the admin key, the Principal."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from .config import Settings
from .errors import Unauthorized
from .models import ApiKey

log = logging.getLogger(__name__)

KEY_PREFIX = "mk_"
ADMIN_PRINCIPAL_ID = "admin"


@dataclass(frozen=True)
class Principal:
    """The caller of a request: an agent acting through one of its keys, or the admin."""

    agent_id: str | None
    key_id: str | None
    is_admin: bool = False
    read_only: bool = False
    namespace_ids: frozenset[str] | None = None

    @property
    def id(self) -> str:
        """A stable identifier for records kept per caller (idempotency, audit)."""
        return self.agent_id or ADMIN_PRINCIPAL_ID


ADMIN = Principal(agent_id=None, key_id=None, is_admin=True)


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """Keys are 256-bit random secrets, so one SHA-256 is enough: nothing to brute-force."""
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_admin_key(settings: Settings) -> str:
    """The admin key: from settings, else `<data dir>/admin.key`, generated there (0600) once."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.admin_key_path
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "mk_admin_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    log.warning("generated admin key into %s (mode 0600)", path.resolve())
    return key


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <key>'.")
    return token.strip()


_KEYS: sa.Table = ApiKey.__table__  # type: ignore[attr-defined]
# Every request looks its key up: one statement built once (SQLAlchemy keeps its compiled form),
# reading only what the check needs, as a row rather than an ORM object.
_KEY_BY_HASH = sa.select(
    _KEYS.c.id,
    _KEYS.c.agent_id,
    _KEYS.c.read_only,
    _KEYS.c.namespace_ids,
    _KEYS.c.expires_at,
    _KEYS.c.revoked_at,
).where(_KEYS.c.key_hash == sa.bindparam("key_hash"))


def authenticate(session: Session, token: str, admin_key: str) -> Principal:
    """Resolve a bearer token to its Principal, or raise Unauthorized."""
    if hmac.compare_digest(token.encode(), admin_key.encode()):
        return ADMIN
    found = session.connection().execute(_KEY_BY_HASH, {"key_hash": hash_api_key(token)})
    api_key = found.first()
    if api_key is None:
        raise Unauthorized("Invalid API key.", code="invalid_api_key")
    now = datetime.now(UTC)
    if api_key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.", code="api_key_revoked")
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("This API key has expired.", code="api_key_expired")
    return Principal(
        agent_id=api_key.agent_id,
        key_id=api_key.id,
        read_only=api_key.read_only,
        namespace_ids=frozenset(api_key.namespace_ids)
        if api_key.namespace_ids is not None
        else None,
    )
