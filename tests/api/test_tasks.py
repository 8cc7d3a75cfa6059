"""Tasks over real HTTP, on SQLite and PostgreSQL: the one-in-progress rule under concurrent starts,
the transitions, idempotent completion, versions, permissions, events and the context tier."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from memory_server.tokens import count_tokens
from tests.api.test_transfer import NDJSON, fresh_server
from tests.conftest import ADMIN_KEY, LiveServer

CLIENTS = 12


def _task(client: httpx.Client, title: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/tasks", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _patch(
    client: httpx.Client, task: dict[str, Any], version: int | None = None, **fields: Any
) -> httpx.Response:
    version = task["version"] if version is None else version
    return client.patch(
        f"/v1/tasks/{task['id']}", json=fields, headers={"If-Match": f'"{version}"'}
    )


def _at_once(calls: list[Any]) -> list[httpx.Response]:
    """Run `calls` (each a function of no arguments) in threads released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _in_progress(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    listed = client.get("/v1/tasks", params={"status": "in_progress", "limit": 500, **params})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def test_of_many_concurrent_starts_in_one_thread_exactly_one_wins(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()
    tasks = [_task(agent.client, f"step {i}", thread_id="t1") for i in range(CLIENTS)]

    def start(task: dict[str, Any]) -> Any:
        def call() -> httpx.Response:
            with server.client(agent.key) as client:  # each its own connection
                return _patch(client, task, status="in_progress")

        return call

    responses = _at_once([start(t) for t in tasks])
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (CLIENTS - 1), [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    for lost in (r.json() for r in responses if r.status_code == 409):
        assert lost["code"] == "another_task_in_progress"
        assert lost["task"]["id"] == winner["id"] and lost["task"]["status"] == "in_progress"
    assert [t["id"] for t in _in_progress(agent.client, thread_id="t1")] == [winner["id"]]


def test_of_many_concurrent_creations_in_progress_exactly_one_is_stored(
    server: LiveServer, make_agent
) -> None:
    agent = make_agent()

    def create(i: int) -> Any:
        def call() -> httpx.Response:
            with server.client(agent.key) as client:
                return client.post(
                    "/v1/tasks", json={"title": f"urgent {i}", "status": "in_progress"}
                )

        return call

    responses = _at_once([create(i) for i in range(CLIENTS)])
    assert sorted(r.status_code for r in responses) == [201] + [409] * (CLIENTS - 1)
    winner = next(r.json() for r in responses if r.status_code == 201)
    assert {r.json()["task"]["id"] for r in responses if r.status_code == 409} == {winner["id"]}
    assert len(agent.client.get("/v1/tasks").json()["data"]) == 1


def test_the_slot_is_per_agent_and_thread_and_freed_by_finishing(make_agent, admin) -> None:
    owner, helper = make_agent(), make_agent()
    grant = owner.client.post(
        f"/v1/namespaces/{owner.namespace_id}/grants",
        json={"agent_id": helper.id, "permission": "write"},
    )
    assert grant.status_code == 201, grant.text
    here = {"namespace_id": owner.namespace_id, "status": "in_progress"}
    first = _task(owner.client, "write the report", thread_id="t1", **here)
    _task(owner.client, "answer the mail", thread_id="t2", **here)  # another thread
    _task(owner.client, "tidy up", **here)  # the thread-less lane
    _task(helper.client, "check the figures", thread_id="t1", **here)  # another agent
    blocked = owner.client.post("/v1/tasks", json={"title": "second", "thread_id": "t1", **here})
    assert blocked.status_code == 409 and blocked.json()["task"]["id"] == first["id"]
    # the admin works as the namespace's owner
    by_admin = admin.post("/v1/tasks", json={"title": "by admin", "thread_id": "t1", **here})
    assert by_admin.status_code == 409 and by_admin.json()["task"]["id"] == first["id"]

    done = _patch(owner.client, first, status="completed", result={"pages": 12})
    assert done.status_code == 200, done.text
    second = _task(owner.client, "second", thread_id="t1", **here)
    assert second["status"] == "in_progress" and second["agent_id"] == owner.id


def test_statuses_move_only_along_the_allowed_transitions(make_agent) -> None:
    agent = make_agent()
    task = _task(agent.client, "migrate the database", priority=3, context={"step": 0})
    assert task["status"] == "pending" and task["version"] == 1 and task["started_at"] is None

    refused = _patch(agent.client, task, status="failed")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "invalid_task_transition"
    assert "Allowed from pending" in refused.json()["detail"]

    started = _patch(agent.client, task, status="in_progress", context={"step": 1})
    assert started.status_code == 200, started.text
    task = started.json()
    assert task["version"] == 2 and task["started_at"] and task["context"] == {"step": 1}
    assert started.headers["ETag"] == '"2"'

    paused = _patch(agent.client, task, status="pending")
    task = paused.json()
    assert paused.status_code == 200 and task["status"] == "pending"
    task = _patch(agent.client, task, status="in_progress").json()
    failed = _patch(agent.client, task, status="failed", result={"error": "disk full"})
    task = failed.json()
    assert failed.status_code == 200 and task["finished_at"] and task["result"]["error"]
    retried = _patch(agent.client, task, status="in_progress")
    task = retried.json()
    assert retried.status_code == 200 and task["result"] is None and task["finished_at"] is None

    early = _patch(agent.client, task, result="half done")
    assert early.status_code == 422 and early.json()["code"] == "result_needs_outcome"
    task = _patch(agent.client, task, status="cancelled").json()
    assert task["status"] == "cancelled"
    for change in ({"status": "in_progress"}, {"status": "pending"}):
        final = _patch(agent.client, task, **change)
        assert final.status_code == 409 and final.json()["code"] == "invalid_task_transition"
    edit = _patch(agent.client, task, title="renamed")
    assert edit.status_code == 409 and edit.json()["code"] == "task_finished"


def test_a_retried_completion_returns_the_task_without_completing_it_twice(make_agent) -> None:
    agent = make_agent()
    task = _task(agent.client, "send the invoice", status="in_progress")
    after = int(agent.client.get("/v1/events").json()["next_cursor"])
    first = _patch(agent.client, task, status="completed", result={"invoice": "INV-7"})
    # the response was lost: the agent retries the same request, with the same version
    retry = _patch(agent.client, task, status="completed", result={"invoice": "INV-7"})
    assert first.status_code == retry.status_code == 200, retry.text
    assert retry.json() == first.json() and retry.json()["version"] == 2
    other = _patch(agent.client, task, status="completed", result={"invoice": "INV-8"})
    assert other.status_code == 409 and other.json()["code"] == "task_already_completed"
    events = agent.client.get("/v1/events", params={"after": after}).json()["data"]
    assert [e["type"] for e in events] == ["task_completed"]
    assert events[0]["task_id"] == task["id"] and events[0]["memory_id"] is None


def test_an_idempotency_key_creates_one_task_for_many_retries(make_agent) -> None:
    agent = make_agent()
    body = {"title": "book the venue", "thread_id": "t"}
    headers = {"Idempotency-Key": "plan-venue"}
    first = agent.client.post("/v1/tasks", json=body, headers=headers)
    again = agent.client.post("/v1/tasks", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(agent.client.get("/v1/tasks").json()["data"]) == 1
    reused = agent.client.post("/v1/tasks", json={"title": "other"}, headers=headers)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"


def test_changes_need_the_current_version(make_agent) -> None:
    agent = make_agent()
    task = _task(agent.client, "draft the plan")
    missing = agent.client.patch(f"/v1/tasks/{task['id']}", json={"title": "x"})
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"
    assert _patch(agent.client, task, title="the plan, v2").status_code == 200
    stale = _patch(agent.client, task, title="the plan, v3")  # still version 1
    assert stale.status_code == 412 and stale.json()["code"] == "version_mismatch"
    fetched = agent.client.get(f"/v1/tasks/{task['id']}")
    assert fetched.headers["ETag"] == '"2"' and fetched.json()["title"] == "the plan, v2"


def test_a_reader_of_a_shared_namespace_sees_its_tasks_and_cannot_change_them(
    make_agent,
) -> None:
    owner, reader, stranger = make_agent(), make_agent(), make_agent()
    grant = owner.client.post(
        f"/v1/namespaces/{owner.namespace_id}/grants",
        json={"agent_id": reader.id, "permission": "read"},
    )
    assert grant.status_code == 201, grant.text
    task = _task(owner.client, "ship release 2.0", status="in_progress")

    assert reader.client.get(f"/v1/tasks/{task['id']}").json()["title"] == "ship release 2.0"
    listed = reader.client.get("/v1/tasks", params={"namespace_id": owner.namespace_id})
    assert [t["id"] for t in listed.json()["data"]] == [task["id"]]
    for response in (
        _patch(reader.client, task, status="completed"),
        reader.client.delete(f"/v1/tasks/{task['id']}"),
        reader.client.post("/v1/tasks", json={"title": "x", "namespace_id": owner.namespace_id}),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "permission_denied"
    assert owner.client.get(f"/v1/tasks/{task['id']}").json()["version"] == 1

    hidden = stranger.client.get(f"/v1/tasks/{task['id']}")
    assert hidden.status_code == 404 and hidden.json()["code"] == "task_not_found"
    assert _patch(stranger.client, task, status="completed").status_code == 404
    assert stranger.client.get("/v1/tasks").json()["data"] == []
    audit = owner.client.get(f"/v1/namespaces/{owner.namespace_id}/audit").json()["data"]
    assert {"get_task", "list_tasks"} <= {a["operation"] for a in audit}


def test_every_change_is_an_event_without_the_tasks_text(make_agent) -> None:
    agent = make_agent()
    after = agent.client.get("/v1/events").json()["next_cursor"]
    parent = _task(agent.client, "secret project plan", thread_id="t")
    child = _task(agent.client, "first step", thread_id="t", parent_task_id=parent["id"])
    child = _patch(agent.client, child, status="in_progress").json()
    child = _patch(agent.client, child, priority=5).json()
    child = _patch(agent.client, child, status="completed").json()
    blocked = agent.client.delete(f"/v1/tasks/{parent['id']}")
    assert blocked.status_code == 409 and blocked.json()["code"] == "task_has_subtasks"
    assert agent.client.delete(f"/v1/tasks/{child['id']}").status_code == 200
    deleted = agent.client.delete(f"/v1/tasks/{parent['id']}")
    assert deleted.status_code == 200 and deleted.json()["id"] == parent["id"]
    assert agent.client.get(f"/v1/tasks/{parent['id']}").status_code == 404

    events = agent.client.get("/v1/events", params={"after": after}).json()["data"]
    assert [(e["type"], e["task_id"]) for e in events] == [
        ("task_created", parent["id"]),
        ("task_created", child["id"]),
        ("task_started", child["id"]),
        ("task_updated", child["id"]),
        ("task_completed", child["id"]),
        ("task_deleted", child["id"]),
        ("task_deleted", parent["id"]),
    ]
    assert events[3]["details"]["fields"] == ["priority"]
    assert events[2]["details"]["previous_status"] == "pending"
    assert "secret" not in str(events)


def test_a_parent_must_be_a_task_of_the_same_namespace(make_agent) -> None:
    agent, other = make_agent(), make_agent()
    foreign = _task(other.client, "theirs")
    response = agent.client.post(
        "/v1/tasks", json={"title": "mine", "parent_task_id": foreign["id"]}
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_parent_task"


def test_listing_filters_and_pages_in_planned_order(make_agent) -> None:
    agent = make_agent()
    made = [_task(agent.client, f"step {i}", thread_id="t" if i % 2 else None) for i in range(5)]
    first = agent.client.get("/v1/tasks", params={"limit": 3}).json()
    rest = agent.client.get("/v1/tasks", params={"limit": 3, "cursor": first["next_cursor"]})
    ids = [t["id"] for t in first["data"] + rest.json()["data"]]
    assert ids == [t["id"] for t in made] and rest.json()["next_cursor"] is None
    threaded = agent.client.get("/v1/tasks", params={"thread_id": "t"}).json()["data"]
    assert [t["id"] for t in threaded] == [made[1]["id"], made[3]["id"]]
    bad = agent.client.get("/v1/tasks", params={"cursor": "nope"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_cursor"


def test_an_agent_resumes_from_its_context_after_a_crash(make_agent) -> None:
    agent = make_agent()
    running = _task(
        agent.client,
        "Migrate the billing tables",
        description="Copy invoices to the new schema.",
        thread_id="t",
        status="in_progress",
        context={"copied": 1200, "last_id": "inv_1200"},
    )
    later = _task(agent.client, "Announce the migration", thread_id="t", priority=1)
    low = _task(agent.client, "Write the retrospective", thread_id="t")
    elsewhere = _task(agent.client, "Another thread's work", thread_id="other")
    agent.client.post(
        "/v1/memories",
        json={"kind": "message", "role": "user", "content": "Go ahead.", "thread_id": "t"},
    )
    # the process died; the new one asks for its context
    response = agent.client.post(
        "/v1/context",
        json={"query": "what was I doing?", "budget_tokens": 500, "thread_id": "t"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    context = body["context"]
    assert context.startswith("## Tasks\n[in progress")
    assert context.index("Migrate the billing") < context.index("Announce the migration")
    assert context.index("Announce the migration") < context.index("Write the retrospective")
    assert '"last_id":"inv_1200"' in context and "Another thread" not in context
    tasks = [item for item in body["items"] if item["tier"] == "tasks"]
    assert [t["id"] for t in tasks] == [running["id"], later["id"], low["id"]]
    assert {t["kind"] for t in tasks} == {"task"}
    assert sum(t["tokens"] for t in tasks) <= body["tokens_used"] <= 500
    assert elsewhere["id"] not in {item["id"] for item in body["items"]}

    without = agent.client.post(
        "/v1/context",
        json={
            "query": "what was I doing?",
            "budget_tokens": 300,
            "thread_id": "t",
            "include_tasks": False,
        },
    ).json()
    assert "## Tasks" not in without["context"]
    # without a thread, on request: every open task of the agent
    everywhere = agent.client.post(
        "/v1/context",
        json={"query": "what was I doing?", "budget_tokens": 300, "include_tasks": True},
    ).json()
    assert elsewhere["id"] in {item["id"] for item in everywhere["items"]}


def test_the_tasks_tier_takes_its_share_and_leaves_the_rest(make_agent) -> None:
    agent = make_agent()
    for i in range(30):
        _task(agent.client, f"Pending chore number {i} with a fairly long title", thread_id="t")
    for i in range(10):
        agent.client.post(
            "/v1/memories",
            json={"kind": "message", "role": "user", "content": f"turn {i}", "thread_id": "t"},
        )
    body = agent.client.post(
        "/v1/context",
        json={
            "query": "chores",
            "budget_tokens": 200,
            "model": "gpt-4o-mini",
            "thread_id": "t",
            "max_pending_tasks": 30,
            "tiers": {"tasks": 0.2, "thread": 0.8, "facts": 0, "memories": 0},
        },
    ).json()
    assert body["tokens_used"] == count_tokens(body["context"], "gpt-4o-mini") <= 200
    task_tokens = sum(i["tokens"] for i in body["items"] if i["tier"] == "tasks")
    assert 0 < task_tokens <= 0.2 * 200
    assert any(i["tier"] == "thread" for i in body["items"])
    assert any(d["tier"] == "tasks" and d["reason"] == "over_budget" for d in body["dropped"])


def test_export_and_import_carry_tasks_and_markdown_lists_them(
    make_agent, tmp_path, database_url
) -> None:
    agent = make_agent()
    plan = _task(agent.client, "Plan the offsite", priority=2)
    booking = _task(
        agent.client,
        "Book the venue",
        thread_id="t",
        parent_task_id=plan["id"],
        status="in_progress",
        context={"shortlist": ["Sintra", "Cascais"]},
    )
    done = _task(agent.client, "Pick the dates", status="in_progress")
    done = _patch(agent.client, done, status="completed", result={"dates": "2-4 June"}).json()
    exported = agent.client.get("/v1/export", params={"namespace_id": agent.namespace_id})
    records = [json.loads(line) for line in exported.text.splitlines()]
    assert [r["task"]["id"] for r in records if r["type"] == "task"] == [
        plan["id"],
        booking["id"],
        done["id"],
    ]
    assert records[-1] == {"type": "end", "memories": 0, "links": 0, "tasks": 3}

    page = agent.client.get(
        "/v1/export", params={"namespace_id": agent.namespace_id, "format": "markdown"}
    ).text
    todo = page.split("## TODO")[1].split("## Facts by key")[0]
    assert todo.index("### In progress") < todo.index("### Open") < todo.index("### Done")
    in_progress, open_, finished = (
        todo.split("### In progress")[1].split("### Open")[0],
        todo.split("### Open")[1].split("### Done")[0],
        todo.split("### Done")[1],
    )
    assert "- [ ] **Book the venue**" in in_progress and "thread t" in in_progress
    assert "- [ ] **Plan the offsite**" in open_ and "priority 2" in open_
    assert "- [x] **Pick the dates**" in finished

    with fresh_server(tmp_path, database_url) as fresh, fresh.client(ADMIN_KEY) as admin:
        target = admin.post("/v1/agents", json={"name": "restored"}).json()["default_namespace_id"]
        params = {"namespace_id": target}
        first = admin.post("/v1/import", params=params, content=exported.content, headers=NDJSON)
        assert first.status_code == 200, first.text
        assert (first.json()["tasks_created"], first.json()["conflicts"]) == (3, [])
        again = admin.post("/v1/import", params=params, content=exported.content, headers=NDJSON)
        assert (again.json()["tasks_created"], again.json()["tasks_skipped"]) == (0, 3)
        restored = admin.get("/v1/tasks", params=params).json()["data"]
        originals = [plan, booking, done]
        assert [{**t, "namespace_id": None} for t in restored] == [
            {**t, "namespace_id": None} for t in originals
        ]
        events = admin.get("/v1/events", params=params).json()["data"]
        assert [e["task_id"] for e in events if e["type"] == "task_created"] == [
            t["id"] for t in originals
        ]


def test_an_import_keeps_one_task_in_progress_per_lane(make_agent) -> None:
    agent = make_agent()
    header = {"type": "header", "format": "memory-server/export", "version": 1}
    task = {"agent_id": agent.id, "status": "in_progress", "created_at": "2026-01-01T00:00:00Z"}
    two = [
        header,
        {"type": "task", "task": {"id": "tsk_a", "title": "a", **task}},
        {"type": "task", "task": {"id": "tsk_b", "title": "b", **task}},
    ]
    body = "\n".join(json.dumps(r) for r in two).encode()
    params = {"namespace_id": agent.namespace_id}
    refused = agent.client.post("/v1/import", params=params, content=body, headers=NDJSON)
    assert refused.status_code == 400 and "line 3" in refused.json()["detail"]

    running = _task(agent.client, "already running", status="in_progress")
    one = "\n".join(json.dumps(r) for r in two[:2]).encode()
    result = agent.client.post("/v1/import", params=params, content=one, headers=NDJSON).json()
    assert result["tasks_created"] == 0
    assert (
        result["conflicts"][0]["record"] == "task"
        and running["id"] in (result["conflicts"][0]["reason"])
    )
