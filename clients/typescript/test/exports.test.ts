import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { REPO_DIR } from "../scripts/server.js";
import * as api from "../src/index.js";

test("the package exports exactly its documented surface", () => {
  assert.deepEqual(Object.keys(api).sort(), [
    "APIConnectionError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "API_KEY_ENV",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "IDEMPOTENCY_HEADER",
    "InternalServerError",
    "MemoryClient",
    "MemoryClientError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "REQUEST_ID_HEADER",
    "RateLimitError",
    "URL_ENV",
    "UnprocessableEntityError",
    "VERSION",
    "errorClass",
    "makeStatusError",
  ]);
});

test("the client reads MEMORY_URL and MEMORY_API_KEY when not given them", () => {
  const saved = { url: process.env.MEMORY_URL, key: process.env.MEMORY_API_KEY };
  try {
    process.env.MEMORY_URL = "http://memory.example:9000/";
    delete process.env.MEMORY_API_KEY;
    assert.equal(new api.MemoryClient().baseUrl, "http://memory.example:9000");
    delete process.env.MEMORY_URL;
    assert.equal(new api.MemoryClient().baseUrl, api.DEFAULT_BASE_URL);
    assert.equal(new api.MemoryClient({ baseUrl: "http://x:1//" }).baseUrl, "http://x:1");
    assert.throws(() => new api.MemoryClient({ maxRetries: -1 }), RangeError);
  } finally {
    for (const [name, value] of [
      ["MEMORY_URL", saved.url],
      ["MEMORY_API_KEY", saved.key],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});

test("every method of the Python SDK's MemoryClient has its camelCase twin here", async () => {
  const python = await readFile(
    join(REPO_DIR, "clients", "python", "memory_client", "_client.py"),
    "utf8",
  );
  const methods = [...python.matchAll(/^ {4}def ([a-z]\w*)\(/gm)]
    .map(([, name]) => name ?? "")
    .filter((name) => name !== "close"); // fetch keeps no connections of the client's to close
  assert.ok(methods.length > 30);
  const camel = (name: string): string =>
    name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  const missing = methods.filter(
    (name) => typeof Reflect.get(api.MemoryClient.prototype, camel(name)) !== "function",
  );
  assert.deepEqual(missing, []);
});
