"""What text and JSON the server stores, and how it reads back what an older version stored.

Every string the API accepts is valid Unicode without NUL characters: a lone surrogate cannot be
encoded as UTF-8 (so no response holding it could be sent), and PostgreSQL's text cannot hold
NUL, so one rule gives the same answer on both databases. Metadata is bounded in depth and size.

Rows written before these rules may still hold lone surrogates or very deep metadata;
`readable_json` turns such a value into one every response can encode, so that one bad row never
breaks a namespace's listing, search or export.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from .errors import InvalidRequest, PayloadTooLarge

# Deeper values are not stored (`Settings.max_metadata_depth` is at most this); pydantic's
# encoder refuses values nested a few hundred levels deep.
READABLE_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None if it can."""
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid Unicode (a lone surrogate)"
    return None


def find_text_problem(value: Any) -> tuple[str, str] | None:
    """The first string (a dict's keys included) that cannot be stored, anywhere in `value`:
    (its location as `a.b.0`, why), or None. Iterative, so that any depth is safe to check."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where, problem
        elif isinstance(item, dict):
            for key, child in item.items():
                path = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and (problem := text_problem(key)) is not None:
                    return where or "(key)", f"has a key that {problem}"
                stack.append((child, path))
        elif isinstance(item, list | tuple):
            stack.extend(
                (child, f"{where}.{i}" if where else str(i)) for i, child in enumerate(item)
            )
    return None


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0, `{}` is 1). Iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        else:
            continue
        deepest = max(deepest, depth + 1)
    return deepest


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class MetadataLimits:
    """How deep and how large one memory's metadata may be."""

    max_depth: int
    max_bytes: int

    def check(self, metadata: Any, label: str) -> None:
        """Refuse metadata nested too deep (422) or too large (413); `label` names it."""
        depth = json_depth(metadata)
        if depth > self.max_depth:
            raise InvalidRequest(
                f"{label} metadata nests {depth} levels deep; the limit is {self.max_depth}.",
                code="metadata_too_deep",
            )
        size = json_size(metadata)
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"{label} metadata is {size} bytes as JSON; the limit is {self.max_bytes}.",
                code="metadata_too_large",
            )


def readable_json(value: Any) -> Any:
    """`value` as every response can encode it: lone surrogates become U+FFFD, and anything
    nested deeper than `READABLE_DEPTH` becomes its JSON text. Values already fine (all of those
    written under the rules above) are returned as they are."""
    if not value or not _needs_repair(value):
        return value
    return _repair(value, 0)


def _needs_repair(value: Any) -> bool:
    """Whether `value` holds a lone surrogate or nests deeper than `READABLE_DEPTH`: one
    iterative walk, on every JSON value a read path loads."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict | list):
            if depth >= READABLE_DEPTH:
                return True
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return False


def _repair(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return _repaired_text(value)
    if isinstance(value, dict | list) and depth >= READABLE_DEPTH:
        return json.dumps(value)  # ASCII JSON: lone surrogates become `\ud83d` escapes
    if isinstance(value, dict):
        return {_repaired_text(str(k)): _repair(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_repair(v, depth + 1) for v in value]
    return value


def _repaired_text(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text)


class ReadableJSON(TypeDecorator[Any]):
    """A JSON column whose values come back through `readable_json`."""

    impl = JSON
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return readable_json(value)
