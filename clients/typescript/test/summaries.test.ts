import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFoundError } from "../src/index.js";
import { daysAgo, liveServer, makeAgent } from "./helpers.js";

await liveServer();

test("a summaries run condenses old messages; provenance walks back to them", async () => {
  const { client, namespaceId } = await makeAgent();
  const written = await client.createMemories(
    Array.from({ length: 6 }, (_, day) => ({
      content: Array.from(
        { length: 6 },
        (_, item) =>
          `On day ${day} of planning the Porto trip, item ${item} of the list was settled.`,
      ).join(" "),
      kind: "message",
      role: "user" as const,
      user_id: "ana",
      thread_id: "porto",
      created_at: daysAgo(10, day), // the server condenses what is older than 72 hours
    })),
  );
  const sourceIds = written.results.map((r) => r.memory.id).sort();

  const preview = await client.runSummaries(namespaceId, { dry_run: true });
  assert.equal(preview.dry_run, true);
  assert.deepEqual(preview.plan?.[0]?.source_ids.slice().sort(), sourceIds);
  assert.deepEqual(preview.summary_ids ?? [], []);

  const run = await client.runSummaries(namespaceId);
  assert.equal(run.status, "completed");
  assert.equal(run.sources, 6);
  assert.equal(run.summary_ids?.length, 1);
  const summaryId = run.summary_ids?.[0] ?? "";
  assert.equal((await client.getSummaryRun(run.id)).id, run.id);
  await assert.rejects(client.getSummaryRun("run_does_not_exist"), NotFoundError);

  const summary = await client.getMemory(summaryId);
  assert.equal(summary.kind, "summary");
  assert.equal(summary.level, 1);
  const tree = await client.getProvenance(summaryId);
  assert.equal(tree.memory.id, summaryId);
  assert.deepEqual(tree.sources.map((s) => s.memory.id).sort(), sourceIds);
  assert.ok(tree.sources.every((s) => s.memory.status === "archived" && s.sources.length === 0));
});

test("an export streams JSONL that imports back, idempotently", async () => {
  const { client, namespaceId } = await makeAgent();
  await client.createMemory("Ana lives in Lisbon", { key: "home.city", kind: "fact" });
  await client.createMemory("Ana lives in Porto", { key: "home.city", kind: "fact" });
  await client.createMemory("Ana likes trains", { kind: "preference" });

  const lines: string[] = [];
  for await (const line of client.export(namespaceId)) lines.push(line);
  const records = lines.map((line) => JSON.parse(line) as ExportRecord);
  assert.equal(records[0]?.type, "header");
  assert.equal(records.at(-1)?.type, "end");
  const ids = records.flatMap((r) => (r.type === "memory" && r.memory ? [r.memory.id] : []));
  assert.equal(ids.length, 3); // the superseded value too: keyed facts keep their history

  const markdown: string[] = [];
  for await (const line of client.export(namespaceId, { format: "markdown" })) markdown.push(line);
  assert.ok(markdown.some((line) => line.includes("Ana likes trains")));

  for (const id of ids) await client.deleteMemory(id);
  const restored = await client.importRecords(namespaceId, lines);
  assert.equal(restored.created, 3);
  assert.deepEqual(restored.conflicts, []);
  assert.equal(
    (await client.search("where does Ana live?", { k: 1 })).results[0]?.memory.content,
    "Ana lives in Porto",
  );
  const again = await client.importRecords(namespaceId, records);
  assert.equal(again.created, 0);
  assert.equal(again.skipped, 3);
});

interface ExportRecord {
  type: string;
  memory?: { id: string };
}
