"""Idempotency-Key under crashes and takeovers: a retried write is stored once, whatever the timing.

A killed process leaves its key pending; these tests make that state directly in SQL (the crash
harness, `bench/crash.py`, makes it with kill -9) and check what a retry gets.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, update
from sqlmodel import col, select

from memory_server.auth import Principal
from memory_server.errors import Conflict
from memory_server.models import IdempotencyRecord, Memory, utcnow
from memory_server.schemas import MemoryCreate
from memory_server.services.idempotency import request_fingerprint
from tests.conftest import LiveServer, server_settings, serving

BODY = {"content": "retried message", "kind": "message", "role": "user"}


def _abandon_claim(server: LiveServer, principal: str, key: str, age: timedelta) -> None:
    """The row a process killed mid-request leaves: claimed for this very request, no answer."""
    runtime = server.app.state.runtime
    fingerprint = request_fingerprint(
        "POST", "/v1/memories", MemoryCreate.model_validate(BODY).model_dump(mode="json")
    )
    with runtime.db.write() as session:
        session.add(
            IdempotencyRecord(
                principal=principal,
                key=key,
                request_hash=fingerprint,
                claim_token="killed-process",
                created_at=utcnow() - age,
            )
        )


def _stored_messages(server: LiveServer, agent_id: str) -> int:
    with server.app.state.runtime.db.read() as session:
        return session.exec(
            select(func.count())
            .select_from(Memory)
            .where(Memory.author_agent_id == agent_id, Memory.content == BODY["content"])
        ).one()


def test_stored_response_is_committed_with_the_write(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    first = agent.client.post("/v1/memories", json=BODY, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201
    with server.app.state.runtime.db.read() as session:
        record = session.get(IdempotencyRecord, (agent.id, "k1"))
    assert record is not None and record.status_code == 201
    assert record.response_body == first.json()


def test_fresh_pending_key_answers_in_progress(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    _abandon_claim(server, agent.id, "busy", age=timedelta(seconds=1))
    response = agent.client.post("/v1/memories", json=BODY, headers={"Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_in_progress"
    assert response.headers["retry-after"] == "1"
    assert _stored_messages(server, agent.id) == 0


def test_retry_takes_over_an_abandoned_key_and_writes_once(server: LiveServer, make_agent) -> None:
    agent = make_agent()
    claim_timeout = timedelta(seconds=server.settings.idempotency_claim_seconds)
    _abandon_claim(server, agent.id, "orphan", age=claim_timeout + timedelta(seconds=1))
    headers = {"Idempotency-Key": "orphan"}
    retried = agent.client.post("/v1/memories", json=BODY, headers=headers)
    assert retried.status_code == 201, retried.text
    again = agent.client.post("/v1/memories", json=BODY, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == retried.json()
    assert _stored_messages(server, agent.id) == 1


def test_write_whose_key_was_taken_over_rolls_back(server: LiveServer, make_agent) -> None:
    """A request that outlived its claim keeps nothing, and answers with the taker's response."""
    agent = make_agent()
    runtime = server.app.state.runtime
    principal = Principal(agent_id=agent.id, key_id=agent.key_id)
    item = MemoryCreate.model_validate(BODY)
    fingerprint = request_fingerprint("POST", "/v1/memories", item.model_dump(mode="json"))

    def taken_over_mid_work() -> object:
        with runtime.db.write() as session:  # another process took the key over
            session.execute(
                update(IdempotencyRecord)
                .where(col(IdempotencyRecord.key) == "slow")
                .values(claim_token="another-request")
            )
        return runtime.memories.create_many(principal, [item])

    def render(outcomes: object) -> tuple[int, object]:
        return 201, {"stored": True}

    vectors_before = runtime.vectors.count()
    with pytest.raises(Conflict) as refused:
        runtime.idempotency.run(
            agent.id, "slow", fingerprint, taken_over_mid_work, render, recorded_by_work=True
        )
    assert refused.value.code == "idempotency_in_progress"
    assert _stored_messages(server, agent.id) == 0
    assert runtime.vectors.count() == vectors_before

    # the taker finishes: the late request now answers with its stored response
    with runtime.db.write() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(col(IdempotencyRecord.key) == "slow")
            .values(status_code=201, response_body={"stored": "by the taker"})
        )

    def runs_again() -> object:
        raise AssertionError("a finished key must not run its work again")

    replayed = runtime.idempotency.run(
        agent.id, "slow", fingerprint, runs_again, render, recorded_by_work=True
    )
    assert replayed.replayed and replayed.body == {"stored": "by the taker"}


def test_sqlite_start_frees_keys_left_by_a_killed_process(tmp_path) -> None:
    settings = server_settings(tmp_path / "var", None)
    with serving(settings) as first:
        runtime = first.app.state.runtime
        with runtime.db.write() as session:
            session.add(
                IdempotencyRecord(
                    principal="agt_x", key="left", request_hash="h", created_at=utcnow()
                )
            )
            session.add(
                IdempotencyRecord(
                    principal="agt_x",
                    key="done",
                    request_hash="h",
                    status_code=201,
                    response_body={},
                    created_at=utcnow(),
                )
            )
    with serving(settings) as second, second.app.state.runtime.db.read() as session:
        keys = session.exec(select(IdempotencyRecord.key)).all()
    assert keys == ["done"]
