/**
 * `MemoryClient`: memory-server over HTTP, on the platform's `fetch` (Node 20+, browsers).
 *
 * Each method names its route as written in the generated `paths`, so its arguments and result
 * are the OpenAPI types; this module adds only what HTTP leaves to a client: the key, query
 * strings, `If-Match`, one `Idempotency-Key` per write kept across its retries, retries with
 * backoff, the mapping of error responses to errors, and reading streamed bodies.
 */
import {
  APIConnectionError,
  APIResponseValidationError,
  APIStatusError,
  APITimeoutError,
  MemoryClientError,
  makeStatusError,
  statusErrorFrom,
} from "./errors.js";
import type { paths } from "./generated/openapi.js";
import { type Message, messageMemory, type RememberParams } from "./messages.js";
import type {
  AgentPublic,
  AgentsPublic,
  ApiKeyCreate,
  ApiKeyCreated,
  ApiKeyPublic,
  ApiKeysPublic,
  AuditEventPublic,
  AuditEventsPublic,
  ContextRequest,
  ContextResponse,
  EmbeddingsPublic,
  EventPublic,
  EventsPublic,
  ExportParams,
  GrantPermission,
  GrantPublic,
  GrantsPublic,
  Health,
  ImportResult,
  ListAuditEventsParams,
  ListEmbeddingsParams,
  ListEventsParams,
  ListMemoriesParams,
  MemoriesPublic,
  MemoryBatchResult,
  MemoryCreate,
  MemoryDeleted,
  MemoryPublic,
  MemoryUpdate,
  MemoryWriteResult,
  NamespaceCreate,
  NamespacePublic,
  NamespacesPublic,
  ProvenancePublic,
  SearchRequest,
  SearchResponse,
  StreamEventsParams,
  SummaryRunPublic,
  SummaryRunRequest,
  TaskCreate,
  TaskDeleted,
  TaskPublic,
  TasksPublic,
  TaskUpdate,
  ListTasksParams,
  UserForgotten,
  WhoAmI,
} from "./models.js";
import { DEFAULT_MAX_RETRIES, isRetryable, retryDelay } from "./retry.js";
import { readLines, type SSEFrame, SSEParser } from "./sse.js";
import { VERSION } from "./version.js";

export const URL_ENV = "MEMORY_URL";
export const API_KEY_ENV = "MEMORY_API_KEY";
export const DEFAULT_BASE_URL = "http://127.0.0.1:8080";
/** Milliseconds an attempt may take until its response (and a JSON body) has arrived. */
export const DEFAULT_TIMEOUT = 60_000;
export const IDEMPOTENCY_HEADER = "Idempotency-Key";

export interface ClientOptions {
  /** The server's URL; default `MEMORY_URL` (Node), else `http://127.0.0.1:8080`. */
  baseUrl?: string;
  /** An agent's (or the admin) API key; default `MEMORY_API_KEY` (Node). */
  apiKey?: string;
  /** Milliseconds per attempt until the response arrives (a stream's body is not limited). */
  timeout?: number;
  /** How many times a failed request is retried (default 2). */
  maxRetries?: number;
  /** The `fetch` to send with (proxies, tests, an instrumented fetch); default the platform's. */
  fetch?: typeof fetch;
  /** Headers sent with every request. */
  defaultHeaders?: Record<string, string>;
}

export interface RequestOptions {
  /** Aborts the request, its retries and (for streams) the reading; rejects with its reason. */
  signal?: AbortSignal;
  /** Headers for this request only. */
  headers?: Record<string, string>;
}

export interface WriteOptions extends RequestOptions {
  /** Sent as `Idempotency-Key`; a fresh one is made otherwise. Every retry reuses it. */
  idempotencyKey?: string;
}

export interface StreamOptions extends RequestOptions {
  /** Resume after this event id (`Last-Event-ID`), as a reconnecting client does. */
  lastEventId?: string | number;
  /** Reconnect when the server ends the stream (default true); false returns instead. */
  reconnect?: boolean;
}

// ---- the generated routes as call signatures ---------------------------------------------------

