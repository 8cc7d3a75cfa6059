import assert from "node:assert/strict";
import { test } from "node:test";

import { NotFoundError, PermissionDeniedError } from "../src/index.js";
import { liveServer, makeAgent } from "./helpers.js";

await liveServer();

test("a grant lets a second agent read a namespace; a third still cannot", async () => {
  const alice = await makeAgent("alice");
  const bob = await makeAgent("bob");
  const carol = await makeAgent("carol");

  const team = await alice.client.createNamespace("project-apollo", { description: "demo prep" });
  assert.equal(team.permission, "owner");
  assert.equal(team.description, "demo prep");
  const { memory } = await alice.client.createMemory(
    "The Apollo demo for the customer is on March 3",
    { namespace_id: team.id, kind: "fact" },
  );

  // Before the grant, the namespace does not exist for Bob.
  await assert.rejects(bob.client.getMemory(memory.id), NotFoundError);
  await assert.rejects(bob.client.getNamespace(team.id), NotFoundError);

  const grant = await alice.client.createGrant(team.id, bob.id, "read");
  assert.equal(grant.permission, "read");
  assert.deepEqual(
    (await alice.client.listGrants(team.id)).data.map((g) => g.agent_id),
    [bob.id],
  );

  assert.equal((await bob.client.getMemory(memory.id)).id, memory.id);
  const names = (await bob.client.listNamespaces()).data.map((n) => [n.name, n.permission]);
  assert.deepEqual(names.sort(), [
    ["default", "owner"],
    ["project-apollo", "read"],
  ]);
  const found = await bob.client.search("when is the customer demo?", { k: 1 });
  assert.equal(found.results[0]?.memory.id, memory.id);

  // Reading is all Bob may do; Carol, never granted, sees nothing.
  await assert.rejects(
    bob.client.createMemory("Demo moved to March 4", { namespace_id: team.id }),
    PermissionDeniedError,
  );
  await assert.rejects(carol.client.getMemory(memory.id), NotFoundError);
  assert.equal((await carol.client.search("when is the customer demo?")).results.length, 0);

  // Alice sees Bob's reads in the audit trail, then revokes the grant.
  const audit = [];
  for await (const event of alice.client.iterAuditEvents(team.id, { limit: 1 })) audit.push(event);
  assert.ok(audit.length >= 2);
  assert.ok(audit.every((event) => event.agent_id === bob.id && event.action === "read"));
  await alice.client.revokeGrant(team.id, grant.id);
  await assert.rejects(bob.client.getMemory(memory.id), NotFoundError);
});
