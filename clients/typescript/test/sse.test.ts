import assert from "node:assert/strict";
import { test } from "node:test";

import { readLines, type SSEFrame, SSEParser } from "../src/sse.js";

function chunked(...parts: string[]): ReadableStreamDefaultReader<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      controller.close();
    },
  }).getReader();
}

async function lines(...parts: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const line of readLines(chunked(...parts))) out.push(line);
  return out;
}

test("lines end at LF, CRLF or CR, also when a chunk splits them", async () => {
  assert.deepEqual(await lines("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
  assert.deepEqual(await lines("a\r", "\nb\r", "c\n", "\n"), ["a", "b", "c", ""]);
  assert.deepEqual(await lines("caf", "\u00e9\n"), ["café"]);
  // A multi-byte character split across chunks is decoded whole.
  const bytes = new TextEncoder().encode("é\n");
  const reader = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(bytes.slice(0, 1));
      controller.enqueue(bytes.slice(1));
      controller.close();
    },
  }).getReader();
  const out: string[] = [];
  for await (const line of readLines(reader)) out.push(line);
  assert.deepEqual(out, ["é"]);
});

test("the SSE parser joins data lines, skips comments and reads id, event and retry", () => {
  const parser = new SSEParser();
  const frames: SSEFrame[] = [];
  const input = [
    ": heartbeat",
    "",
    "retry: 500",
    "id: 7",
    'data: {"a":',
    "data:1}",
    "",
    "event: error",
    'data: {"status": 401}',
    "",
  ];
  for (const line of input) {
    const frame = parser.feed(line);
    if (frame) frames.push(frame);
  }
  assert.equal(parser.retryMs, 500);
  assert.deepEqual(frames, [
    { event: "message", data: '{"a":\n1}', id: "7" },
    { event: "error", data: '{"status": 401}', id: null },
  ]);
});