type Path = keyof paths;
type Method = "get" | "post" | "patch" | "delete";
type MethodOf<P extends Path> = {
  [M in Method]: paths[P][M] extends undefined ? never : M;
}[Method];
type Operation<P extends Path, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<T> = T extends { content: { "application/json": infer B } } ? B : never;
/** The JSON body of an operation's success (200 or 201) responses. */
type Ok<O> = O extends { responses: infer R } ? JsonOf<R[Extract<keyof R, 200 | 201>]> : never;

interface Parts<O> {
  path?: O extends { parameters: { path: infer A } } ? A : never;
  query?: O extends { parameters: { query?: infer Q } } ? Q : never;
  body?: O extends { requestBody?: infer B } ? JsonOf<B> : never;
  headers?: Record<string, string>;
}

interface Prepared {
  method: string;
  path: string;
  url: string;
  headers: Headers;
  body: string | undefined;
}

const TIMED_OUT = Symbol("timed out");

/** Memory-server's API. Wire fields keep the server's names (`thread_id`, `budget_tokens`). */
export class MemoryClient {
  readonly baseUrl: string;
  readonly maxRetries: number;
  readonly timeout: number;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof fetch;
  readonly #defaultHeaders: Record<string, string>;

  constructor(options: ClientOptions = {}) {
    const maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new RangeError("maxRetries must be an integer, 0 or more");
    }
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (!fetchImpl) throw new TypeError("no fetch: pass one as `fetch`");
    this.baseUrl = (options.baseUrl || env(URL_ENV) || DEFAULT_BASE_URL).replace(/\/+$/, "");
    this.#apiKey = options.apiKey ?? env(API_KEY_ENV);
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT;
    this.maxRetries = maxRetries;
    this.#fetch = fetchImpl;
    this.#defaultHeaders = { ...options.defaultHeaders };
  }

  // ---- health and identity --------------------------------------------------------------------

  /** Liveness: the server process is up (`GET /healthz`). */
  health(options?: RequestOptions): Promise<Health> {
    return this.#json("get", "/healthz", {}, options);
  }

  /** Readiness: SQL and the vector store answer; `status` is "unavailable" when not. */
  ready(options?: RequestOptions): Promise<Health> {
    return this.#json("get", "/readyz", {}, options, [503]);
  }

  /** The caller as the server sees it: agent, key, admin flag and namespace limits. */
  me(options?: RequestOptions): Promise<WhoAmI> {
    return this.#json("get", "/v1/me", {}, options);
  }

  // ---- agents and keys (admin) ----------------------------------------------------------------

  /** Create an agent with its private default namespace (admin key). */
  createAgent(name: string, options?: WriteOptions): Promise<AgentPublic> {
    return this.#json("post", "/v1/agents", { body: { name } }, options);
  }

  /** Every agent (admin key). */
  listAgents(options?: RequestOptions): Promise<AgentsPublic> {
    return this.#json("get", "/v1/agents", {}, options);
  }

  /** One agent by id (admin key). */
  getAgent(agentId: string, options?: RequestOptions): Promise<AgentPublic> {
    return this.#json("get", "/v1/agents/{agent_id}", { path: { agent_id: agentId } }, options);
  }

  /** Create an API key for an agent; its secret `key` is only in this response (admin key). */
  createKey(
    agentId: string,
    params: ApiKeyCreate = {},
    options?: WriteOptions,
  ): Promise<ApiKeyCreated> {
    return this.#json(
      "post",
      "/v1/agents/{agent_id}/keys",
      { path: { agent_id: agentId }, body: params },
      options,
    );
  }

  /** An agent's API keys, without their secrets (admin key). */
  listKeys(agentId: string, options?: RequestOptions): Promise<ApiKeysPublic> {
    const path = { agent_id: agentId };
    return this.#json("get", "/v1/agents/{agent_id}/keys", { path }, options);
  }

  /** Revoke an API key now: the admin may revoke any key, an agent its own. */
  revokeKey(keyId: string, options?: RequestOptions): Promise<ApiKeyPublic> {
    return this.#json("delete", "/v1/keys/{key_id}", { path: { key_id: keyId } }, options);
  }

  // ---- namespaces -----------------------------------------------------------------------------

  /** Create a namespace owned by the calling agent. */
  createNamespace(
    name: string,
    params: Omit<NamespaceCreate, "name"> = {},
    options?: WriteOptions,
  ): Promise<NamespacePublic> {
    return this.#json("post", "/v1/namespaces", { body: { ...params, name } }, options);
  }

  /** Every namespace the caller may read, with the caller's permission in each. */
  listNamespaces(options?: RequestOptions): Promise<NamespacesPublic> {
    return this.#json("get", "/v1/namespaces", {}, options);
  }

  /** One namespace the caller may read. */
  getNamespace(namespaceId: string, options?: RequestOptions): Promise<NamespacePublic> {
    const path = { namespace_id: namespaceId };
    return this.#json("get", "/v1/namespaces/{namespace_id}", { path }, options);
  }

  /** A page of the namespace's memories with their stored embeddings, newest first. */
  listEmbeddings(
    namespaceId: string,
    params: ListEmbeddingsParams = {},
    options?: RequestOptions,
  ): Promise<EmbeddingsPublic> {
    return this.#json(
      "get",
      "/v1/namespaces/{namespace_id}/embeddings",
      { path: { namespace_id: namespaceId }, query: params },
      options,
    );
  }

  // ---- sharing: grants and the audit trail (namespace owner or admin) -------------------------

  /** Share a namespace with an agent ("read" or "write"), or change its permission there. */
  createGrant(
    namespaceId: string,
    agentId: string,
    permission: GrantPermission,
    options?: WriteOptions,
  ): Promise<GrantPublic> {
    return this.#json(
      "post",
      "/v1/namespaces/{namespace_id}/grants",
      { path: { namespace_id: namespaceId }, body: { agent_id: agentId, permission } },
      options,
    );
  }

  /** The agents a namespace is shared with and their permissions, oldest grant first. */
  listGrants(namespaceId: string, options?: RequestOptions): Promise<GrantsPublic> {
    const path = { namespace_id: namespaceId };
    return this.#json("get", "/v1/namespaces/{namespace_id}/grants", { path }, options);
  }

  /** Stop sharing: the agent loses access to the namespace on its next request. */
  revokeGrant(
    namespaceId: string,
    grantId: string,
    options?: RequestOptions,
  ): Promise<GrantPublic> {
    return this.#json(
      "delete",
      "/v1/namespaces/{namespace_id}/grants/{grant_id}",
      { path: { namespace_id: namespaceId, grant_id: grantId } },
      options,
    );
  }

  /** One page of who else read or wrote the namespace, newest first; then `next_cursor`. */
  listAuditEvents(
    namespaceId: string,
    params: ListAuditEventsParams = {},
    options?: RequestOptions,
  ): Promise<AuditEventsPublic> {
    return this.#json(
      "get",
      "/v1/namespaces/{namespace_id}/audit",
      { path: { namespace_id: namespaceId }, query: params },
      options,
    );
  }

  /** Every audit event of the namespace, newest first, fetching pages as iteration needs. */
  async *iterAuditEvents(
    namespaceId: string,
    params: Omit<ListAuditEventsParams, "cursor"> = {},
    options?: RequestOptions,
  ): AsyncGenerator<AuditEventPublic> {
    let cursor: string | null = null;
    do {
      const page = await this.listAuditEvents(namespaceId, { ...params, cursor }, options);
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  // ---- memories -------------------------------------------------------------------------------

  /** Store one memory; `created` is false when an identical one already existed. */
  createMemory(
    content: string,
    fields: Omit<MemoryCreate, "content"> = {},
    options?: WriteOptions,
  ): Promise<MemoryWriteResult> {
    return this.#json("post", "/v1/memories", { body: { ...fields, content } }, options);
  }

  /** Store many memories in one transaction: all of them or none. */
  createMemories(memories: MemoryCreate[], options?: WriteOptions): Promise<MemoryBatchResult> {
    return this.#json("post", "/v1/memories/batch", { body: { memories } }, options);
  }

  /** Store chat messages (`{ role, content }`) as `kind: "message"` memories in one batch. */
  async remember(
    messages: readonly Message[],
    where: RememberParams = {},
    options?: WriteOptions,
  ): Promise<MemoryBatchResult> {
    const memories = messages.flatMap((message) => messageMemory(message, where) ?? []);
    if (memories.length === 0) return { results: [], created: 0, deduplicated: 0 };
    return this.createMemories(memories, options);
  }

  /** One memory by id. */
  getMemory(memoryId: string, options?: RequestOptions): Promise<MemoryPublic> {
    const path = { memory_id: memoryId };
    return this.#json("get", "/v1/memories/{memory_id}", { path }, options);
  }

  /** One page of memories, newest first; pass `next_cursor` as `cursor` for the next. */
  listMemories(params: ListMemoriesParams = {}, options?: RequestOptions): Promise<MemoriesPublic> {
    return this.#json("get", "/v1/memories", { query: params }, options);
  }

  /** Every matching memory, newest first, fetching pages (of `limit`) as iteration needs. */
  async *iterMemories(
    params: Omit<ListMemoriesParams, "cursor"> = {},
    options?: RequestOptions,
  ): AsyncGenerator<MemoryPublic> {
    let cursor: string | null = null;
    do {
      const page = await this.listMemories({ ...params, cursor }, options);
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /**
   * Change a memory still at `version` (sent as `If-Match`), else PreconditionFailedError.
   * Only the fields given change; `expires_at: null` clears the expiry.
   */
  updateMemory(
    memoryId: string,
    change: MemoryUpdate & { version: number },
    options?: RequestOptions,
  ): Promise<MemoryPublic> {
    const { version, ...body } = change;
    return this.#json(
      "patch",
      "/v1/memories/{memory_id}",
      { path: { memory_id: memoryId }, body, headers: { "If-Match": `"${version}"` } },
      options,
    );
  }

  /** Delete a memory for good, and the summaries condensed from it (`also_deleted`). */
  deleteMemory(memoryId: string, options?: RequestOptions): Promise<MemoryDeleted> {
    const path = { memory_id: memoryId };
    return this.#json("delete", "/v1/memories/{memory_id}", { path }, options);
  }

  /** A summary and the tree of entries it was condensed from, down to the originals. */
  getProvenance(memoryId: string, options?: RequestOptions): Promise<ProvenancePublic> {
    const path = { memory_id: memoryId };
    return this.#json("get", "/v1/memories/{memory_id}/provenance", { path }, options);
  }

  /** Delete every memory about a user in a namespace, summaries made from them included. */
  forgetUser(
    userId: string,
    namespaceId: string,
    options?: RequestOptions,
  ): Promise<UserForgotten> {
    return this.#json(
      "delete",
      "/v1/users/{user_id}/memories",
      { path: { user_id: userId }, query: { namespace_id: namespaceId } },
      options,
    );
  }

  // ---- summaries ------------------------------------------------------------------------------

  /**
   * Condense a namespace's old memories into summaries now (null: every namespace, admin key).
   * With `dry_run`, `plan` lists the groups it would condense and nothing is written;
   * ConflictError while another run is in progress.
   */
  runSummaries(
    namespaceId: string | null,
    params: Omit<SummaryRunRequest, "namespace_id"> = {},
    options?: WriteOptions,
  ): Promise<SummaryRunPublic> {
    const body = { ...params, namespace_id: namespaceId };
    return this.#json("post", "/v1/summaries/run", { body }, options);
  }

  /** A summarizer run's record, by the `id` `runSummaries` returned. */
  getSummaryRun(runId: string, options?: RequestOptions): Promise<SummaryRunPublic> {
    const path = { run_id: runId };
    return this.#json("get", "/v1/summaries/runs/{run_id}", { path }, options);
  }

  // ---- search and context ---------------------------------------------------------------------

  /** The `k` best memories for `query` within the filters, by hybrid score, best first. */
  search(
    query: string,
    params: Omit<SearchRequest, "query"> = {},
    options?: RequestOptions,
  ): Promise<SearchResponse> {
    return this.#json("post", "/v1/search", { body: { ...params, query } }, options);
  }

  /** What to know for `query`, packed into at most `budget_tokens` tokens of `model`. */
  context(
    query: string,
    params: Omit<ContextRequest, "query">,
    options?: RequestOptions,
  ): Promise<ContextResponse> {
    return this.#json("post", "/v1/context", { body: { ...params, query } }, options);
  }

  // ---- the event log, export and import -------------------------------------------------------

  /** One page of events after the cursor `after`, oldest first; then `next_cursor`. */
  listEvents(params: ListEventsParams = {}, options?: RequestOptions): Promise<EventsPublic> {
    return this.#json("get", "/v1/events", { query: params }, options);
  }

  /** Every event after `after` up to now, oldest first, fetching pages as needed. */
  async *iterEvents(
    params: ListEventsParams = {},
    options?: RequestOptions,
  ): AsyncGenerator<EventPublic> {
    let after = params.after;
    for (;;) {
      const page = await this.listEvents({ ...params, after }, options);
      yield* page.data;
      if (!page.has_more) return;
      after = page.next_cursor;
    }
  }

  /**
   * Events as they happen (server-sent events), from now on or after `after`.
   *
   * When the server ends the stream (a restart) or the connection drops, it reconnects and
   * resumes after the last event it yielded (`reconnect: false` returns instead). Losing access
   * throws: NotFoundError for a namespace no longer readable, AuthenticationError for a revoked
   * key. Stop with `break`, or with `signal`.
   */
  async *streamEvents(
    params: StreamEventsParams = {},
    options: StreamOptions = {},
  ): AsyncGenerator<EventPublic> {
    const { lastEventId, reconnect = true, signal } = options;
    let resume = lastEventId === undefined ? null : String(lastEventId);
    let attempt = 0;
    for (;;) {
      const headers: Record<string, string> = {
        Accept: "text/event-stream",
        "Cache-Control": "no-cache",
      };
      if (resume !== null) headers["Last-Event-ID"] = resume;
      const query = { ...params, after: resume === null ? params.after : undefined };
      const prepared = this.#prepare("get", "/v1/events/stream", { query, headers }, options);
      const parser = new SSEParser();
      try {
        const response = await this.#attempt(prepared, signal, openStream);
        for await (const line of this.#lines(response, signal)) {
          const frame = parser.feed(line);
          if (frame === null) continue;
          attempt = 0;
          const event = streamEvent(frame, response);
          resume = String(event.id);
          yield event;
        }
      } catch (error) {
        await this.#beforeRetry(error, attempt++, signal);
        continue;
      }
      if (!reconnect) return;
      await sleep(parser.retryMs, signal);
    }
  }

  /**
   * A namespace's export, line by line (without line ends): JSONL records, or Markdown with
   * `format: "markdown"`. The JSONL lines are what `importRecords` takes back.
   */
  async *export(
    namespaceId: string,
    params: ExportParams = {},
    options: RequestOptions = {},
  ): AsyncGenerator<string> {
    const prepared = this.#prepare(
      "get",
      "/v1/export",
      { query: { ...params, namespace_id: namespaceId }, headers: { Accept: "*/*" } },
      options,
    );
    const response = await this.#send(prepared, options.signal, openStream);
    yield* this.#lines(response, options.signal);
  }

  /** Import JSONL export records (lines, or objects) into a namespace; idempotent. */
  importRecords(
    namespaceId: string,
    records: Iterable<string | object>,
    options: WriteOptions = {},
  ): Promise<ImportResult> {
    const lines = Array.from(records, (record) =>
      typeof record === "string" ? record.replace(/\r?\n$/, "") : JSON.stringify(record),
    );
    const prepared = this.#prepare(
      "post",
      "/v1/import",
      {
        query: { namespace_id: namespaceId },
        headers: { "Content-Type": "application/x-ndjson" },
      },
      options,
      `${lines.join("\n")}\n`,
    );
    return this.#send(prepared, options.signal, readJson<ImportResult>([]));
  }

  // ---- tasks ----------------------------------------------------------------------------------

  /**
   * Plan a task for the calling agent, or start it at once (`status: "in_progress"`).
   * ConflictError `another_task_in_progress` (the holder in `body.task`) when the agent already
   * has a task in progress in that namespace and thread.
   */
  createTask(
    title: string,
    fields: Omit<TaskCreate, "title"> = {},
    options?: WriteOptions,
  ): Promise<TaskPublic> {
    return this.#json("post", "/v1/tasks", { body: { ...fields, title } }, options);
  }

  /** One task by id. */
  getTask(taskId: string, options?: RequestOptions): Promise<TaskPublic> {
    return this.#json("get", "/v1/tasks/{task_id}", { path: { task_id: taskId } }, options);
  }

  /** One page of tasks, oldest first; pass `next_cursor` as `cursor` for the next. */
  listTasks(params: ListTasksParams = {}, options?: RequestOptions): Promise<TasksPublic> {
    return this.#json("get", "/v1/tasks", { query: params }, options);
  }

  /** Every matching task, oldest first, fetching pages (of `limit`) as iteration needs. */
  async *iterTasks(
    params: Omit<ListTasksParams, "cursor"> = {},
    options?: RequestOptions,
  ): AsyncGenerator<TaskPublic> {
    let cursor: string | null = null;
    do {
      const page = await this.listTasks({ ...params, cursor }, options);
      yield* page.data;
      cursor = page.next_cursor;
    } while (cursor);
  }

  /**
   * Change a task still at `version` (sent as `If-Match`), else PreconditionFailedError;
   * `status` moves it along the allowed transitions, else ConflictError. Asking for what already
   * is (completing a completed task with the same `result`) returns it unchanged: safe to retry.
   */
  updateTask(
    taskId: string,
    change: TaskUpdate & { version: number },
    options?: RequestOptions,
  ): Promise<TaskPublic> {
    const { version, ...body } = change;
    return this.#json(
      "patch",
      "/v1/tasks/{task_id}",
      { path: { task_id: taskId }, body, headers: { "If-Match": `"${version}"` } },
      options,
    );
  }

  /** Delete a task for good (ConflictError while it has subtasks). */
  deleteTask(taskId: string, options?: RequestOptions): Promise<TaskDeleted> {
    return this.#json("delete", "/v1/tasks/{task_id}", { path: { task_id: taskId } }, options);
  }

  // ---- sending ---------------------------------------------------------------------------------

  /** Send a JSON call, with retries; its success body. */
  #json<P extends Path, M extends MethodOf<P>>(
    method: M,
    path: P,
    parts: Parts<Operation<P, M>>,
    options: WriteOptions = {},
    okStatuses: number[] = [],
  ): Promise<Ok<Operation<P, M>>> {
    const prepared = this.#prepare(method, path, parts, options);
    return this.#send(prepared, options.signal, readJson<Ok<Operation<P, M>>>(okStatuses));
  }

  /** The request for a call, built once: every retry sends it as is (same Idempotency-Key). */
  #prepare<P extends Path, M extends MethodOf<P>>(
    method: M,
    path: P,
    parts: Parts<Operation<P, M>>,
    options: WriteOptions,
    rawBody?: string,
  ): Prepared {
    const pathParams = (parts.path ?? {}) as Record<string, string>;
    const filled = path.replace(/\{(\w+)\}/g, (_, name: string) =>
      encodeURIComponent(String(pathParams[name])),
    );
    const headers = new Headers({ Accept: "application/json" });
    const agent = userAgent();
    if (agent) headers.set("User-Agent", agent);
    if (this.#apiKey) headers.set("Authorization", `Bearer ${this.#apiKey}`);
    const given = { ...this.#defaultHeaders, ...parts.headers, ...options.headers };
    for (const [name, value] of Object.entries(given)) headers.set(name, value);
    let body = rawBody;
    if (body === undefined && parts.body !== undefined) {
      body = JSON.stringify(parts.body);
      headers.set("Content-Type", "application/json");
    }
    if (method === "post") {
      const key = options.idempotencyKey || headers.get(IDEMPOTENCY_HEADER) || randomUUID();
      headers.set(IDEMPOTENCY_HEADER, key);
    }
    return {
      method: method.toUpperCase(),
      path: filled,
      url: this.baseUrl + filled + queryString(parts.query),
      headers,
      body,
    };
  }

  /** Send with retries: on connection errors, 408, 429 and 5xx, waiting as `retryDelay` says. */
  async #send<T>(
    prepared: Prepared,
    signal: AbortSignal | undefined,
    read: (response: Response) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#attempt(prepared, signal, read);
      } catch (error) {
        await this.#beforeRetry(error, attempt, signal);
      }
    }
  }

  /** Rethrow `error` unless it is worth retry number `attempt`; else wait for it. */
  async #beforeRetry(error: unknown, attempt: number, signal?: AbortSignal): Promise<void> {
    if (!(error instanceof MemoryClientError)) throw error;
    if (attempt >= this.maxRetries || !isRetryable(error)) throw error;
    const headers = error instanceof APIStatusError ? error.headers : null;
    await sleep(retryDelay(attempt, headers), signal);
  }

  /** One attempt: fetch, then `read` the response, both within `timeout`. */
  async #attempt<T>(
    prepared: Prepared,
    signal: AbortSignal | undefined,
    read: (response: Response) => Promise<T>,
  ): Promise<T> {
    signal?.throwIfAborted();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(TIMED_OUT), this.timeout);
    const forward = (): void => controller.abort(signal?.reason);
    signal?.addEventListener("abort", forward, { once: true });
    try {
      const response = await this.#fetch(prepared.url, {
        method: prepared.method,
        headers: prepared.headers,
        body: prepared.body ?? null,
        signal: controller.signal,
      });
      return await read(response);
    } catch (error) {
      if (error instanceof MemoryClientError) throw error;
      if (signal?.aborted) throw signal.reason;
      const where = `${prepared.method} ${prepared.path}`;
      if (controller.signal.reason === TIMED_OUT) {
        throw new APITimeoutError(`Request timed out after ${this.timeout} ms: ${where}`, {
          cause: error,
        });
      }
      throw new APIConnectionError(`Connection error: ${where}: ${describe(error)}`, {
        cause: error,
      });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", forward);
    }
  }

  /** A streamed body's lines; cancelled when the loop stops early or `signal` aborts. */
  async *#lines(response: Response, signal?: AbortSignal): AsyncGenerator<string> {
    if (!response.body) return;
    const reader = response.body.getReader();
    const cancel = (): void => void reader.cancel().catch(() => undefined);
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      try {
        yield* readLines(reader);
      } catch (error) {
        signal?.throwIfAborted();
        throw new APIConnectionError(`Connection error while reading: ${describe(error)}`, {
          cause: error,
        });
      }
      signal?.throwIfAborted();
    } finally {
      signal?.removeEventListener("abort", cancel);
      cancel();
    }
  }
}

