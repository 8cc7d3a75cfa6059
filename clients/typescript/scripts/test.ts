/**
 * `npm test`: build the package, start one memory-server for the whole run, then run
 * `node --test` over test/*.test.ts (or the files given) with the server's URL and admin key in
 * `MEMORY_TEST_URL` and `MEMORY_TEST_ADMIN_KEY`.
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

import { PACKAGE_DIR, startServer } from "./server.js";

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: PACKAGE_DIR, stdio: "inherit", env });
    child.on("exit", (code, signal) => done(code ?? (signal ? 128 : 1)));
  });
}

const files =
  process.argv.length > 2
    ? process.argv.slice(2)
    : readdirSync(join(PACKAGE_DIR, "test"))
        .filter((name) => name.endsWith(".test.ts"))
        .sort()
        .map((name) => join("test", name));

const tsc = join(PACKAGE_DIR, "node_modules", "typescript", "bin", "tsc");
// The README example imports the built package (dist/): build it while the server starts.
const [built, server] = await Promise.all([
  run(process.execPath, [tsc, "-p", "tsconfig.build.json"]),
  startServer(),
]);
let code = built;
const interrupted = (): void => void server.stop().finally(() => process.exit(130));
process.once("SIGINT", interrupted);
process.once("SIGTERM", interrupted);
try {
  if (code === 0) {
    const args = ["--import", "tsx", "--test", "--test-reporter=spec", ...files];
    code = await run(process.execPath, args, {
      ...process.env,
      MEMORY_TEST_URL: server.url,
      MEMORY_TEST_ADMIN_KEY: server.adminKey,
    });
  }
} finally {
  await server.stop();
}
process.exit(code);
