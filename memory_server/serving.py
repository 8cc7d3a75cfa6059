"""uvicorn's server, told to end open event streams when it stops.

uvicorn stops gracefully: it waits for every open response to finish before it shuts the app down.
An event stream never finishes on its own, so `Server.shutdown` first sets the app's `stopping`
event, which ends every stream at once; the clients reconnect (to another process, or to this one
when it is back) and resume from their last event id.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn


class Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        stop_streams(self.config.app)
        await super().shutdown(sockets)


def stop_streams(app: object) -> None:
    """End the event streams of `app` (a FastAPI app from `create_app`)."""
    state = getattr(app, "state", None)
    stopping = getattr(state, "stopping", None)
    if isinstance(stopping, asyncio.Event):
        stopping.set()


class BackgroundServer:
    """An app under this `Server` on loopback, in a thread of this process: what tests,
    benchmarks and notebook runs start (`memory-server serve` runs the same server in front)."""

    def __init__(self, app: object, port: int, *, host: str = "127.0.0.1"):
        self.app = app
        self.url = f"http://{host}:{port}"
        self._config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
        )
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 120) -> None:
        """Start serving; return once the server accepts connections."""
        self._server = Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self, timeout: float = 60) -> None:
        """Stop gracefully (in-flight requests finish) and wait for the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=timeout)
        self._server = None
        self._thread = None
