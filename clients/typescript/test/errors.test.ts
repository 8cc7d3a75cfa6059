import assert from "node:assert/strict";
import { test } from "node:test";

import {
  APIConnectionError,
  APIResponseValidationError,
  APIStatusError,
  APITimeoutError,
  AuthenticationError,
  BadRequestError,
  ConflictError,
  errorClass,
  InternalServerError,
  MemoryClient,
  MemoryClientError,
  makeStatusError,
  NotFoundError,
  PayloadTooLargeError,
  PermissionDeniedError,
  PreconditionFailedError,
  PreconditionRequiredError,
  RateLimitError,
  UnprocessableEntityError,
} from "../src/index.js";
import { client, json, liveServer, loopback, makeAgent } from "./helpers.js";

await liveServer();

test("a bad key is AuthenticationError with the server's code and request id", async () => {
  const bad = await client({ apiKey: "mk_not_a_real_key" });
  await assert.rejects(bad.me(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError);
    assert.ok(error instanceof APIStatusError && error instanceof MemoryClientError);
    assert.equal(error.status, 401);
    assert.equal(typeof error.code, "string");
    assert.ok(error.detail);
    assert.match(error.requestId ?? "", /\S/);
    assert.match(error.message, /^401 /);
    assert.equal(error.name, "AuthenticationError");
    return true;
  });
});

test("a validation failure is UnprocessableEntityError with code, detail and errors", async () => {
  const { client: agent } = await makeAgent();
  await assert.rejects(
    agent.createMemory("x", { importance: 7 }, { headers: { "X-Request-ID": "ts-req-1" } }),
    (error: unknown) => {
      assert.ok(error instanceof UnprocessableEntityError);
      assert.equal(error.status, 422);
      assert.equal(error.code, "validation_error");
      assert.ok(error.detail);
      assert.equal(error.requestId, "ts-req-1");
      assert.ok(error.errors?.some((e) => JSON.stringify(e).includes("importance")));
      return true;
    },
  );
});

test("an admin route with an agent key is PermissionDeniedError", async () => {
  const { client: agent } = await makeAgent();
  await assert.rejects(agent.listAgents(), PermissionDeniedError);
  const me = await agent.me();
  assert.equal(me.is_admin, false);
});

test("one mapping function picks the class by status", () => {
  const expected: [number, Function][] = [
    [400, BadRequestError],
    [401, AuthenticationError],
    [403, PermissionDeniedError],
    [404, NotFoundError],
    [409, ConflictError],
    [412, PreconditionFailedError],
    [413, PayloadTooLargeError],
    [422, UnprocessableEntityError],
    [428, PreconditionRequiredError],
    [429, RateLimitError],
    [500, InternalServerError],
    [503, InternalServerError],
    [418, APIStatusError],
  ];
  for (const [status, Class] of expected) assert.equal(errorClass(status), Class, `${status}`);

  const headers = new Headers({ "X-Request-ID": "req_1", "Retry-After": "7" });
  const limited = makeStatusError(429, { code: "rate_limited", detail: "Slow down." }, headers);
  assert.ok(limited instanceof RateLimitError);
  assert.equal(limited.retryAfter, 7);
  assert.equal(limited.message, "429 rate_limited: Slow down. [request_id=req_1]");

  const text = makeStatusError(502, "<html>Bad gateway</html>", new Headers(), "Bad Gateway");
  assert.ok(text instanceof InternalServerError);
  assert.equal(text.code, null);
  assert.equal(text.detail, "<html>Bad gateway</html>");
  assert.equal(makeStatusError(500, null, new Headers(), "Oops").detail, "Oops");
});

test("no answer in time is APITimeoutError; no server is APIConnectionError", async () => {
  const server = await loopback([() => undefined]); // never answers
  const slow = new MemoryClient({ baseUrl: server.url, timeout: 200, maxRetries: 0 });
  await assert.rejects(slow.health(), (error: unknown) => {
    assert.ok(error instanceof APITimeoutError && error instanceof APIConnectionError);
    return true;
  });
  await server.close();

  const gone = new MemoryClient({ baseUrl: server.url, maxRetries: 0 });
  await assert.rejects(gone.health(), (error: unknown) => {
    assert.ok(error instanceof APIConnectionError);
    assert.ok(!(error instanceof APITimeoutError));
    assert.match(error.message, /GET \/healthz/);
    return true;
  });
});

test("a success body that is not JSON is APIResponseValidationError", async () => {
  const server = await loopback([
    (_, response) => {
      response.writeHead(200, { "Content-Type": "text/html", "X-Request-ID": "req_html" });
      response.end("<html>captive portal</html>");
    },
  ]);
  try {
    const odd = new MemoryClient({ baseUrl: server.url, maxRetries: 0 });
    await assert.rejects(odd.me(), (error: unknown) => {
      assert.ok(error instanceof APIResponseValidationError);
      assert.equal(error.requestId, "req_html");
      assert.equal(error.body, "<html>captive portal</html>");
      return true;
    });
  } finally {
    await server.close();
  }
});

test("an aborted signal rejects with its reason and is not retried", async () => {
  const server = await loopback([json(503, { code: "store_unavailable", detail: "Down." })]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url, maxRetries: 5 });
    await assert.rejects(memory.me({ signal: AbortSignal.abort(new Error("cancelled")) }), {
      message: "cancelled",
    });
    assert.equal(server.seen.length, 0);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("gave up")), 100);
    await assert.rejects(memory.me({ signal: controller.signal }), { message: "gave up" });
    assert.equal(server.seen.length, 1); // the backoff sleep was cut short
  } finally {
    await server.close();
  }
});
