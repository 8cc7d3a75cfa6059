/** When to retry a request and how long to wait first. Pure functions; no I/O. */
import { APIConnectionError, APIStatusError, type MemoryClientError } from "./errors.js";
import { parseRetryAfter } from "./retry-after.js";

export const DEFAULT_MAX_RETRIES = 2;
/** Milliseconds before the first retry; doubled for each next one, up to `MAX_RETRY_DELAY`. */
export const INITIAL_RETRY_DELAY = 500;
export const MAX_RETRY_DELAY = 8_000;
/** A `Retry-After` longer than this (in seconds) is ignored in favour of the backoff. */
export const MAX_RETRY_AFTER = 60;

const IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress";

/** Connection errors, 408, 429, 5xx and a 409 for an idempotent request still in progress. */
export function isRetryable(error: MemoryClientError): boolean {
  if (error instanceof APIConnectionError) return true;
  if (!(error instanceof APIStatusError)) return false;
  const { status } = error;
  if (status === 409) return error.code === IDEMPOTENCY_IN_PROGRESS;
  return status === 408 || status === 429 || status >= 500;
}

/** Jittered exponential backoff for retry number `attempt` (0-based): 75-100% of the cap, in ms. */
export function backoffDelay(
  attempt: number,
  { initial = INITIAL_RETRY_DELAY, maximum = MAX_RETRY_DELAY, random = Math.random } = {},
): number {
  const base = Math.min(initial * 2 ** attempt, maximum);
  return base * (1 - 0.25 * random());
}

/** Milliseconds to wait: the server's `Retry-After` when it gives a sane one, else the backoff. */
export function retryDelay(attempt: number, headers?: Headers | null): number {
  const after = parseRetryAfter(headers?.get("Retry-After"));
  if (after !== null && after <= MAX_RETRY_AFTER) return after * 1000;
  return backoffDelay(attempt);
}
