"""The MCP tools, defined once: each one's name, description, typed arguments and result, and the
MCP server that answers them through a `Backend`.

A backend answers the REST operations the tools are made of, each with its REST response body as
JSON: `inprocess.ServiceBackend` through the server's own services (the `/mcp` endpoint),
`remote.SdkBackend` through the Python SDK (`memory-server mcp`, over stdio). The tools turn those
bodies into their results here, so both transports answer alike. Nothing here decides access: the
services behind either backend do, as they do for every REST route.

A refused call is a tool error the client can read (`isError`, its text the API's error body
`{"code": ..., "detail": ...}`): arguments that fail validation, a permission the key lacks, a
memory that is not there. Only an unknown tool name is a protocol error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__

log = logging.getLogger(__name__)

JSON = dict[str, Any]
"""A REST request or response body."""

SERVER_NAME = "memory-server"
INSTRUCTIONS = (
    "Long-term memory for this agent. Before answering, call get_context with the user's message "
    "to get what you know that matters, packed into a token budget; call remember to keep a "
    "fact, preference or note for later (give a fact a key, e.g. 'user.diet', so a new value "
    "replaces the old); recall searches memories by meaning; forget deletes one."
)


class ToolFailure(Exception):
    """A refused tool call, with the error `code` and `detail` the REST API would answer."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Backend(Protocol):
    """The REST operations the tools are made of, each answering its REST response body.
    A refusal raises `ToolFailure` with the server's error code and detail."""

    async def create_memory(self, body: JSON) -> JSON:
        """POST /v1/memories: a `MemoryWriteResult`."""
        ...

    async def search(self, body: JSON) -> JSON:
        """POST /v1/search: a `SearchResponse`."""
        ...

    async def context(self, body: JSON) -> JSON:
        """POST /v1/context: a `ContextResponse`."""
        ...

    async def delete_memory(self, memory_id: str) -> JSON:
        """DELETE /v1/memories/{memory_id}: a `MemoryDeleted`."""
        ...

    async def list_namespaces(self) -> JSON:
        """GET /v1/namespaces: a `NamespacesPublic`."""
        ...

    async def create_grant(self, namespace_id: str, body: JSON) -> JSON:
        """POST /v1/namespaces/{namespace_id}/grants: a `GrantPublic`."""
        ...

    async def list_grants(self, namespace_id: str) -> JSON:
        """GET /v1/namespaces/{namespace_id}/grants: a `GrantsPublic`."""
        ...

    async def revoke_grant(self, namespace_id: str, grant_id: str) -> JSON:
        """DELETE /v1/namespaces/{namespace_id}/grants/{grant_id}: a `GrantPublic`."""
        ...


