"""The exception tree: every failure the client raises is a `MemoryClientError`."""

from __future__ import annotations

from typing import Any

import httpx

REQUEST_ID_HEADER = "X-Request-ID"


class MemoryClientError(Exception):
    """Base of every error raised by `memory_client`."""


class APIConnectionError(MemoryClientError):
    """The request never got an HTTP response: refused, reset, dropped or unreadable."""

    def __init__(self, message: str = "Connection error.", *, request: httpx.Request | None = None):
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool)."""

    def __init__(
        self, message: str = "Request timed out.", *, request: httpx.Request | None = None
    ):
        super().__init__(message, request=request)


class APIResponseValidationError(MemoryClientError):
    """A success response whose body does not match the expected shape."""

    def __init__(self, message: str, *, response: httpx.Response, body: Any) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.request_id = response.headers.get(REQUEST_ID_HEADER)
        self.body = body


class APIStatusError(MemoryClientError):
    """The server answered with an error status; `code`, `detail`, `errors` come from its body."""

    def __init__(
        self,
        status_code: int,
        code: str | None,
        detail: str | None,
        request_id: str | None,
        body: Any,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.request_id = request_id
        self.body = body
        self.response = response
        raw_errors = body.get("errors") if isinstance(body, dict) else None
        self.errors: list[dict[str, Any]] | None = (
            [e for e in raw_errors if isinstance(e, dict)] if isinstance(raw_errors, list) else None
        )
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (e.g. across a process pool); the httpx response is left behind.
        args = (self.status_code, self.code, self.detail, self.request_id, self.body)
        state = {name: value for name, value in vars(self).items() if name != "response"}
        return (type(self), args, state)

    def _message(self) -> str:
        text = f"{self.status_code} {self.code or 'error'}: {self.detail or '(no detail)'}"
        return f"{text} [request_id={self.request_id}]" if self.request_id else text


class BadRequestError(APIStatusError):
    """400: the request is malformed (a bad cursor, an import file with a bad line)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong, revoked or expired."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this (read-only, another namespace, admin only)."""


class NotFoundError(APIStatusError):
    """404: no such resource, or not one the caller may see."""


class ConflictError(APIStatusError):
    """409: conflicts with the current state (duplicate, superseded, idempotency in progress)."""


class PreconditionFailedError(APIStatusError):
    """412: the memory is no longer at the version sent in If-Match."""


class PayloadTooLargeError(APIStatusError):
    """413: content or batch over the server's limits."""


class UnprocessableEntityError(APIStatusError):
    """422: the request failed validation."""


class PreconditionRequiredError(APIStatusError):
    """428: the request needs a precondition header (If-Match)."""


class RateLimitError(APIStatusError):
    """429: too many requests for this API key; `retry_after` is the server's wait in seconds."""

    def __init__(
        self,
        status_code: int,
        code: str | None,
        detail: str | None,
        request_id: str | None,
        body: Any,
        *,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(status_code, code, detail, request_id, body, response=response)
        from ._retry import parse_retry_after  # _retry imports this module

        header = response.headers.get("Retry-After") if response is not None else None
        self.retry_after: float | None = parse_retry_after(header)


class InternalServerError(APIStatusError):
    """5xx: the server or a store behind it failed."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    428: PreconditionRequiredError,
    429: RateLimitError,
}


def error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status_code >= 500:
        return InternalServerError
    return _BY_STATUS.get(status_code, APIStatusError)


def make_status_error(response: httpx.Response) -> APIStatusError:
    """Build the exception for an error response from its status, `code`, `detail` and headers."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text or None
    code: str | None = None
    detail: str | None = None
    if isinstance(body, dict):
        raw_code, raw_detail = body.get("code"), body.get("detail")
        code = raw_code if isinstance(raw_code, str) else None
        if raw_detail is not None:
            detail = raw_detail if isinstance(raw_detail, str) else str(raw_detail)
    elif isinstance(body, str):
        detail = body[:500]
    return error_class(response.status_code)(
        response.status_code,
        code,
        detail or response.reason_phrase or None,
        response.headers.get(REQUEST_ID_HEADER),
        body,
        response=response,
    )
