"""Limits every request meets before a route reads it: the body's size, and no NUL in the URL.

A body larger than its limit gets 413 `request_too_large`: at once when its `Content-Length`
says so (nothing of it is read), or as soon as the bytes received pass the limit (a chunked
body, or one that lies about its length). `POST /v1/import` takes a whole JSONL export and has a
limit of its own. A NUL in the path or query (`%00`) gets 422 `invalid_text`, the answer a NUL in
a JSON body gets (`safe_json`), on either database.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

IMPORT_PATH = "/v1/import"


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes its limit. An HTTPException, so that
    FastAPI's body reader passes it on as it is (it turns any other error into a 400)."""

    code = "request_too_large"

    def __init__(self, limit: int):
        super().__init__(413, _too_large(limit))


class RequestLimits:
    """Pure ASGI middleware enforcing the limits above."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_import_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.max_import_bytes = max_import_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            await _refuse(scope, receive, send, 422, "invalid_text", "The URL contains a NUL.")
            return
        limit = self.max_import_bytes if scope["path"] == IMPORT_PATH else self.max_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(scope, receive, send, 413, BodyTooLarge.code, _too_large(limit))
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await _refuse(scope, receive, send, 413, BodyTooLarge.code, _too_large(limit))


def _too_large(limit: int) -> str:
    return f"The request body is larger than the server's limit of {limit} bytes."


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str
) -> None:
    # `Connection: close`: the unread rest of the body is not waited for
    response = JSONResponse(error_body(code, detail), status, headers={"Connection": "close"})
    await response(scope, receive, send)
