import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { PACKAGE_DIR, REPO_DIR } from "../scripts/server.js";
import { liveServer } from "./helpers.js";

const { url, adminKey } = await liveServer();

/** The README's TypeScript quickstart, between its markers: the key script and the program. */
async function quickstart(): Promise<{ script: string; program: string }> {
  const readme = await readFile(join(REPO_DIR, "README.md"), "utf8");
  const section = readme
    .split("<!-- typescript-quickstart:start -->")[1]
    ?.split("<!-- typescript-quickstart:end -->")[0];
  const script = section?.match(/```bash\n([\s\S]*?)```/)?.[1];
  const program = section?.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(script && program, "README.md's TypeScript quickstart has lost its blocks");
  return { script, program };
}

test("the README's TypeScript quickstart runs as written against the built package", async () => {
  assert.ok(existsSync(join(PACKAGE_DIR, "dist", "index.js")), "run `npm run build` first");
  const { script, program } = await quickstart();
  const run = promisify(execFile);

  // The key, made as the README says, by the admin key in var/admin.key of the current directory.
  const repo = await mkdtemp(join(tmpdir(), "readme-"));
  try {
    await mkdir(join(repo, "var"));
    await writeFile(join(repo, "var", "admin.key"), adminKey);
    const made = await run(
      "bash",
      [
        "-euo",
        "pipefail",
        "-c",
        `${script.replaceAll("http://127.0.0.1:8080", url)}\necho "$MEMORY_API_KEY"`,
      ],
      { cwd: repo },
    );
    const key = made.stdout.trim();
    assert.match(key, /^mk_/);

    // The program, from the package directory, where "memory-client" resolves to dist/.
    const { stdout } = await run(process.execPath, ["--input-type=module", "--eval", program], {
      cwd: PACKAGE_DIR,
      env: { ...process.env, MEMORY_URL: url, MEMORY_API_KEY: key },
    });
    const lines = stdout.split("\n");
    assert.match(lines[0] ?? "", /^0\.\d\d Dana prefers email over phone calls$/);
    const [, used, budget] = (lines[2] ?? "").match(/^(\d+) of (\d+) tokens:$/) ?? [];
    assert.equal(budget, "200");
    assert.ok(Number(used) > 0 && Number(used) <= 200, lines[2]);
    assert.match(stdout, /\[\d\d:\d\d · assistant\] Sorry! A replacement ships Monday\./);
    assert.match(stdout, /preference · contact\.channel\] Dana prefers email over phone calls/);
  } finally {
    await rm(repo, { recursive: true, force: true });
  }
});
