import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFoundError, PreconditionFailedError } from "../src/index.js";
import { liveServer, makeAgent } from "./helpers.js";

await liveServer();

test("a stored memory is found by search and comes back by id", async () => {
  const { client, namespaceId } = await makeAgent();
  const written = await client.createMemory("Dana prefers email over phone calls", {
    kind: "preference",
    user_id: "dana",
    importance: 0.9,
    tags: ["contact"],
    metadata: { source: "ts" },
  });
  assert.equal(written.created, true);
  assert.equal(written.memory.namespace_id, namespaceId);
  assert.deepEqual(written.memory.metadata, { source: "ts" });

  const again = await client.createMemory("Dana prefers email over phone calls", {
    kind: "preference",
    user_id: "dana",
  });
  assert.equal(again.created, false);
  assert.equal(again.memory.id, written.memory.id);

  await client.createMemory("The office plant needs water on Fridays", { kind: "note" });
  const found = await client.search("how should I contact Dana?", { k: 1 });
  assert.equal(found.results[0]?.memory.id, written.memory.id);
  assert.ok((found.results[0]?.similarity ?? 0) > 0.3);

  const fetched = await client.getMemory(written.memory.id);
  assert.equal(fetched.content, "Dana prefers email over phone calls");
  assert.deepEqual(fetched.tags, ["contact"]);
});

test("a batch is stored whole, and remember() files chat messages in one batch", async () => {
  const { client } = await makeAgent();
  const batch = await client.createMemories([
    { content: "Ana is planning a trip to Porto", user_id: "ana", kind: "fact" },
    { content: "Ana's budget is 900 euros", user_id: "ana", kind: "fact" },
  ]);
  assert.equal(batch.created, 2);
  assert.equal(batch.results.length, 2);

  const remembered = await client.remember(
    [
      { role: "user", content: "My order #1042 arrived damaged.", name: "dana" },
      { role: "assistant", content: [{ text: "Sorry!" }, "A replacement ships Monday."] },
      { role: "tool", content: "   " },
    ],
    { thread_id: "t-42", user_id: "dana" },
  );
  assert.equal(remembered.created, 2);
  const [first, second] = remembered.results.map((r) => r.memory);
  assert.equal(first?.kind, "message");
  assert.equal(first?.role, "user");
  assert.deepEqual(first?.metadata, { name: "dana" });
  assert.equal(second?.content, "Sorry!\nA replacement ships Monday.");

  const empty = await client.remember([{ role: "user", content: "" }]);
  assert.deepEqual(empty, { results: [], created: 0, deduplicated: 0 });

  const thread = await client.listMemories({ thread_id: "t-42" });
  assert.equal(thread.data.length, 2);
  const all = [];
  for await (const memory of client.iterMemories({ limit: 1 })) all.push(memory.id);
  assert.equal(all.length, 4);
  assert.equal(new Set(all).size, 4);
});

test("context stays within its token budget and holds the thread and the facts", async () => {
  const { client } = await makeAgent();
  await client.createMemory("Dana prefers email over phone calls", {
    kind: "preference",
    user_id: "dana",
    key: "contact.channel",
  });
  await client.remember([{ role: "user", content: "Hi, did my replacement ship yet?" }], {
    thread_id: "t-43",
    user_id: "dana",
  });
  for (const budget of [40, 200]) {
    const context = await client.context("Has the replacement shipped?", {
      budget_tokens: budget,
      user_id: "dana",
      thread_id: "t-43",
    });
    assert.equal(context.budget_tokens, budget);
    assert.ok(context.tokens_used <= budget, `${context.tokens_used} > ${budget}`);
  }
  const roomy = await client.context("Has the replacement shipped?", {
    budget_tokens: 200,
    user_id: "dana",
    thread_id: "t-43",
  });
  assert.match(roomy.context, /did my replacement ship yet/);
  assert.match(roomy.context, /Dana prefers email/);
  assert.deepEqual(new Set(roomy.items.map((item) => item.tier)), new Set(["thread", "facts"]));
});

test("a keyed fact's new value supersedes the old one", async () => {
  const { client } = await makeAgent();
  const old = await client.createMemory("Ana lives in Lisbon", { key: "home.city", kind: "fact" });
  const now = await client.createMemory("Ana lives in Porto", { key: "home.city", kind: "fact" });
  assert.equal(now.superseded_id, old.memory.id);
  const previous = await client.getMemory(old.memory.id);
  assert.equal(previous.status, "superseded");
  assert.equal(previous.superseded_by, now.memory.id);
  const active = await client.listMemories({ kind: ["fact"] });
  assert.deepEqual(
    active.data.map((m) => m.content),
    ["Ana lives in Porto"],
  );
  const history = await client.listMemories({ status: ["active", "superseded"] });
  assert.equal(history.data.length, 2);
});

test("update needs the current version: a stale one is PreconditionFailedError", async () => {
  const { client } = await makeAgent();
  const { memory } = await client.createMemory("Standup is at 9:30", {
    expires_at: new Date(Date.now() + 86_400_000).toISOString(),
  });
  const updated = await client.updateMemory(memory.id, {
    version: memory.version,
    content: "Standup is at 10:00",
    tags: ["meetings"],
    expires_at: null,
  });
  assert.equal(updated.version, memory.version + 1);
  assert.equal(updated.content, "Standup is at 10:00");
  assert.equal(updated.expires_at, null);

  await assert.rejects(
    client.updateMemory(memory.id, { version: memory.version, content: "Standup is at 11" }),
    (error: unknown) => {
      assert.ok(error instanceof PreconditionFailedError);
      assert.equal(error.status, 412);
      assert.equal(typeof error.code, "string");
      assert.ok(error.requestId);
      return true;
    },
  );
  assert.equal((await client.getMemory(memory.id)).content, "Standup is at 10:00");
});

test("a deleted memory is gone: NotFoundError afterwards", async () => {
  const { client, id } = await makeAgent();
  const { memory } = await client.createMemory("Temporary note");
  const deleted = await client.deleteMemory(memory.id);
  assert.equal(deleted.id, memory.id);
  assert.equal(deleted.deleted_by, id);
  assert.deepEqual(deleted.also_deleted, []);
  await assert.rejects(client.getMemory(memory.id), (error: unknown) => {
    assert.ok(error instanceof NotFoundError);
    assert.equal(error.code, "memory_not_found");
    return true;
  });
  assert.equal((await client.search("Temporary note")).results.length, 0);
});