def describe(error: ValidationError) -> str:
    """The first problem of a validation error, `field: message`, as the REST API words it."""
    problems = error.errors(include_url=False, include_input=False)
    if not problems:
        return "invalid arguments"
    first = problems[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


# ---- arguments --------------------------------------------------------------------------------


class _Arguments(BaseModel):
    # an unknown (e.g. misspelt) argument is refused, not ignored
    model_config = ConfigDict(extra="forbid")


class RememberArguments(_Arguments):
    content: str = Field(description="What to remember, as a statement that stands on its own.")
    kind: str = Field(
        default="note",
        description="note (default), fact, preference, or message (needs role); or a lowercase "
        "word of your own.",
    )
    key: str | None = Field(
        default=None,
        description="Makes it a keyed fact, e.g. 'user.diet': a later value for the same key "
        "supersedes this one, so only the newest is recalled.",
    )
    importance: float = Field(
        default=0.5, ge=0.0, le=1.0, description="0 to 1; important memories rank higher."
    )
    user_id: str | None = Field(default=None, description="The user it is about (an id of yours).")
    thread_id: str | None = Field(
        default=None, description="The conversation it belongs to (an id of yours)."
    )
    role: Literal["user", "assistant", "system", "tool"] | None = Field(
        default=None, description="Who said it; for kind 'message' only."
    )
    tags: list[str] | None = Field(default=None, description="Labels to filter recall by.")
    namespace_id: str | None = Field(
        default=None,
        description="The namespace to store it in (an id from list_namespaces); your own "
        "default namespace if omitted.",
    )

    def body(self) -> JSON:
        return self.model_dump(exclude_none=True)


_NAMESPACES = (
    "Only these namespaces (ids from list_namespaces); every namespace you may read if omitted."
)


class RecallArguments(_Arguments):
    query: str = Field(description="What to look for, in natural language.")
    limit: int = Field(default=10, ge=1, le=100, description="The most memories to return.")
    user_id: str | None = Field(default=None, description="Only memories about this user.")
    thread_id: str | None = Field(default=None, description="Only memories of this conversation.")
    kinds: list[str] | None = Field(
        default=None, description="Only these kinds, e.g. ['fact', 'preference']."
    )
    tags: list[str] | None = Field(default=None, description="Only memories with all these tags.")
    namespace_ids: list[str] | None = Field(default=None, description=_NAMESPACES)

    def body(self) -> JSON:
        fields = self.model_dump(exclude_none=True)
        fields["k"] = fields.pop("limit")
        return fields


class GetContextArguments(_Arguments):
    query: str = Field(description="The message or task to prepare for.")
    budget_tokens: int = Field(
        default=1000, ge=1, le=1_000_000, description="The most tokens the context may take."
    )
    model: str | None = Field(
        default=None,
        description="The LLM whose tokenizer counts the budget (a litellm model name); the "
        "server's default if omitted.",
    )
    user_id: str | None = Field(
        default=None, description="The user being answered: adds their facts and preferences."
    )
    thread_id: str | None = Field(
        default=None, description="The conversation: adds its recent messages."
    )
    namespace_ids: list[str] | None = Field(default=None, description=_NAMESPACES)

    def body(self) -> JSON:
        return self.model_dump(exclude_none=True)


class ForgetArguments(_Arguments):
    memory_id: str = Field(description="The memory's id, as remember or recall gave it.")


class ListNamespacesArguments(_Arguments):
    pass


class ShareArguments(_Arguments):
    namespace_id: str = Field(description="A namespace your agent owns.")
    agent_id: str = Field(description="The agent to share it with.")
    permission: Literal["read", "write"] = Field(
        default="read", description="'read', or 'write' (which includes read)."
    )


class UnshareArguments(_Arguments):
    namespace_id: str = Field(description="A namespace your agent owns.")
    agent_id: str = Field(description="The agent to stop sharing it with.")


# ---- results (read from REST response bodies; their other fields are left out) -----------------


class _Result(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MemoryItem(_Result):
    id: str
    namespace_id: str
    kind: str
    role: str | None
    content: str
    key: str | None
    user_id: str | None
    thread_id: str | None
    tags: list[str]
    importance: float
    status: str
    created_at: datetime


class Remembered(_Result):
    memory: MemoryItem
    created: bool = Field(
        description="False when an identical memory was already stored; that one is returned."
    )
    superseded_id: str | None = Field(
        description="The earlier value of the key that this one replaced, if any."
    )


class RecalledMemory(MemoryItem):
    score: float = Field(description="How well it matches the query; higher is better.")


class Recalled(_Result):
    query: str
    results: list[RecalledMemory] = Field(description="Best match first.")


class ContextEntry(_Result):
    id: str
    namespace_id: str
    kind: str
    tier: str = Field(description="thread, facts or memories")
    tokens: int


class PackedContext(_Result):
    context: str = Field(description="What to know, ready to put in a prompt.")
    tokens_used: int
    budget_tokens: int
    model: str
    items: list[ContextEntry] = Field(description="The memories in the context, in its order.")
    dropped: int = Field(
        description="Candidates left out: over budget, duplicates, superseded or summarized."
    )


class Forgotten(_Result):
    id: str
    namespace_id: str
    deleted_at: datetime
    also_deleted: list[str] = Field(description="Summaries condensed from it, deleted with it.")


class NamespaceItem(_Result):
    id: str
    name: str
    description: str | None
    owner_agent_id: str
    is_default: bool
    permission: str = Field(description="Your access: owner, write, read or admin.")


class Namespaces(_Result):
    namespaces: list[NamespaceItem]


class Grant(_Result):
    grant_id: str
    namespace_id: str
    agent_id: str
    permission: str = Field(description="read or write")


# ---- what each tool does ----------------------------------------------------------------------


async def _remember(backend: Backend, args: RememberArguments) -> Remembered:
    return Remembered.model_validate(await backend.create_memory(args.body()))


async def _recall(backend: Backend, args: RecallArguments) -> Recalled:
    found = await backend.search(args.body())
    hits = [{**hit["memory"], "score": hit["score"]} for hit in found["results"]]
    return Recalled.model_validate({"query": found["query"], "results": hits})


async def _get_context(backend: Backend, args: GetContextArguments) -> PackedContext:
    packed = await backend.context(args.body())
    return PackedContext.model_validate({**packed, "dropped": len(packed["dropped"])})


async def _forget(backend: Backend, args: ForgetArguments) -> Forgotten:
    return Forgotten.model_validate(await backend.delete_memory(args.memory_id))


async def _list_namespaces(backend: Backend, _: ListNamespacesArguments) -> Namespaces:
    listed = await backend.list_namespaces()
    return Namespaces.model_validate({"namespaces": listed["data"]})


def _grant(grant: JSON) -> Grant:
    return Grant.model_validate({**grant, "grant_id": grant["id"]})


async def _share(backend: Backend, args: ShareArguments) -> Grant:
    body = {"agent_id": args.agent_id, "permission": args.permission}
    return _grant(await backend.create_grant(args.namespace_id, body))


async def _unshare(backend: Backend, args: UnshareArguments) -> Grant:
    grants = (await backend.list_grants(args.namespace_id))["data"]
    grant = next((g for g in grants if g["agent_id"] == args.agent_id), None)
    if grant is None:
        raise ToolFailure(
            "grant_not_found",
            f"Namespace {args.namespace_id!r} is not shared with agent {args.agent_id!r}.",
        )
    return _grant(await backend.revoke_grant(args.namespace_id, grant["id"]))


# ---- the tool table and the server -------------------------------------------------------------

A = TypeVar("A", bound=_Arguments)
R = TypeVar("R", bound=_Result)

INTERNAL_ERROR_DETAIL = "The server hit an unexpected error."


@dataclass(frozen=True)
class ToolSpec(Generic[A, R]):
    """One tool: what clients are told about it, and what a call does with a backend."""

    name: str
    description: str
    arguments: type[A]
    result: type[R]
    run: Callable[[Backend, A], Awaitable[R]]
    annotations: ToolAnnotations

    def tool(self) -> Tool:
        """The tool as `tools/list` describes it, with JSON schemas of its arguments and result."""
        return Tool(
            name=self.name,
            description=self.description,
            input_schema=self.arguments.model_json_schema(),
            output_schema=self.result.model_json_schema(mode="serialization"),
            annotations=self.annotations,
        )

    async def call(self, backend: Backend, arguments: Mapping[str, Any]) -> CallToolResult:
        """Validate `arguments` and run the tool: its result, or a tool error saying why not."""
        try:
            args = self.arguments.model_validate(arguments)
        except ValidationError as exc:
            return failed("validation_error", describe(exc))
        try:
            result = await self.run(backend, args)
        except ToolFailure as exc:
            return failed(exc.code, exc.detail)
        except Exception:
            log.exception("MCP tool %s failed", self.name)
            return failed("internal_error", INTERNAL_ERROR_DETAIL)
        return CallToolResult(
            content=[TextContent(type="text", text=result.model_dump_json())],
            structured_content=result.model_dump(mode="json"),
        )


def failed(code: str, detail: str) -> CallToolResult:
    """A tool error: its text is the API's error body, `{"code": ..., "detail": ...}`."""
    body = json.dumps({"code": code, "detail": detail}, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=body)], is_error=True)


