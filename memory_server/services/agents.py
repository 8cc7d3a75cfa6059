"""Agents and their API keys (admin work), and each agent's default namespace."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ..access import authorize_agent_change, readable_namespaces
from ..auth import Principal, generate_api_key, hash_api_key
from ..db import Database
from ..errors import Conflict, InvalidRequest, NotFound
from ..models import Agent, ApiKey, Namespace, new_id, utcnow
from ..schemas import AgentCreate, ApiKeyCreate
from .idempotency import record_response

DEFAULT_NAMESPACE_NAME = "default"


class AgentService:
    def __init__(self, db: Database):
        self._db = db

    def create_agent(self, request: AgentCreate) -> Agent:
        """Create an agent together with its private default namespace."""
        now = utcnow()
        agent = Agent(id=new_id("agt"), name=request.name, created_at=now)
        namespace = Namespace(
            id=new_id("ns"),
            name=DEFAULT_NAMESPACE_NAME,
            owner_agent_id=agent.id,
            description=f"Private memories of {request.name}",
            is_default=True,
            created_at=now,
        )
        agent.default_namespace_id = namespace.id
        try:
            with self._db.write() as session:
                session.add(agent)
                session.flush()
                session.add(namespace)
                session.flush()
                record_response(session, agent)
        except IntegrityError:
            raise Conflict(
                f"An agent named {request.name!r} already exists.", code="agent_exists"
            ) from None
        return agent

    def list_agents(self) -> list[Agent]:
        with self._db.read() as session:
            return list(session.exec(select(Agent).order_by(col(Agent.created_at))).all())

    def get_agent(self, agent_id: str) -> Agent:
        with self._db.read() as session:
            agent = session.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"Agent {agent_id!r} was not found.", code="agent_not_found")
        return agent

    def create_key(self, agent_id: str, request: ApiKeyCreate) -> tuple[ApiKey, str]:
        """Make a key for `agent_id`; returns the stored record and the secret (shown once)."""
        self.get_agent(agent_id)
        if request.expires_at is not None and request.expires_at <= utcnow():
            raise InvalidRequest("expires_at is in the past.", code="invalid_expiry")
        if request.namespace_ids is not None:
            self._check_key_namespaces(agent_id, request.namespace_ids)
        secret = generate_api_key()
        key = ApiKey(
            id=new_id("key"),
            agent_id=agent_id,
            name=request.name,
            key_hash=hash_api_key(secret),
            prefix=secret[:10],
            read_only=request.read_only,
            namespace_ids=request.namespace_ids,
            created_at=utcnow(),
            expires_at=request.expires_at,
        )
        with self._db.write() as session:
            session.add(key)
            session.flush()
            record_response(session, (key, secret))
        return key, secret

    def _check_key_namespaces(self, agent_id: str, namespace_ids: list[str]) -> None:
        """A key may be limited to namespaces its agent can read: its own, or shared with it.

        The limit only ever narrows: each request still checks the agent's own access, so a key
        limited to a shared namespace loses it the moment the grant is revoked.
        """
        agent = Principal(agent_id=agent_id, key_id=None)
        with self._db.read() as session:
            found = set(
                session.exec(select(Namespace.id).where(col(Namespace.id).in_(namespace_ids))).all()
            )
            readable = {namespace.id for namespace, _ in readable_namespaces(session, agent)}
        missing = [n for n in namespace_ids if n not in found]
        if missing:
            raise InvalidRequest(
                f"Unknown namespaces for the key: {', '.join(missing)}.", code="namespace_not_found"
            )
        foreign = [n for n in namespace_ids if n not in readable]
        if foreign:
            raise InvalidRequest(
                f"The agent neither owns nor has been granted: {', '.join(foreign)}.",
                code="namespace_not_shared",
            )

    def list_keys(self, agent_id: str) -> list[ApiKey]:
        self.get_agent(agent_id)
        with self._db.read() as session:
            return list(
                session.exec(
                    select(ApiKey)
                    .where(ApiKey.agent_id == agent_id)
                    .order_by(col(ApiKey.created_at))
                ).all()
            )

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKey:
        """Revoke a key: the admin may revoke any, an agent only its own. Takes effect at once."""
        with self._db.write() as session:
            key = session.get(ApiKey, key_id)
            if key is None or not (principal.is_admin or key.agent_id == principal.agent_id):
                raise NotFound(f"API key {key_id!r} was not found.", code="api_key_not_found")
            if key.id != principal.key_id:  # a key may always revoke itself
                authorize_agent_change(principal, "revoke the agent's other keys")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                session.add(key)
            return key
