/**
 * TypeScript client for memory-server: long-term memory for AI agents over HTTP.
 *
 *   import { MemoryClient } from "memory-client";
 *
 *   const memory = new MemoryClient(); // MEMORY_URL and MEMORY_API_KEY from the environment
 *   await memory.remember([{ role: "user", content: "Short answers." }], { thread_id: "t1" });
 *   const { context } = await memory.context("how should I answer?", { budget_tokens: 500 });
 */
export {
  API_KEY_ENV,
  type ClientOptions,
  DEFAULT_BASE_URL,
  DEFAULT_TIMEOUT,
  IDEMPOTENCY_HEADER,
  MemoryClient,
  type RequestOptions,
  type StreamOptions,
  URL_ENV,
  type WriteOptions,
} from "./client.js";
export {
  APIConnectionError,
  APIResponseValidationError,
  APIStatusError,
  APITimeoutError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  errorClass,
  InternalServerError,
  MemoryClientError,
  makeStatusError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  PreconditionFailedError,
  PreconditionRequiredError,
  RateLimitError,
  REQUEST_ID_HEADER,
  UnprocessableEntityError,
} from "./errors.js";
export type { components, operations, paths } from "./generated/openapi.js";
export type { Message, RememberParams } from "./messages.js";
export type * from "./models.js";
export { DEFAULT_MAX_RETRIES } from "./retry.js";
export { VERSION } from "./version.js";
