/**
 * `memory-server serve` as a child process on a free loopback port, with its own temporary data
 * directory and admin key: what the tests run against and what `npm run generate` reads the
 * OpenAPI document from.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, openSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PACKAGE_DIR = resolve(fileURLToPath(new URL("..", import.meta.url)));
export const REPO_DIR = resolve(PACKAGE_DIR, "..", "..");

/** The server command: `MEMORY_SERVER_COMMAND`, else the repository's `.venv/bin/memory-server`. */
export function serverCommand(): string {
  return process.env.MEMORY_SERVER_COMMAND ?? join(REPO_DIR, ".venv", "bin", "memory-server");
}

export interface LiveServer {
  url: string;
  adminKey: string;
  stop(): Promise<void>;
}

/** Start a server and wait until `/readyz` answers 200 (the model loads first: seconds). */
export async function startServer({ timeoutMs = 180_000 } = {}): Promise<LiveServer> {
  const command = serverCommand();
  if (!existsSync(command)) {
    throw new Error(`${command} not found: run \`make install\` in ${REPO_DIR} first`);
  }
  const dataDir = await mkdtemp(join(tmpdir(), "memory-client-ts-"));
  const port = await freePort();
  const adminKey = `admin-${randomBytes(16).toString("hex")}`;
  const url = `http://127.0.0.1:${port}`;
  const logPath = join(dataDir, "server.log");
  const log = openSync(logPath, "a");
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("MEMORY_")),
  );
  const child = spawn(command, ["serve"], {
    env: {
      ...inherited,
      HF_HUB_OFFLINE: "1",
      TRANSFORMERS_OFFLINE: "1",
      LITELLM_LOCAL_MODEL_COST_MAP: "True",
      ANONYMIZED_TELEMETRY: "False",
      MEMORY_DATA_DIR: join(dataDir, "data"),
      MEMORY_ADMIN_KEY: adminKey,
      MEMORY_HOST: "127.0.0.1",
      MEMORY_PORT: String(port),
      MEMORY_LOG_LEVEL: "warning",
      MEMORY_EVENT_STREAM_POLL_SECONDS: "0.2",
    },
    stdio: ["ignore", log, log],
  });
  const stopOnExit = (): void => void child.kill("SIGKILL");
  process.once("exit", stopOnExit);
  const stop = async (): Promise<void> => {
    process.removeListener("exit", stopOnExit);
    await terminate(child);
    await rm(dataDir, { recursive: true, force: true });
  };
  const tail = (): string => readFileSync(logPath, "utf8").split("\n").slice(-20).join("\n");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop().catch(() => undefined);
      throw new Error(`memory-server exited during startup:\n${tail()}`);
    }
    try {
      if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) })).ok) {
        return { url, adminKey, stop };
      }
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  const message = `memory-server did not become ready in ${timeoutMs} ms:\n${tail()}`;
  await stop();
  throw new Error(message);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  child.kill("SIGTERM"); // graceful: open event streams end at once, stores close
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => done(port));
    });
  });
}
