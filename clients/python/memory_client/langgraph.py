"""`MemoryStore`: a LangGraph store (`BaseStore`) whose items live in memory-server.

    from memory_client.langgraph import MemoryStore

    store = MemoryStore()  # MEMORY_URL and MEMORY_API_KEY from the environment
    graph = builder.compile(store=store)  # nodes read and write through `runtime.store`

Items go to the key's default namespace on the server (or the `namespace_id` given), one keyed
memory per item: a put replaces the item's value, a put of None deletes it, search ranks by
meaning on the server and filters as LangGraph does, and a TTL becomes the memory's expiry.
`_langgraph_items` says how an item is laid out. Sync calls (`batch`, `get`, `put`, ...) go
through a `MemoryClient`, async ones (`abatch`, `aget`, ...) through an `AsyncMemoryClient`.

Needs LangGraph: `pip install 'memory-client[langgraph]'`.
"""

from __future__ import annotations

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "memory_client.langgraph needs LangGraph: pip install 'memory-client[langgraph]'"
    ) from exc

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterable, Mapping, Sequence
from contextlib import aclosing, closing, suppress
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

from ._async_client import AsyncMemoryClient
from ._base import RankingLike, _BaseClient
from ._client import MemoryClient
from ._errors import NotFoundError, PreconditionFailedError
from ._langgraph_items import (
    DEFAULT_FIELDS,
    KIND,
    MAX_QUERY_CHARS,
    UNINDEXED_TAG,
    check_labels,
    check_namespace,
    expiry,
    is_item,
    item_of,
    item_tag,
    listed_namespaces,
    literal_prefix,
    matches_filter,
    memory_fields,
    prefix_tag,
    search_item,
    stale_fields,
    ttl_of,
)
from ._models import MemoryPublic, NamespacesPublic, SearchResponse

__all__ = ["MemoryStore"]

# Search ranks by meaning alone: dense and keyword relevance, no recency, importance or length
# preference, and no item dropped as a near-duplicate of another (items are not redundant
# memories: each is asked for by its key).
STORE_RANKING: Final[dict[str, Any]] = {
    "weights": {"dense": 0.7, "keyword": 0.3, "recency": 0, "importance": 0, "frequency": 0},
    "length_penalty": 0,
    "diversity": 0,
    "duplicate_similarity": 1.0,
}
MAX_SEARCH_K: Final = 100  # the server's largest `k`
PAGE_SIZE: Final = 500  # the server's largest page
WRITE_CHUNK: Final = 100  # items per batch write
WRITE_ATTEMPTS: Final = 3
ALL_STATUSES: Final = ("active", "superseded", "archived")

Found = tuple[MemoryPublic, Item]
Ranked = tuple[MemoryPublic, Item, float | None]


