/**
 * Wire types: the server's OpenAPI components (src/generated/openapi.ts) under their own names.
 * Nothing here is written by hand but the names, so the shapes cannot drift from the server's.
 */
import type { components, paths } from "./generated/openapi.js";

type Schemas = components["schemas"];

export type AgentCreate = Schemas["AgentCreate"];
export type AgentPublic = Schemas["AgentPublic"];
export type AgentsPublic = Schemas["AgentsPublic"];
export type ApiKeyCreate = Schemas["ApiKeyCreate"];
export type ApiKeyCreated = Schemas["ApiKeyCreated"];
export type ApiKeyPublic = Schemas["ApiKeyPublic"];
export type ApiKeysPublic = Schemas["ApiKeysPublic"];
export type AuditEventPublic = Schemas["AuditEventPublic"];
export type AuditEventsPublic = Schemas["AuditEventsPublic"];
export type ContextItem = Schemas["ContextItem"];
export type ContextRequest = Schemas["ContextRequest"];
export type ContextResponse = Schemas["ContextResponse"];
export type DroppedItem = Schemas["DroppedItem"];
export type EmbeddingsPublic = Schemas["EmbeddingsPublic"];
export type ErrorBody = Schemas["ErrorBody"];
export type EventPublic = Schemas["EventPublic"];
export type EventsPublic = Schemas["EventsPublic"];
export type GrantCreate = Schemas["GrantCreate"];
export type GrantPermission = Schemas["GrantPermission"];
export type GrantPublic = Schemas["GrantPublic"];
export type GrantsPublic = Schemas["GrantsPublic"];
export type Health = Schemas["Health"];
export type ImportConflict = Schemas["ImportConflict"];
export type ImportResult = Schemas["ImportResult"];
export type MemoriesPublic = Schemas["MemoriesPublic"];
export type MemoryBatchCreate = Schemas["MemoryBatchCreate"];
export type MemoryBatchResult = Schemas["MemoryBatchResult"];
export type MemoryCreate = Schemas["MemoryCreate"];
export type MemoryDeleted = Schemas["MemoryDeleted"];
export type MemoryEmbedding = Schemas["MemoryEmbedding"];
export type MemoryPublic = Schemas["MemoryPublic"];
export type MemoryStatus = Schemas["MemoryStatus"];
export type MemoryUpdate = Schemas["MemoryUpdate"];
export type MemoryWriteResult = Schemas["MemoryWriteResult"];
export type NamespaceCreate = Schemas["NamespaceCreate"];
export type NamespacePublic = Schemas["NamespacePublic"];
export type NamespacesPublic = Schemas["NamespacesPublic"];
export type ProvenancePublic = Schemas["ProvenancePublic"];
export type QueryEmbedding = Schemas["QueryEmbedding"];
export type RankingOptions = Schemas["RankingOptions"];
export type RankingWeights = Schemas["RankingWeights"];
export type Role = Schemas["Role"];
export type ScoreComponents = Schemas["ScoreComponents"];
export type SearchHit = Schemas["SearchHit"];
export type SearchRequest = Schemas["SearchRequest"];
export type SearchResponse = Schemas["SearchResponse"];
export type SummaryFailure = Schemas["SummaryFailure"];
export type SummaryGroupPlan = Schemas["SummaryGroupPlan"];
export type SummaryRunPublic = Schemas["SummaryRunPublic"];
export type SummaryRunRequest = Schemas["SummaryRunRequest"];
export type TaskConflict = Schemas["TaskConflict"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskDeleted = Schemas["TaskDeleted"];
export type TaskPublic = Schemas["TaskPublic"];
export type TaskStatus = Schemas["TaskStatus"];
export type TaskUpdate = Schemas["TaskUpdate"];
export type TasksPublic = Schemas["TasksPublic"];
export type TierShares = Schemas["TierShares"];
export type UserForgotten = Schemas["UserForgotten"];
export type WhoAmI = Schemas["WhoAmI"];

type QueryOf<Path extends keyof paths> = paths[Path]["get"] extends {
  parameters: { query?: infer Query };
}
  ? NonNullable<Query>
  : never;

/** Filters and paging of `GET /v1/memories` (`listMemories`). */
export type ListMemoriesParams = QueryOf<"/v1/memories">;
/** Filters and paging of `GET /v1/namespaces/{namespace_id}/embeddings` (`listEmbeddings`). */
export type ListEmbeddingsParams = QueryOf<"/v1/namespaces/{namespace_id}/embeddings">;
/** Filter and paging of `GET /v1/namespaces/{namespace_id}/audit` (`listAuditEvents`). */
export type ListAuditEventsParams = QueryOf<"/v1/namespaces/{namespace_id}/audit">;
/** Cursor, namespaces and page size of `GET /v1/events` (`listEvents`). */
export type ListEventsParams = QueryOf<"/v1/events">;
/** Cursor and namespaces of `GET /v1/events/stream` (`streamEvents`). */
export type StreamEventsParams = QueryOf<"/v1/events/stream">;
/** Filters and paging of `GET /v1/tasks` (`listTasks`). */
export type ListTasksParams = QueryOf<"/v1/tasks">;
/** Format and embeddings of `GET /v1/export` (`export`), besides the namespace. */
export type ExportParams = Omit<QueryOf<"/v1/export">, "namespace_id">;
