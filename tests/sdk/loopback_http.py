"""A tiny scriptable HTTP/1.1 server on 127.0.0.1 for the SDK tests, and a dropping proxy.

The handler answers each request with a `Reply`, or with None to close the connection without
answering: the client then sees a connection error exactly as it would for a lost response.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import httpx


@dataclass
class Seen:
    """A request as the loopback server received it; header names are lower-case."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Reply:
    status: int
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None

    def encode(self) -> bytes:
        body = self.raw if self.raw is not None else json.dumps(self.json).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        headers["Content-Length"] = str(len(body))
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:
            reason = "Unknown"
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# A handler answers a request with a Reply, or None to drop the connection without answering.
Handler = Callable[[Seen], Awaitable[Reply | None]]


class Loopback:
    """An HTTP/1.1 server on 127.0.0.1 in its own thread and event loop, run by a handler."""

    def __init__(self, handler: Handler):
        self.handler = handler
        self.seen: list[Seen] = []
        self.errors: list[BaseException] = []
        self.on_close: list[Callable[[], Awaitable[None]]] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Loopback:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("loopback server did not start")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for close in self.on_close:
                await close()
            await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, headers, body)
                self.seen.append(seen)
                try:
                    reply = await self.handler(seen)
                except Exception as exc:
                    self.errors.append(exc)
                    reply = Reply(599, {"code": "loopback_handler_failed", "detail": repr(exc)})
                if reply is None:
                    return  # drop: close without an answer
                writer.write(reply.encode())
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


def script(*replies: Reply) -> Handler:
    """A handler answering with these replies in turn, repeating the last one."""
    remaining = list(replies)

    async def handler(_: Seen) -> Reply | None:
        return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return handler


_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


class DropFirstPost:
    """A proxy handler: forwards every request to `upstream`, but after forwarding the first POST
    (so the server did the work) it drops the client's connection instead of answering."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.responses: list[httpx.Response] = []
        self._dropped = False
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, seen: Seen) -> Reply | None:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.upstream, timeout=60)
        headers = {k: v for k, v in seen.headers.items() if k not in _HOP_BY_HOP}
        response = await self._client.request(
            seen.method, seen.target, headers=headers, content=seen.body
        )
        self.responses.append(response)
        if seen.method == "POST" and not self._dropped:
            self._dropped = True
            return None
        relayed = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in {"content-length", "transfer-encoding", "connection"}
        }
        return Reply(response.status_code, headers=relayed, raw=response.content)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
