"""SDK test fixtures: both clients behind one calling convention, and loopback HTTP servers.

`sdk(base_url, api_key, ...)` returns a `Driver`: the sync `MemoryClient` or the
`AsyncMemoryClient` (per the `client_kind` parameter) whose methods are called the same way in both
cases; the async ones run on one event loop per test. `loopback(handler)` starts a raw HTTP/1.1
server on 127.0.0.1 whose answers a test scripts, including dropping the connection.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from memory_client import AsyncMemoryClient, MemoryClient

from tests.sdk.loopback_http import Handler, Loopback

# ---- one calling convention for both clients ----------------------------------------------------


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


class Driver:
    """Calls a sync or async client the same way; iterators come back as lists."""

    def __init__(self, client: MemoryClient | AsyncMemoryClient, runner: asyncio.Runner | None):
        self.client = client
        self.runner = runner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isgenerator(result):
                return list(result)
            if self.runner is not None and inspect.isasyncgen(result):
                return self.runner.run(_collect(result))
            if self.runner is not None and inspect.iscoroutine(result):
                return self.runner.run(result)
            return result

        return call

    def close(self) -> None:
        if isinstance(self.client, AsyncMemoryClient):
            assert self.runner is not None
            self.runner.run(self.client.aclose())
        else:
            self.client.close()


RequestHook = Callable[[httpx.Request], None]


@pytest.fixture(params=["sync", "async"])
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as loop_runner:
        yield loop_runner


@pytest.fixture
def sdk(client_kind: str, runner: asyncio.Runner) -> Iterator[Callable[..., Driver]]:
    """A factory of drivers for this test's client kind; `on_request` hooks see every request."""
    drivers: list[Driver] = []
    injected: list[httpx.Client | httpx.AsyncClient] = []

    def make(
        base_url: str | None,
        api_key: str | None = None,
        *,
        on_request: RequestHook | None = None,
        **options: Any,
    ) -> Driver:
        if client_kind == "sync":
            if on_request is not None:
                http = httpx.Client(event_hooks={"request": [on_request]}, timeout=60)
                injected.append(http)
                options["http_client"] = http
            driver = Driver(MemoryClient(base_url, api_key, **options), None)
        else:
            if on_request is not None:
                hook = on_request

                async def async_hook(request: httpx.Request) -> None:
                    hook(request)

                http_async = httpx.AsyncClient(event_hooks={"request": [async_hook]}, timeout=60)
                injected.append(http_async)
                options["http_client"] = http_async
            driver = Driver(AsyncMemoryClient(base_url, api_key, **options), runner)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()
    for http in injected:
        if isinstance(http, httpx.AsyncClient):
            runner.run(http.aclose())
        else:
            http.close()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without Retry-After wait milliseconds instead of half a second and up."""
    from memory_client._base import _BaseClient

    monkeypatch.setattr(_BaseClient, "_initial_retry_delay", 0.01)
    monkeypatch.setattr(_BaseClient, "_max_retry_delay", 0.02)


@pytest.fixture
def loopback() -> Iterator[Callable[[Handler], Loopback]]:
    servers: list[Loopback] = []

    def start(handler: Handler) -> Loopback:
        server = Loopback(handler).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        assert not server.errors, server.errors
