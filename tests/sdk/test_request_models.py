"""The request bodies search and context send: one set of filter fields, and their wire form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from memory_client._base import _dump
from memory_client._models import (
    ContextRequest,
    MemoryFilters,
    RankingOptions,
    SearchRequest,
    TierShares,
)
from pydantic import BaseModel

FILTERS = {
    "namespace_ids": ["ns_1", "ns_2"],
    "user_id": "u-1",
    "thread_id": "t-1",
    "kinds": ["fact"],
    "tags": ["food"],
    "statuses": ["active", "archived"],
    "created_after": datetime(2024, 5, 1, tzinfo=UTC),
    "created_before": datetime(2024, 6, 1, 12, 30, tzinfo=UTC),
}
FILTERS_ON_THE_WIRE = {
    **FILTERS,
    "created_after": "2024-05-01T00:00:00Z",
    "created_before": "2024-06-01T12:30:00Z",
}


def test_filter_fields_are_declared_once_and_default_to_unset() -> None:
    assert list(MemoryFilters.model_fields) == list(FILTERS)
    for name, field in MemoryFilters.model_fields.items():
        assert field.default is None and not field.is_required(), name
    for request in (SearchRequest, ContextRequest):
        assert issubclass(request, MemoryFilters)
        assert not set(FILTERS) & set(vars(request).get("__annotations__", {})), request


@pytest.mark.parametrize(
    ("request_model", "fields", "wire"),
    [
        (
            SearchRequest,
            {
                "query": "q",
                "k": 3,
                "include_archived": True,
                "min_similarity": 0.1,
                "ranking": RankingOptions(diversity=0.5),
            },
            {
                "query": "q",
                "k": 3,
                "include_archived": True,
                "min_similarity": 0.1,
                "ranking": {"diversity": 0.5},
            },
        ),
        (
            ContextRequest,
            {
                "query": "q",
                "budget_tokens": 500,
                "model": "gpt-4o-mini",
                "include_archived": False,
                "ranking": RankingOptions(min_relevance=0.2),
                "tiers": TierShares(thread=0.2),
                "max_thread_messages": 10,
                "max_candidates": 40,
            },
            {
                "query": "q",
                "budget_tokens": 500,
                "model": "gpt-4o-mini",
                "include_archived": False,
                "ranking": {"min_relevance": 0.2},
                "tiers": {"thread": 0.2},
                "max_thread_messages": 10,
                "max_candidates": 40,
            },
        ),
    ],
)
def test_request_bodies_carry_the_filters_and_leave_out_what_is_unset(
    request_model: type[BaseModel], fields: dict[str, object], wire: dict[str, object]
) -> None:
    assert _dump(request_model(**FILTERS, **fields)) == {**FILTERS_ON_THE_WIRE, **wire}
    required = {name: fields[name] for name in ("query", "budget_tokens") if name in fields}
    assert _dump(request_model(**required)) == required
