"""Domain errors. Services raise these; `install_error_handlers` maps every one of them to HTTP.

On the wire an error is always `{"code": "<machine_readable>", "detail": "<human sentence>"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class MemoryServerError(Exception):
    """Base of every error the API reports; `status` and `code` travel to the client."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.errors = errors
        # more fields of the body, JSON-ready: the task holding a slot, beside `code` and `detail`
        self.extra = extra or {}


class BadRequest(MemoryServerError):
    status = 400
    code = "bad_request"


class Unauthorized(MemoryServerError):
    status = 401
    code = "unauthorized"


class PermissionDenied(MemoryServerError):
    status = 403
    code = "permission_denied"


class NotFound(MemoryServerError):
    status = 404
    code = "not_found"


class Conflict(MemoryServerError):
    status = 409
    code = "conflict"


class PreconditionFailed(MemoryServerError):
    status = 412
    code = "version_mismatch"


class PayloadTooLarge(MemoryServerError):
    status = 413
    code = "payload_too_large"


class InvalidRequest(MemoryServerError):
    status = 422
    code = "invalid_request"


class PreconditionRequired(MemoryServerError):
    status = 428
    code = "precondition_required"


class RateLimited(MemoryServerError):
    status = 429
    code = "rate_limited"


class StoreUnavailable(MemoryServerError):
    status = 503
    code = "store_unavailable"


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "detail": detail, **extra}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def validation_error_response(raw: Sequence[Any]) -> JSONResponse:
    """422 `validation_error`, its detail naming the first problem, `errors` listing them all."""
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
        for err in raw
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return JSONResponse(error_body("validation_error", detail, errors=errors), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the `{code, detail}` shape."""

    @app.exception_handler(MemoryServerError)
    async def _domain(_: Request, exc: MemoryServerError) -> JSONResponse:
        extra = {"errors": exc.errors} if exc.errors is not None else {}
        extra.update(exc.extra)
        return JSONResponse(
            error_body(exc.code, exc.detail, **extra), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error_response(exc.errors())

    # A request shape built inside a route (the filters of a GET, from its query) that refuses
    # its input: the same 422 as a body FastAPI validated.
    @app.exception_handler(ValidationError)
    async def _shape(_: Request, exc: ValidationError) -> JSONResponse:
        return validation_error_response(exc.errors(include_url=False, include_input=False))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "The server hit an unexpected error."), status_code=500
        )
