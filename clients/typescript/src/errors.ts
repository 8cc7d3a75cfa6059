/**
 * The error tree: every failure the client raises is a `MemoryClientError`. It mirrors the Python
 * SDK's: `APIConnectionError` (and `APITimeoutError`) when no response came, `APIStatusError` and
 * one subclass per status when the server refused, built by one mapping function
 * (`makeStatusError`).
 */
import type { ErrorBody } from "./models.js";
import { parseRetryAfter } from "./retry-after.js";

export const REQUEST_ID_HEADER = "X-Request-ID";

/** Base of every error raised by memory-client. */
export class MemoryClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request never got an HTTP response: refused, reset, dropped or unreadable. */
export class APIConnectionError extends MemoryClientError {
  constructor(message = "Connection error.", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The request timed out before the response (or its body) arrived. */
export class APITimeoutError extends APIConnectionError {
  constructor(message = "Request timed out.", options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A success response whose body is not what the API documents (not JSON, or not an event). */
export class APIResponseValidationError extends MemoryClientError {
  readonly status: number;
  readonly requestId: string | null;
  readonly body: unknown;

  constructor(message: string, status: number, headers: Headers, body: unknown) {
    super(message);
    this.status = status;
    this.requestId = headers.get(REQUEST_ID_HEADER);
    this.body = body;
  }
}

/** The server answered with an error status; `code`, `detail` and `errors` come from its body. */
export class APIStatusError extends MemoryClientError {
  /** The HTTP status. */
  readonly status: number;
  /** The machine-readable error, e.g. `memory_not_found`, `version_mismatch`. */
  readonly code: string | null;
  /** The human sentence. */
  readonly detail: string | null;
  /** The response's `X-Request-ID`: quote it to find the request in the server's logs. */
  readonly requestId: string | null;
  /** Per-field problems, on validation errors (422). */
  readonly errors: Record<string, unknown>[] | null;
  /** The parsed body (JSON, else text). */
  readonly body: unknown;
  readonly headers: Headers;

  constructor(
    status: number,
    code: string | null,
    detail: string | null,
    requestId: string | null,
    body: unknown,
    headers: Headers = new Headers(),
  ) {
    const text = `${status} ${code ?? "error"}: ${detail ?? "(no detail)"}`;
    super(requestId ? `${text} [request_id=${requestId}]` : text);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.requestId = requestId;
    this.body = body;
    this.headers = headers;
    const errors = isObject(body) ? body.errors : undefined;
    this.errors = Array.isArray(errors) ? errors.filter(isObject) : null;
  }
}

/** 400: the request is malformed (a bad cursor, an import file with a bad line). */
export class BadRequestError extends APIStatusError {}

/** 401: the API key is missing, wrong, revoked or expired. */
export class AuthenticationError extends APIStatusError {}

/** 403: the key may not do this (read-only, another namespace, admin only). */
export class PermissionDeniedError extends APIStatusError {}

/** 404: no such resource, or not one the caller may see. */
export class NotFoundError extends APIStatusError {}

/** 409: conflicts with the current state (duplicate, superseded, idempotency in progress). */
export class ConflictError extends APIStatusError {}

/** 412: the memory is no longer at the version sent in If-Match. */
export class PreconditionFailedError extends APIStatusError {}

/** 413: content or batch over the server's limits. */
export class PayloadTooLargeError extends APIStatusError {}

/** 422: the request failed validation; `errors` says where. */
export class UnprocessableEntityError extends APIStatusError {}

/** 428: the request needs a precondition header (If-Match). */
export class PreconditionRequiredError extends APIStatusError {}

/** 429: too many requests for this API key; `retryAfter` is the server's wait in seconds. */
export class RateLimitError extends APIStatusError {
  readonly retryAfter: number | null;

  constructor(...args: ConstructorParameters<typeof APIStatusError>) {
    super(...args);
    this.retryAfter = parseRetryAfter(this.headers.get("Retry-After"));
  }
}

/** 5xx: the server or a store behind it failed. */
export class InternalServerError extends APIStatusError {}

type StatusErrorClass = new (
  ...args: ConstructorParameters<typeof APIStatusError>
) => APIStatusError;

const BY_STATUS: Record<number, StatusErrorClass> = {
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
};

/** The error class for an HTTP error status. */
export function errorClass(status: number): StatusErrorClass {
  if (status >= 500) return InternalServerError;
  return BY_STATUS[status] ?? APIStatusError;
}

/** The error for an error response: its class by status, `code` and `detail` from its body. */
export function makeStatusError(
  status: number,
  body: unknown,
  headers: Headers,
  statusText = "",
): APIStatusError {
  let code: string | null = null;
  let detail: string | null = null;
  if (isObject(body)) {
    const error = body as Partial<ErrorBody>;
    code = typeof error.code === "string" ? error.code : null;
    if (error.detail !== undefined && error.detail !== null) {
      detail = typeof error.detail === "string" ? error.detail : JSON.stringify(error.detail);
    }
  } else if (typeof body === "string" && body) {
    detail = body.slice(0, 500);
  }
  const Class = errorClass(status);
  return new Class(
    status,
    code,
    detail ?? (statusText || null),
    headers.get(REQUEST_ID_HEADER),
    body,
    headers,
  );
}

/** Read an error response's body and map it (`makeStatusError`). */
export async function statusErrorFrom(response: Response): Promise<APIStatusError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // the body was cut off; the status still says what happened
  }
  let body: unknown = text || null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return makeStatusError(response.status, body, response.headers, response.statusText);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
