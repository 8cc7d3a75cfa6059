"""LangGraph store items as memories, and LangGraph's matching rules: pure functions, no I/O.

An item (namespace tuple, key, value) is one keyed memory of kind `langgraph`:

- its server `key` is a digest of (namespace, key), so a put of the same item supersedes the
  previous value and items of different namespaces never collide;
- its metadata holds the namespace, the key and the value as JSON text, so the value reads back
  exactly as it was written (nesting, Unicode, numbers), and the TTL in minutes, if any;
- its tags are the item's digest (to find it: the API lists by tag, not by key) and one digest
  per namespace prefix (to list or search under a prefix), plus `lg.unindexed` for a put with
  `index=False`;
- its content is the text embedded for search: the value's indexed fields (LangGraph's path
  syntax; the whole value as JSON by default), joined by newlines.

Filters and namespace conditions follow langgraph's `InMemoryStore` rule for rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from langgraph.store.base import (
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    get_text_at_path,
)

from ._models import MemoryPublic

KIND: Final = "langgraph"
METADATA_FIELD: Final = "langgraph"
UNINDEXED_TAG: Final = "lg.unindexed"
# A memory holds at most 32 tags: the item's, `lg.unindexed`, and one per namespace level.
MAX_NAMESPACE_DEPTH: Final = 30
# The embedder reads a few hundred tokens; the rest of a long text would only weigh on the
# server's content limit. The value itself is kept whole in the metadata.
MAX_CONTENT_CHARS: Final = 8000
MAX_QUERY_CHARS: Final = 8000
DEFAULT_FIELDS: Final = ("$",)

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGEST_CHARS = 48


def _digest(parts: object) -> str:
    """A stable hex digest of a JSON-able value (ASCII JSON, so any label can be hashed)."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def memory_key(namespace: Sequence[str], key: str) -> str:
    """The server key of an item: one per (namespace, key), within the server's key syntax."""
    return "lg:" + _digest([list(namespace), key])


def item_tag(namespace: Sequence[str], key: str) -> str:
    """The tag that finds an item's memories (the API filters by tag, not by key)."""
    return "lg.item:" + _digest([list(namespace), key])[:_DIGEST_CHARS]


def prefix_tag(prefix: Sequence[str]) -> str:
    """The tag every item under a (non-empty) namespace prefix carries."""
    return "lg.ns:" + _digest(list(prefix))[:_DIGEST_CHARS]


def check_labels(namespace: Sequence[str]) -> None:
    """Refuse namespace labels LangGraph refuses: not a string, empty, or holding "." or NUL."""
    for label in namespace:
        if not isinstance(label, str) or not label or "." in label or "\x00" in label:
            raise InvalidNamespaceError(
                f"Invalid namespace label {label!r} in {tuple(namespace)}: labels are non-empty "
                "strings without periods ('.') or NUL characters."
            )


def check_namespace(namespace: Sequence[str]) -> None:
    """Refuse a namespace an item cannot be stored under: empty, or deeper than the tags allow."""
    check_labels(namespace)
    if not namespace:
        raise InvalidNamespaceError("Namespace cannot be empty.")
    if len(namespace) > MAX_NAMESPACE_DEPTH:
        raise InvalidNamespaceError(
            f"Namespace {tuple(namespace)} has {len(namespace)} labels; "
            f"this store holds at most {MAX_NAMESPACE_DEPTH}."
        )


def value_json(value: Mapping[str, Any]) -> str:
    """The value as JSON text the server can store: UTF-8 readable, escaped only if it must be
    (a lone surrogate cannot be sent as UTF-8)."""
    text = json.dumps(dict(value), ensure_ascii=False, separators=(",", ":"))
    if _LONE_SURROGATE.search(text):
        text = json.dumps(dict(value), separators=(",", ":"))
    return text


def _storable(text: str) -> str:
    """`text` as content the server accepts: no NUL, no lone surrogate, bounded length."""
    return _LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))[:MAX_CONTENT_CHARS]


def indexed_text(value: Mapping[str, Any], paths: Sequence[str]) -> str:
    """The text of the value's fields at `paths` (LangGraph's path syntax), one per line."""
    texts: list[str] = []
    for path in paths:
        texts.extend(get_text_at_path(dict(value), path))
    return _storable("\n".join(texts))


def memory_fields(
    op: PutOp, namespace_id: str, default_paths: Sequence[str], now: datetime
) -> dict[str, Any]:
    """The `MemoryCreate` fields that store a put's item (a put with a value, not a delete)."""
    value = op.value
    if value is None:
        raise ValueError("a put without a value deletes; it stores no memory")
    check_namespace(op.namespace)
    stored = value_json(value)
    text = (
        ""
        if op.index is False
        else indexed_text(value, default_paths if op.index is None else op.index)
    )
    indexed = bool(text.strip())
    tags = [item_tag(op.namespace, op.key)]
    tags += [prefix_tag(op.namespace[:depth]) for depth in range(1, len(op.namespace) + 1)]
    if not indexed:
        tags.append(UNINDEXED_TAG)
    about: dict[str, Any] = {"namespace": list(op.namespace), "key": op.key, "value": stored}
    if op.ttl is not None:
        about["ttl"] = op.ttl
    return {
        "content": text if indexed else _storable(stored),
        "namespace_id": namespace_id,
        "kind": KIND,
        "key": memory_key(op.namespace, op.key),
        "metadata": {METADATA_FIELD: about},
        "tags": tags,
        "expires_at": expiry(op.ttl, now),
    }


