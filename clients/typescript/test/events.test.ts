import assert from "node:assert/strict";
import { test } from "node:test";

import {
  AuthenticationError,
  BadRequestError,
  type EventPublic,
  MemoryClient,
  NotFoundError,
} from "../src/index.js";
import { client, liveServer, loopback, makeAgent, type Reply } from "./helpers.js";

await liveServer();

test("the event log lists writes oldest first, page by page", async () => {
  const { client: agent } = await makeAgent();
  const first = await agent.createMemory("Ana lives in Lisbon", { key: "home.city" });
  const second = await agent.createMemory("Ana lives in Porto", { key: "home.city" });
  const page = await agent.listEvents({ limit: 2 });
  assert.deepEqual(
    page.data.map((e) => [e.type, e.memory_id]),
    [
      ["created", first.memory.id],
      ["superseded", first.memory.id],
    ],
  );
  assert.equal(page.has_more, true);
  const rest = await agent.listEvents({ after: page.next_cursor });
  assert.deepEqual(
    rest.data.map((e) => [e.type, e.memory_id]),
    [["created", second.memory.id]],
  );
  const all: EventPublic[] = [];
  for await (const event of agent.iterEvents({ limit: 1 })) all.push(event);
  assert.equal(all.length, 3);
  await assert.rejects(agent.listEvents({ after: "not-a-cursor" }), BadRequestError);
});

test("the event stream yields an event for a write made while it is open", async () => {
  const { client: agent } = await makeAgent();
  const { next_cursor } = await agent.listEvents();
  const controller = new AbortController();
  const stream = agent.streamEvents({ after: next_cursor }, { signal: controller.signal });
  const next = stream.next(); // opens the stream and waits for its first event
  const { memory } = await agent.createMemory("Streams carry events as they happen");
  const { value, done } = await next;
  assert.equal(done, false);
  assert.equal(value?.type, "created");
  assert.equal(value?.memory_id, memory.id);

  // A later write arrives on the same stream; then `return()` closes it.
  const later = stream.next();
  const second = await agent.createMemory("A second write");
  assert.equal((await later).value?.memory_id, second.memory.id);
  assert.deepEqual(await stream.return(undefined), { value: undefined, done: true });

  // A signal stops a stream that is waiting for an event.
  const waiting = agent.streamEvents({}, { signal: controller.signal });
  const pending = waiting.next();
  setTimeout(() => controller.abort(new Error("stop")), 300);
  await assert.rejects(pending, /stop/);
});

test("the event stream with a bad key is AuthenticationError", async () => {
  const bad = await client({ apiKey: "mk_not_a_key" });
  const stream = bad.streamEvents();
  await assert.rejects(stream.next(), (error: unknown) => {
    assert.ok(error instanceof AuthenticationError);
    assert.equal(error.status, 401);
    return true;
  });
});

/** An SSE reply: the frames, then the end of the stream. */
function sse(...frames: string[]): Reply {
  return (_, response) => {
    response.writeHead(200, { "Content-Type": "text/event-stream" });
    response.end(frames.join(""));
  };
}

function event(id: number): string {
  const body = { id, type: "created", namespace_id: "ns_1", memory_id: `mem_${id}` };
  return `id: ${id}\ndata: ${JSON.stringify(body)}\n\n`;
}

test("an ended stream reconnects after its last event; an error frame throws", async () => {
  const lost = { status: 404, code: "namespace_not_found", detail: "Namespace 'ns_1' ..." };
  const server = await loopback([
    sse("retry: 10\n\n", event(1), event(2)),
    sse(": heartbeat\n\n", event(3), `event: error\ndata: ${JSON.stringify(lost)}\n\n`),
  ]);
  try {
    const memory = new MemoryClient({ baseUrl: server.url, apiKey: "mk_test" });
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of memory.streamEvents({ after: "0", namespace_id: ["ns_1"] })) {
          seen.push(e.id);
        }
      })(),
      (error: unknown) => {
        assert.ok(error instanceof NotFoundError);
        assert.equal(error.code, "namespace_not_found");
        return true;
      },
    );
    assert.deepEqual(seen, [1, 2, 3]);
    const [first, second] = server.seen;
    assert.equal(first?.url, "/v1/events/stream?after=0&namespace_id=ns_1");
    assert.equal(first?.headers["last-event-id"], undefined);
    assert.equal(second?.url, "/v1/events/stream?namespace_id=ns_1");
    assert.equal(second?.headers["last-event-id"], "2");
    assert.equal(second?.headers.accept, "text/event-stream");

    // Without reconnecting, the stream simply ends with the server's.
    const once: number[] = [];
    const again = await loopback([sse(event(1))]);
    const single = new MemoryClient({ baseUrl: again.url });
    for await (const e of single.streamEvents({}, { reconnect: false })) once.push(e.id);
    assert.deepEqual(once, [1]);
    await again.close();
  } finally {
    await server.close();
  }
});
