import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { fetchDocument, GENERATED_PATH, renderTypes } from "../scripts/generate.js";
import { PACKAGE_DIR } from "../scripts/server.js";
import { liveServer } from "./helpers.js";

const { url } = await liveServer();
const document = (await fetchDocument(url)) as { components: { schemas: object } };

test("the checked-in types are what the served /openapi.json generates", async () => {
  const expected = await renderTypes(document);
  const actual = await readFile(GENERATED_PATH, "utf8");
  if (actual === expected) return;
  const [old, now] = [actual.split("\n"), expected.split("\n")];
  const line = old.findIndex((text, index) => text !== now[index]);
  assert.fail(
    "src/generated/openapi.ts is stale against the server's /openapi.json: run " +
      "`npm run generate` in clients/typescript, then fix what `npm run typecheck` reports. " +
      "First difference, " +
      `line ${line + 1}:\n- ${old[line] ?? ""}\n+ ${now[line] ?? ""}`,
  );
});

test("every schema of the server has its type in models.ts, under its own name", async () => {
  const models = await readFile(join(PACKAGE_DIR, "src", "models.ts"), "utf8");
  const aliased = new Set(
    [...models.matchAll(/^export type (\w+) = Schemas\["(\w+)"\];$/gm)]
      .filter(([, name, schema]) => name === schema)
      .map(([, name]) => name),
  );
  assert.deepEqual([...aliased].sort(), Object.keys(document.components.schemas).sort());
});