def expiry(ttl_minutes: float | None, now: datetime) -> datetime | None:
    """When an item written or read at `now` with this TTL (minutes) expires; None: never."""
    if ttl_minutes is None:
        return None
    if ttl_minutes <= 0:
        raise ValueError(f"ttl must be a positive number of minutes, not {ttl_minutes}")
    return now + timedelta(minutes=ttl_minutes)


def stale_fields(memory: MemoryPublic, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """What an existing memory must change to hold the item as `wanted` (`memory_fields`).

    The server answers a write whose text it already holds under the same key (case and spacing
    aside) with the stored memory; this is the update that makes it exact, or {} if it is.
    """
    change: dict[str, Any] = {}
    if memory.content != wanted["content"]:
        change["content"] = wanted["content"]
    if memory.metadata != wanted["metadata"]:
        change["metadata"] = wanted["metadata"]
    if sorted(memory.tags) != sorted(wanted["tags"]):
        change["tags"] = wanted["tags"]
    if memory.expires_at != wanted["expires_at"]:
        change["expires_at"] = wanted["expires_at"]
    return change


def _about(memory: MemoryPublic) -> Mapping[str, Any] | None:
    about = memory.metadata.get(METADATA_FIELD)
    if memory.kind != KIND or not isinstance(about, Mapping):
        return None
    if not isinstance(about.get("namespace"), list) or not isinstance(about.get("key"), str):
        return None
    return about if isinstance(about.get("value"), str) else None


def item_of(memory: MemoryPublic) -> Item | None:
    """The item a memory stores, or None if it stores none (another kind, other metadata)."""
    about = _about(memory)
    if about is None:
        return None
    try:
        value = json.loads(about["value"])
    except ValueError:
        return None  # not JSON: not written by this store
    if not isinstance(value, dict):
        return None
    return Item(
        namespace=tuple(about["namespace"]),
        key=about["key"],
        value=value,
        created_at=memory.created_at,
        updated_at=memory.updated_at,
    )


def search_item(item: Item, score: float | None = None) -> SearchItem:
    """`item` as a search result, with its relevance `score` (None: not ranked)."""
    return SearchItem(
        namespace=item.namespace,
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=score,
    )


def ttl_of(memory: MemoryPublic) -> float | None:
    """The TTL (minutes) the item was put with, or None."""
    about = _about(memory)
    ttl = about.get("ttl") if about is not None else None
    return float(ttl) if isinstance(ttl, int | float) else None


def is_item(memory: MemoryPublic, namespace: Sequence[str], key: str) -> bool:
    """Whether `memory` stores the item (namespace, key): digests are checked, not trusted."""
    about = _about(memory)
    return about is not None and (tuple(about["namespace"]), about["key"]) == (
        tuple(namespace),
        key,
    )


# ---- LangGraph's matching rules (as langgraph.store.memory.InMemoryStore applies them) ---------


def matches_filter(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """Whether an item's value passes a search filter: every top-level field as asked."""
    if not filter:
        return True
    return all(_compare(value.get(field), wanted) for field, wanted in filter.items())


def _compare(value: Any, wanted: Any) -> bool:
    """Equality, JSON-style (nested objects field by field, arrays item by item), or operators."""
    if isinstance(wanted, dict):
        if any(name.startswith("$") for name in wanted):
            return all(_operator(value, name, operand) for name, operand in wanted.items())
        if not isinstance(value, dict):
            return False
        return all(_compare(value.get(name), part) for name, part in wanted.items())
    if isinstance(wanted, list | tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(wanted)
            and all(_compare(v, w) for v, w in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


_ORDERINGS: Final = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _operator(value: Any, name: str, operand: Any) -> bool:
    """One comparison operator; orderings compare as numbers, and a value that is not a number
    (or is missing) matches none (InMemoryStore raises there)."""
    if name == "$eq":
        return bool(value == operand)
    if name == "$ne":
        return bool(value != operand)
    if name not in _ORDERINGS:
        raise ValueError(f"Unsupported operator: {name}")
    try:
        return bool(_ORDERINGS[name](float(value), float(operand)))
    except (TypeError, ValueError):
        return False


def namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """Whether a namespace starts (prefix) or ends (suffix) with the condition's path, where
    `*` matches any one label."""
    path = condition.path
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(wanted in ("*", label) for label, wanted in pairs)


def literal_prefix(op: ListNamespacesOp) -> tuple[str, ...]:
    """The labels every listed namespace must start with: a prefix condition's, up to its first
    wildcard (to ask the server for those items only)."""
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            labels = list(condition.path)
            return tuple(labels[: labels.index("*")] if "*" in labels else labels)
    return ()


def listed_namespaces(
    namespaces: Iterable[tuple[str, ...]], op: ListNamespacesOp
) -> list[tuple[str, ...]]:
    """The page of namespaces `op` asks for: matching every condition, cut to `max_depth`,
    sorted, then `offset` and `limit`."""
    found = {
        namespace
        for namespace in namespaces
        if all(namespace_matches(c, namespace) for c in op.match_conditions or ())
    }
    if op.max_depth is not None:
        found = {namespace[: op.max_depth] for namespace in found}
    return sorted(found)[op.offset : op.offset + op.limit]
