/** Chat messages as memories: what `remember()` stores for each message. */
import type { MemoryCreate, Role } from "./models.js";

/**
 * A chat message: `content` is text or a list of parts (strings or `{ text }`). `metadata`,
 * `tags`, `importance`, `created_at` and `expires_at` are stored as such; any other field
 * (`name`, `tool_call_id`, ...) is kept in the memory's metadata.
 */
export interface Message {
  role: Role;
  content?: string | ReadonlyArray<string | { text?: unknown }> | null;
  [field: string]: unknown;
}

/** Where `remember()` files the messages. */
export interface RememberParams {
  thread_id?: string | null;
  user_id?: string | null;
  namespace_id?: string | null;
}

const PASSTHROUGH = ["tags", "importance", "created_at", "expires_at"] as const;

/** The text of a message's content: a string, or the text parts of a list of parts. */
function messageText(content: Message["content"]): string | null {
  if (content === undefined || content === null) return null;
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .flatMap((part) =>
        typeof part === "string" ? [part] : typeof part?.text === "string" ? [part.text] : [],
      )
      .join("\n");
  }
  return String(content);
}

/** A message as a `kind: "message"` memory, or null when it has no text to store. */
export function messageMemory(message: Message, where: RememberParams): MemoryCreate | null {
  const text = messageText(message.content);
  if (text === null || !text.trim()) return null;
  const { role, content: _content, metadata: given, ...extra } = message;
  const metadata: Record<string, unknown> =
    typeof given === "object" && given !== null && !Array.isArray(given) ? { ...given } : {};
  const fields: Record<string, unknown> = {};
  for (const name of PASSTHROUGH) {
    if (name in extra) {
      fields[name] = extra[name];
      delete extra[name];
    }
  }
  Object.assign(metadata, extra); // name, tool_call_id, tool_calls, ...: kept, not lost
  return {
    ...(fields as Partial<MemoryCreate>),
    content: text,
    kind: "message",
    role,
    ...where,
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
  };
}