def _hints(*, read_only: bool = False, destructive: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=None if read_only else destructive,
        idempotent_hint=True,
        open_world_hint=False,
    )


TOOLS: tuple[ToolSpec[Any, Any], ...] = (
    ToolSpec(
        "remember",
        "Store a memory for later: a note, a fact, a preference or a chat message. Give a fact a "
        "key (e.g. 'user.diet') so that a later value for the key replaces it. Storing the same "
        "memory twice keeps one. It is searchable as soon as this returns.",
        RememberArguments,
        Remembered,
        _remember,
        _hints(),
    ),
    ToolSpec(
        "recall",
        "Search the memories you may read by meaning and keywords, best match first, optionally "
        "only those of a user, a conversation, some kinds or tags.",
        RecallArguments,
        Recalled,
        _recall,
        _hints(read_only=True),
    ),
    ToolSpec(
        "get_context",
        "What you should know before answering `query`, packed into at most `budget_tokens` "
        "tokens: the conversation's recent messages, the user's current facts and preferences, "
        "and the most relevant long-term memories. Put `context` in your prompt.",
        GetContextArguments,
        PackedContext,
        _get_context,
        _hints(read_only=True),
    ),
    ToolSpec(
        "forget",
        "Delete one memory for good (and any summary condensed from it).",
        ForgetArguments,
        Forgotten,
        _forget,
        _hints(destructive=True),
    ),
    ToolSpec(
        "list_namespaces",
        "The namespaces you may read, with your permission in each (owner, write or read): "
        "your own, and those other agents share with you.",
        ListNamespacesArguments,
        Namespaces,
        _list_namespaces,
        _hints(read_only=True),
    ),
    ToolSpec(
        "share",
        "Let another agent read (or also write) a namespace your agent owns; sharing again "
        "changes the permission.",
        ShareArguments,
        Grant,
        _share,
        _hints(),
    ),
    ToolSpec(
        "unshare",
        "Stop sharing a namespace your agent owns with an agent: it loses access at once. "
        "Returns the grant that was removed.",
        UnshareArguments,
        Grant,
        _unshare,
        _hints(destructive=True),
    ),
)
TOOLS_BY_NAME: dict[str, ToolSpec[Any, Any]] = {spec.name: spec for spec in TOOLS}

BackendFor = Callable[[ServerRequestContext[Any, Any]], Backend]


def build_server(backend_for: BackendFor) -> Server[Any]:
    """An MCP server of `TOOLS`; each call runs through `backend_for(its request context)`."""
    tools = [spec.tool() for spec in TOOLS]

    async def list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams
    ) -> CallToolResult:
        spec = TOOLS_BY_NAME.get(params.name)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool {params.name!r}; tools/list has them.")
        return await spec.call(backend_for(ctx), params.arguments or {})

    return Server(
        SERVER_NAME,
        version=__version__,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