class MemoryStore(BaseStore):
    """A LangGraph `BaseStore` backed by memory-server: items persist, search ranks by meaning.

    Give a client (`client` and/or `async_client`), or `base_url` and `api_key` (by default
    `MEMORY_URL` and `MEMORY_API_KEY`); a missing twin is made with the same URL and key.
    `namespace_id` is the server namespace that holds the items (default: the key's own default
    namespace). `fields` are the value's paths embedded for search when a put names none
    (default: the whole value, `["$"]`). `ttl` is LangGraph's `TTLConfig` (minutes). `ranking`
    replaces `STORE_RANKING`, the search's ranking options.
    """

    supports_ttl: bool = True

    def __init__(
        self,
        client: MemoryClient | None = None,
        *,
        async_client: AsyncMemoryClient | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        namespace_id: str | None = None,
        fields: Sequence[str] | None = None,
        ttl: TTLConfig | None = None,
        ranking: RankingLike | None = None,
    ) -> None:
        if (client or async_client) and (base_url or api_key):
            raise ValueError("Give a client or base_url and api_key, not both.")
        given = client or async_client
        self._options: dict[str, Any] = (
            _client_options(given) if given else {"base_url": base_url, "api_key": api_key}
        )
        self._client = client
        self._async_client = async_client
        self._owned: list[MemoryClient | AsyncMemoryClient] = []
        self._namespace_id = namespace_id
        self._fields = tuple(fields) if fields is not None else DEFAULT_FIELDS
        self._ranking = ranking if ranking is not None else STORE_RANKING
        self.ttl_config = ttl

    # ---- clients -----------------------------------------------------------------------------

    @property
    def client(self) -> MemoryClient:
        """The sync client the store uses (made on first use if none was given)."""
        if self._client is None:
            self._client = MemoryClient(**self._options)
            self._owned.append(self._client)
        return self._client

    @property
    def async_client(self) -> AsyncMemoryClient:
        """The async client the store uses (made on first use if none was given)."""
        if self._async_client is None:
            self._async_client = AsyncMemoryClient(**self._options)
            self._owned.append(self._async_client)
        return self._async_client

    def close(self) -> None:
        """Close the sync client if the store made it (clients passed in stay open)."""
        for owned in [c for c in self._owned if isinstance(c, MemoryClient)]:
            owned.close()
            self._owned.remove(owned)

    async def aclose(self) -> None:
        """Close every client the store made, sync and async (clients passed in stay open)."""
        self.close()
        for owned in list(self._owned):
            if isinstance(owned, AsyncMemoryClient):
                await owned.aclose()
            self._owned.remove(owned)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def namespace_id(self) -> str:
        """The server namespace holding the items: the one given, else the key's default."""
        if self._namespace_id is None:
            self._namespace_id = _own_default(self.client.list_namespaces())
        return self._namespace_id

    async def anamespace_id(self) -> str:
        """`namespace_id()` through the async client."""
        if self._namespace_id is None:
            self._namespace_id = _own_default(await self.async_client.list_namespaces())
        return self._namespace_id

    # ---- BaseStore ---------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops through the sync client; reads see the store as it was before the batch's
        puts, which are applied last (the last put of an item wins), as in `InMemoryStore`."""
        ops = _checked(ops)
        if not ops:
            return []
        namespace_id = self.namespace_id()
        results = [self._read(namespace_id, op) for op in ops]
        self._write(namespace_id, _puts(ops))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """`batch` through the async client, its reads (then its puts) sent concurrently."""
        ops = _checked(ops)
        if not ops:
            return []
        namespace_id = await self.anamespace_id()
        results = await asyncio.gather(*(self._aread(namespace_id, op) for op in ops))
        await self._awrite(namespace_id, _puts(ops))
        return list(results)

    # ---- reads (sync) ------------------------------------------------------------------------

    def _read(self, namespace_id: str, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(namespace_id, op)
        if isinstance(op, SearchOp):
            return self._search(namespace_id, op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(namespace_id, op)
        return None  # a put: applied after the reads

    def _get(self, namespace_id: str, op: GetOp) -> Item | None:
        page = self.client.list_memories(
            namespace_ids=[namespace_id], kinds=[KIND], tags=[item_tag(op.namespace, op.key)]
        )
        found = next((m for m in page.data if is_item(m, op.namespace, op.key)), None)
        if found is None:
            return None
        self._refresh(op.refresh_ttl, [found])
        return item_of(found)

    def _search(self, namespace_id: str, op: SearchOp) -> list[SearchItem]:
        if _wanted(op) == 0:
            return []
        ranked: list[Ranked] = []
        if op.query:
            response = self.client.search(
                op.query[:MAX_QUERY_CHARS],
                k=_search_k(op),
                namespace_ids=[namespace_id],
                kinds=[KIND],
                tags=_prefix_tags(op.namespace_prefix),
                ranking=self._ranking,
            )
            ranked = _ranked_hits(response, op)
        if len(ranked) < _wanted(op):
            tags = _listing_tags(op)
            with closing(self._items(namespace_id, tags)) as found:
                ranked += _unranked(found, op, _wanted(op) - len(ranked))
        page = _page(ranked, op)
        self._refresh(op.refresh_ttl, [memory for memory, _, _ in page])
        return [search_item(item, score) for _, item, score in page]

    def _list_namespaces(self, namespace_id: str, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix = literal_prefix(op)
        found = self._items(namespace_id, [prefix_tag(prefix)] if prefix else None)
        return listed_namespaces((item.namespace for _, item in found), op)

    def _items(
        self, namespace_id: str, tags: list[str] | None, statuses: Sequence[str] | None = None
    ) -> Generator[Found]:
        """Every stored item carrying `tags`, newest first, page by page as iteration needs."""
        cursor: str | None = None
        while True:
            page = self.client.list_memories(
                namespace_ids=[namespace_id],
                kinds=[KIND],
                tags=tags,
                statuses=statuses,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
            yield from _found(page.data)
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def _refresh(self, refresh: bool, memories: Sequence[MemoryPublic]) -> None:
        """Restart the TTL of the items read, when asked to and they have one."""
        for memory, expires_at in _refreshes(refresh, memories):
            # deleted or rewritten since it was read: nothing to refresh
            with suppress(NotFoundError, PreconditionFailedError):
                self.client.update_memory(memory.id, version=memory.version, expires_at=expires_at)

    # ---- puts (sync) -------------------------------------------------------------------------

    def _write(self, namespace_id: str, puts: Sequence[PutOp]) -> None:
        now = datetime.now(UTC)
        writes = [
            memory_fields(op, namespace_id, self._fields, now)
            for op in puts
            if op.value is not None
        ]
        for start in range(0, len(writes), WRITE_CHUNK):
            chunk = writes[start : start + WRITE_CHUNK]
            results = self.client.create_memories(chunk).results
            for fields, result in zip(chunk, results, strict=True):
                if not result.created:
                    self._settle(result.memory, fields)
        for op in puts:
            if op.value is None:
                self._delete(namespace_id, op)

    def _settle(self, memory: MemoryPublic, fields: Mapping[str, Any]) -> None:
        """Make the memory that holds an item's key exactly the item as put (see
        `stale_fields`), re-reading it if it changed meanwhile."""
        for attempt in range(WRITE_ATTEMPTS):
            change = stale_fields(memory, fields)
            if not change:
                return
            try:
                self.client.update_memory(memory.id, version=memory.version, **change)
                return
            except PreconditionFailedError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
            result = self.client.create_memory(**fields)
            if result.created:
                return
            memory = result.memory

    def _delete(self, namespace_id: str, op: PutOp) -> None:
        """Delete the item's memories: its value and the values it replaced."""
        tags = [item_tag(op.namespace, op.key)]
        found = list(self._items(namespace_id, tags, ALL_STATUSES))
        for memory, _ in found:
            if is_item(memory, op.namespace, op.key):
                with suppress(NotFoundError):  # deleted meanwhile
                    self.client.delete_memory(memory.id)

    # ---- reads (async) -----------------------------------------------------------------------

    async def _aread(self, namespace_id: str, op: Op) -> Result:
        if isinstance(op, GetOp):
            return await self._aget(namespace_id, op)
        if isinstance(op, SearchOp):
            return await self._asearch(namespace_id, op)
        if isinstance(op, ListNamespacesOp):
            return await self._alist_namespaces(namespace_id, op)
        return None

    async def _aget(self, namespace_id: str, op: GetOp) -> Item | None:
        page = await self.async_client.list_memories(
            namespace_ids=[namespace_id], kinds=[KIND], tags=[item_tag(op.namespace, op.key)]
        )
        found = next((m for m in page.data if is_item(m, op.namespace, op.key)), None)
        if found is None:
            return None
        await self._arefresh(op.refresh_ttl, [found])
        return item_of(found)

    async def _asearch(self, namespace_id: str, op: SearchOp) -> list[SearchItem]:
        if _wanted(op) == 0:
            return []
        ranked: list[Ranked] = []
        if op.query:
            response = await self.async_client.search(
                op.query[:MAX_QUERY_CHARS],
                k=_search_k(op),
                namespace_ids=[namespace_id],
                kinds=[KIND],
                tags=_prefix_tags(op.namespace_prefix),
                ranking=self._ranking,
            )
            ranked = _ranked_hits(response, op)
        if len(ranked) < _wanted(op):
            async with aclosing(self._aitems(namespace_id, _listing_tags(op))) as found:
                ranked += [f async for f in _aunranked(found, op, _wanted(op) - len(ranked))]
        page = _page(ranked, op)
        await self._arefresh(op.refresh_ttl, [memory for memory, _, _ in page])
        return [search_item(item, score) for _, item, score in page]

    async def _alist_namespaces(
        self, namespace_id: str, op: ListNamespacesOp
    ) -> list[tuple[str, ...]]:
        prefix = literal_prefix(op)
        tags = [prefix_tag(prefix)] if prefix else None
        namespaces = [item.namespace async for _, item in self._aitems(namespace_id, tags)]
        return listed_namespaces(namespaces, op)

    async def _aitems(
        self, namespace_id: str, tags: list[str] | None, statuses: Sequence[str] | None = None
    ) -> AsyncGenerator[Found]:
        """`_items` through the async client."""
        cursor: str | None = None
        while True:
            page = await self.async_client.list_memories(
                namespace_ids=[namespace_id],
                kinds=[KIND],
                tags=tags,
                statuses=statuses,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
            for found in _found(page.data):
                yield found
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def _arefresh(self, refresh: bool, memories: Sequence[MemoryPublic]) -> None:
        await asyncio.gather(
            *(self._arefresh_one(m, expires_at) for m, expires_at in _refreshes(refresh, memories))
        )

    async def _arefresh_one(self, memory: MemoryPublic, expires_at: datetime) -> None:
        with suppress(NotFoundError, PreconditionFailedError):
            await self.async_client.update_memory(
                memory.id, version=memory.version, expires_at=expires_at
            )

    # ---- puts (async) ------------------------------------------------------------------------

    async def _awrite(self, namespace_id: str, puts: Sequence[PutOp]) -> None:
        now = datetime.now(UTC)
        writes = [
            memory_fields(op, namespace_id, self._fields, now)
            for op in puts
            if op.value is not None
        ]
        chunks = [
            writes[start : start + WRITE_CHUNK] for start in range(0, len(writes), WRITE_CHUNK)
        ]
        deletes = [op for op in puts if op.value is None]
        await asyncio.gather(
            *(self._awrite_chunk(chunk) for chunk in chunks),
            *(self._adelete(namespace_id, op) for op in deletes),
        )

    async def _awrite_chunk(self, chunk: list[dict[str, Any]]) -> None:
        results = (await self.async_client.create_memories(chunk)).results
        await asyncio.gather(
            *(
                self._asettle(result.memory, fields)
                for fields, result in zip(chunk, results, strict=True)
                if not result.created
            )
        )

    async def _asettle(self, memory: MemoryPublic, fields: Mapping[str, Any]) -> None:
        """`_settle` through the async client."""
        for attempt in range(WRITE_ATTEMPTS):
            change = stale_fields(memory, fields)
            if not change:
                return
            try:
                await self.async_client.update_memory(memory.id, version=memory.version, **change)
                return
            except PreconditionFailedError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
            result = await self.async_client.create_memory(**fields)
            if result.created:
                return
            memory = result.memory

    async def _adelete(self, namespace_id: str, op: PutOp) -> None:
        tags = [item_tag(op.namespace, op.key)]
        found = [f async for f in self._aitems(namespace_id, tags, ALL_STATUSES)]
        await asyncio.gather(
            *(self._adelete_one(m) for m, _ in found if is_item(m, op.namespace, op.key))
        )

    async def _adelete_one(self, memory: MemoryPublic) -> None:
        with suppress(NotFoundError):
            await self.async_client.delete_memory(memory.id)


# ---- pure helpers ----------------------------------------------------------------------------


def _client_options(client: _BaseClient[Any]) -> dict[str, Any]:
    """What makes a twin client reach the same server as `client`, with the same key."""
    return {
        "base_url": client.base_url,
        "api_key": client._api_key,
        "timeout": client._timeout,
        "max_retries": client.max_retries,
        "default_headers": client._default_headers,
    }


def _found(memories: Iterable[MemoryPublic]) -> list[Found]:
    """The memories that store items, with their items."""
    return [(memory, item) for memory in memories if (item := item_of(memory)) is not None]


def _own_default(namespaces: NamespacesPublic) -> str:
    """The caller's own default namespace among those it may read."""
    for namespace in namespaces.data:
        if namespace.is_default and namespace.permission == "owner":
            return namespace.id
    raise ValueError(
        "This key has no default namespace of its own (an admin key, or one limited to other "
        "namespaces): pass MemoryStore(namespace_id=...)."
    )


def _checked(ops: Iterable[Op]) -> list[Op]:
    """The ops as a list, each of a known type with valid namespace labels."""
    checked = list(ops)
    for op in checked:
        if not isinstance(op, GetOp | SearchOp | ListNamespacesOp | PutOp):
            raise ValueError(f"Unknown operation type: {type(op)}")
        if isinstance(op, PutOp):
            check_namespace(op.namespace)
        elif isinstance(op, GetOp):
            check_labels(op.namespace)
        elif isinstance(op, SearchOp):
            check_labels(op.namespace_prefix)
        else:
            for condition in op.match_conditions or ():
                check_labels(condition.path)
    return checked


def _puts(ops: Sequence[Op]) -> list[PutOp]:
    """The batch's puts, one per item: the last put of an item wins."""
    last: dict[tuple[tuple[str, ...], str], PutOp] = {}
    for op in ops:
        if isinstance(op, PutOp):
            last[(tuple(op.namespace), op.key)] = op
    return list(last.values())


def _wanted(op: SearchOp) -> int:
    """How many matching items a search must find: those skipped, then those returned."""
    return max(op.offset, 0) + max(op.limit, 0)


def _page(ranked: list[Ranked], op: SearchOp) -> list[Ranked]:
    """The results a search returns: past `offset`, at most `limit`."""
    start = max(op.offset, 0)
    return ranked[start : start + max(op.limit, 0)]


def _search_k(op: SearchOp) -> int:
    """Results to ask the server for: all it gives when a filter will drop some."""
    return MAX_SEARCH_K if op.filter else max(1, min(_wanted(op), MAX_SEARCH_K))


def _prefix_tags(prefix: Sequence[str]) -> list[str] | None:
    return [prefix_tag(prefix)] if prefix else None


def _listing_tags(op: SearchOp) -> list[str] | None:
    """The tags of the items a search lists: unindexed ones only after a ranked query."""
    tags = _prefix_tags(op.namespace_prefix) or []
    if op.query:
        tags.append(UNINDEXED_TAG)
    return tags or None


def _passes(item: Item, op: SearchOp) -> bool:
    """Whether an item is under the search's prefix and passes its filter."""
    prefix = tuple(op.namespace_prefix)
    return item.namespace[: len(prefix)] == prefix and matches_filter(item.value, op.filter)


def _ranked_hits(response: SearchResponse, op: SearchOp) -> list[Ranked]:
    """The search hits that are indexed items passing the op, best first, with their scores."""
    ranked: list[Ranked] = []
    for hit in response.results:
        item = item_of(hit.memory)
        if item is not None and UNINDEXED_TAG not in hit.memory.tags and _passes(item, op):
            ranked.append((hit.memory, item, hit.score))
    return ranked


def _unranked(found: Iterable[Found], op: SearchOp, count: int) -> list[Ranked]:
    """Up to `count` listed items passing the op, without a score."""
    kept: list[Ranked] = []
    for memory, item in found:
        if len(kept) >= count:
            break
        if _passes(item, op):
            kept.append((memory, item, None))
    return kept


async def _aunranked(
    found: AsyncIterator[Found], op: SearchOp, count: int
) -> AsyncIterator[Ranked]:
    """`_unranked` over an async listing."""
    kept = 0
    async for memory, item in found:
        if kept >= count:
            return
        if _passes(item, op):
            kept += 1
            yield memory, item, None


def _refreshes(
    refresh: bool, memories: Sequence[MemoryPublic]
) -> list[tuple[MemoryPublic, datetime]]:
    """The memories whose TTL a read restarts, each with its new expiry."""
    if not refresh:
        return []
    now = datetime.now(UTC)
    return [
        (memory, expires_at)
        for memory in memories
        if (expires_at := expiry(ttl_of(memory), now)) is not None
    ]
