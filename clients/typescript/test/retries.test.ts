import assert from "node:assert/strict";
import { test } from "node:test";

import {
  APIConnectionError,
  AuthenticationError,
  ConflictError,
  InternalServerError,
  MemoryClient,
  RateLimitError,
} from "../src/index.js";
import { backoffDelay, isRetryable, retryDelay } from "../src/retry.js";
import { parseRetryAfter } from "../src/retry-after.js";
import { client, json, liveServer, loopback, makeAgent } from "./helpers.js";

await liveServer();

const WRITTEN = {
  memory: { id: "mem_1", content: "x" },
  created: true,
  superseded_id: null,
};

test("a 503 with Retry-After is retried with the same Idempotency-Key", async () => {
  const server = await loopback([
    json(503, { code: "store_unavailable", detail: "Chroma is down." }, { "Retry-After": "0" }),
    json(201, WRITTEN),
  ]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url, apiKey: "mk_test" });
    const result = await memory.createMemory("x");
    assert.equal(result.memory.id, "mem_1");
    assert.equal(server.seen.length, 2);
    const [first, second] = server.seen.map((request) => request.headers["idempotency-key"]);
    assert.match(String(first), /^[0-9a-f-]{36}$/);
    assert.equal(second, first);
    assert.equal(server.seen[1]?.body, server.seen[0]?.body);
    assert.equal(server.seen[0]?.headers.authorization, "Bearer mk_test");
  } finally {
    await server.close();
  }
});

test("a caller's Idempotency-Key is sent on every attempt; 429 waits for Retry-After", async () => {
  const server = await loopback([
    json(429, { code: "rate_limited", detail: "Slow down." }, { "Retry-After": "0.3" }),
    json(201, WRITTEN),
  ]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url });
    const started = Date.now();
    await memory.createMemories([{ content: "x" }], { idempotencyKey: "batch-7" });
    assert.ok(Date.now() - started >= 290, "waited for Retry-After");
    assert.deepEqual(
      server.seen.map((request) => request.headers["idempotency-key"]),
      ["batch-7", "batch-7"],
    );
  } finally {
    await server.close();
  }
});

test("retries stop after maxRetries and raise the last error", async () => {
  const down = json(503, { code: "store_unavailable", detail: "Down." }, { "Retry-After": "0" });
  const server = await loopback([down]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url, maxRetries: 2 });
    await assert.rejects(memory.health(), InternalServerError);
    assert.equal(server.seen.length, 3);
    const limited = new MemoryClient({ baseUrl: server.url, maxRetries: 0 });
    await assert.rejects(limited.health(), InternalServerError);
    assert.equal(server.seen.length, 4);
  } finally {
    await server.close();
  }
});

test("4xx other than 408 and 429 are not retried", async () => {
  const server = await loopback([json(401, { code: "invalid_api_key", detail: "No." })]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url, maxRetries: 3 });
    await assert.rejects(memory.me(), AuthenticationError);
    assert.equal(server.seen.length, 1);
  } finally {
    await server.close();
  }
});

test("a write whose answer was lost is retried and stored once", async () => {
  const { url } = await liveServer();
  const { key } = await makeAgent();
  let attempts = 0;
  // The first attempt reaches the server and commits, but its answer never reaches the caller.
  const flaky: typeof fetch = async (input, init) => {
    attempts += 1;
    const response = await fetch(input, init);
    if (attempts === 1) throw new TypeError("fetch failed: connection reset");
    return response;
  };
  const memory = new MemoryClient({ baseUrl: url, apiKey: key, fetch: flaky });
  const result = await memory.createMemories([
    { content: "Message one", kind: "message", role: "user", thread_id: "t" },
    { content: "Message one", kind: "message", role: "user", thread_id: "t" },
  ]);
  assert.equal(attempts, 2);
  assert.equal(result.created, 2);
  const agent = await client({ apiKey: key });
  const stored = await agent.listMemories({ thread_id: "t" });
  assert.equal(stored.data.length, 2); // messages are never deduplicated: the replay did this
});

test("retry policy: what is retried, and how long to wait", () => {
  assert.equal(isRetryable(new RateLimitError(429, null, null, null, null)), true);
  assert.equal(isRetryable(new InternalServerError(503, null, null, null, null)), true);
  assert.equal(isRetryable(new AuthenticationError(401, null, null, null, null)), false);
  assert.equal(isRetryable(new APIConnectionError()), true);
  const inProgress = new ConflictError(409, "idempotency_in_progress", null, null, null);
  assert.equal(isRetryable(inProgress), true);
  assert.equal(isRetryable(new ConflictError(409, "grant_exists", null, null, null)), false);

  assert.equal(parseRetryAfter("3"), 3);
  assert.equal(parseRetryAfter(" 0.5 "), 0.5);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter("soon"), null);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:10 GMT", now), 10);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);

  assert.equal(retryDelay(0, new Headers({ "Retry-After": "2" })), 2000);
  const ignored = retryDelay(0, new Headers({ "Retry-After": "3600" })); // too long: backoff
  assert.ok(ignored >= 375 && ignored <= 500, `${ignored}`);
  assert.equal(backoffDelay(0, { random: () => 0 }), 500);
  assert.equal(backoffDelay(2, { random: () => 1 }), 1500);
  assert.equal(backoffDelay(10, { random: () => 0 }), 8000);
});
