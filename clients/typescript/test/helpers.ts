/**
 * Test fixtures: the live server (`npm test` starts one for the run and passes it in
 * `MEMORY_TEST_URL`; a file run alone starts its own), agents with keys, and a loopback HTTP
 * server whose answers a test scripts.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { after } from "node:test";

import { type ClientOptions, MemoryClient } from "../src/index.js";
import { startServer } from "../scripts/server.js";

export interface Live {
  url: string;
  adminKey: string;
}

let live: Promise<Live> | undefined;

/** The server under test; call it at a test file's top level. */
export function liveServer(): Promise<Live> {
  live ??= (async () => {
    const url = process.env.MEMORY_TEST_URL;
    const adminKey = process.env.MEMORY_TEST_ADMIN_KEY;
    if (url && adminKey) return { url, adminKey };
    const server = await startServer();
    after(() => server.stop());
    return server;
  })();
  return live;
}

/** A client of the live server with the admin key, or `options.apiKey`. */
export async function client(options: ClientOptions = {}): Promise<MemoryClient> {
  const { url, adminKey } = await liveServer();
  return new MemoryClient({ baseUrl: url, apiKey: adminKey, ...options });
}

export interface Agent {
  id: string;
  key: string;
  namespaceId: string;
  client: MemoryClient;
}

/** A new agent with a key, and a client of the live server acting as it. */
export async function makeAgent(name = "agent"): Promise<Agent> {
  const admin = await client();
  const agent = await admin.createAgent(`${name}-${randomUUID().slice(0, 8)}`);
  const { key } = await admin.createKey(agent.id, { name: "test" });
  return {
    id: agent.id,
    key,
    namespaceId: agent.default_namespace_id ?? "",
    client: await client({ apiKey: key }),
  };
}

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

export type Reply = (request: Seen, response: ServerResponse) => void;

/** An HTTP server on 127.0.0.1 answering the nth request with `replies[n]` (the last repeats). */
export async function loopback(
  replies: Reply[],
): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const entry = {
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      seen.push(entry);
      const reply = replies[Math.min(seen.length, replies.length) - 1];
      reply?.(entry, response);
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** A JSON reply with a status and headers. */
export function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return (_, response) => {
    response.writeHead(status, { "Content-Type": "application/json", ...headers });
    response.end(JSON.stringify(body));
  };
}

/** Days ago, as an ISO 8601 timestamp. */
export function daysAgo(days: number, minutes = 0): string {
  return new Date(Date.now() - days * 86_400_000 + minutes * 60_000).toISOString();
}
