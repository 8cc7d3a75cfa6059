"""Requests per minute per API key: a burst up to the limit, then 429 with Retry-After."""

from __future__ import annotations

from tests.conftest import ADMIN_KEY, LiveServer, release_chroma_clients


def test_a_key_over_its_limit_gets_429_with_retry_after(settings) -> None:
    live = LiveServer(settings.model_copy(update={"rate_limit_per_minute": 3})).start()
    try:
        with live.client(ADMIN_KEY) as admin:
            agent_id = admin.post("/v1/agents", json={"name": "chatty"}).json()["id"]
            keys = [admin.post(f"/v1/agents/{agent_id}/keys", json={}).json() for _ in range(2)]
            with live.client(keys[0]["key"]) as agent, live.client(keys[1]["key"]) as other:
                assert [agent.get("/v1/me").status_code for _ in range(3)] == [200, 200, 200]
                limited = agent.get("/v1/memories")
                assert limited.status_code == 429
                assert limited.json()["code"] == "rate_limited"
                assert int(limited.headers["Retry-After"]) == 20  # one request per 20 s at 3/min
                assert agent.get("/v1/me").status_code == 429  # refused requests cost nothing
                assert other.get("/v1/me").status_code == 200  # a bucket per key
            assert all(admin.get("/v1/agents").status_code == 200 for _ in range(5))
    finally:
        live.stop()
        release_chroma_clients()
