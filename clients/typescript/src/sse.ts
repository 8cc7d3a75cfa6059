/** Streamed bodies: their lines as they arrive, and server-sent events (the SSE framing rules). */

/** A finished event of a `text/event-stream`: its name (`message` unless given), data and id. */
export interface SSEFrame {
  event: string;
  data: string;
  id: string | null;
}

/** The lines of a byte stream (without line ends: LF, CRLF or CR), decoded as UTF-8. */
export async function* readLines(
  reader: ReadableStreamDefaultReader<Uint8Array>,
): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { done, value } = await reader.read();
    buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
    let start = 0;
    for (;;) {
      const end = lineEnd(buffer, start);
      if (end === -1) break;
      // A CR last in the buffer may be the first half of a CRLF: wait for the next chunk.
      if (buffer[end] === "\r" && end === buffer.length - 1 && !done) break;
      yield buffer.slice(start, end);
      start = end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1);
    }
    buffer = buffer.slice(start);
    if (done) {
      if (buffer) yield buffer;
      return;
    }
  }
}

function lineEnd(text: string, from: number): number {
  const lf = text.indexOf("\n", from);
  const cr = text.indexOf("\r", from);
  if (lf === -1) return cr;
  if (cr === -1) return lf;
  return Math.min(lf, cr);
}

/** Turns the lines of a `text/event-stream` body into events. */
export class SSEParser {
  /** How long to wait before reconnecting, in ms: 2 s unless the server sends `retry:`. */
  retryMs = 2000;
  #event: string | null = null;
  #data: string[] = [];
  #id: string | null = null;

  /** Take one line; return the event it completes, if any. */
  feed(line: string): SSEFrame | null {
    if (line === "") {
      if (this.#data.length === 0) {
        this.#event = null;
        return null;
      }
      const frame = { event: this.#event ?? "message", data: this.#data.join("\n"), id: this.#id };
      this.#event = null;
      this.#data = [];
      this.#id = null;
      return frame;
    }
    if (line.startsWith(":")) return null; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.#event = value;
    else if (name === "data") this.#data.push(value);
    else if (name === "id") this.#id = value;
    else if (name === "retry" && /^[0-9]+$/.test(value)) this.retryMs = Number(value);
    return null;
  }
}