// ---- helpers ------------------------------------------------------------------------------------

/** Read a JSON success body, or throw the mapped error for any other status. */
function readJson<T>(okStatuses: number[]): (response: Response) => Promise<T> {
  return async (response) => {
    if (!response.ok && !okStatuses.includes(response.status)) {
      throw await statusErrorFrom(response);
    }
    const text = await response.text();
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new APIResponseValidationError(
        `Response body is not JSON: ${describe(error)}`,
        response.status,
        response.headers,
        text,
      );
    }
  };
}

/** Keep a success response open for its body to be streamed; throw the mapped error otherwise. */
async function openStream(response: Response): Promise<Response> {
  if (!response.ok) throw await statusErrorFrom(response);
  return response;
}

/** The event a stream frame carries; an `error` frame throws the error it reports. */
function streamEvent(frame: SSEFrame, response: Response): EventPublic {
  let body: unknown;
  try {
    body = JSON.parse(frame.data);
  } catch (error) {
    throw new APIResponseValidationError(
      `Event data is not JSON: ${describe(error)}`,
      response.status,
      response.headers,
      frame.data,
    );
  }
  if (frame.event === "error") {
    const status = (body as { status?: unknown } | null)?.status;
    throw makeStatusError(typeof status === "number" ? status : 500, body, response.headers);
  }
  return body as EventPublic;
}

/** `?a=1&b=x&b=y`: arrays repeat the name, null and undefined are left out. */
function queryString(query: object | undefined): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== undefined && item !== null) search.append(name, String(item));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const done = (): void => {
      signal?.removeEventListener("abort", abort);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const abort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
  return `${error.message}${cause}`;
}

interface NodeLike {
  process?: { env?: Record<string, string | undefined>; versions?: { node?: string } };
}

/** An environment variable under Node; undefined in browsers. */
function env(name: string): string | undefined {
  return (globalThis as NodeLike).process?.env?.[name] || undefined;
}

function userAgent(): string | null {
  const node = (globalThis as NodeLike).process?.versions?.node;
  return node ? `memory-client/${VERSION} node/${node}` : null; // browsers set their own
}

function randomUUID(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // Pages not served over HTTPS have no randomUUID; build a version 4 UUID by hand.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...parts, hex.slice(20)].join("-");
}
