"""uvicorn's server, told to end open event streams when it stops.

uvicorn stops gracefully: it waits for every open response to finish before it shuts the app down.
An event stream never finishes on its own, so `Server.shutdown` first sets the app's `stopping`
event, which ends every stream at once; the clients reconnect (to another process, or to this one
when it is back) and resume from their last event id.
"""

from __future__ import annotations

import asyncio
import socket

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
