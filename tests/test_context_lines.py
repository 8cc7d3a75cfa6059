"""How a memory is written into the context: its date and kind, in few tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from memory_server.models import Memory
from memory_server.services.context import dated_line, render_line
from memory_server.tokens import count_tokens

WHEN = datetime(2026, 11, 2, 14, 5, tzinfo=UTC)


def _memory(kind: str, content: str, **fields: str) -> Memory:
    return Memory(
        id="mem_1",
        namespace_id="ns_1",
        kind=kind,
        content=content,
        created_at=WHEN,
        updated_at=WHEN,
        content_hash="",
        **fields,
    )


def test_a_line_carries_the_date_and_kind_and_a_turn_of_the_thread_its_time() -> None:
    message = _memory("message", "Hi, did my order ship?", role="user")
    assert render_line(message) == "[2 Nov 2026 · user] Hi, did my order ship?"
    assert (
        render_line(message, with_time=True) == "[2 Nov 2026 14:05 · user] Hi, did my order ship?"
    )
    fact = _memory("fact", "Dana lives in Porto", key="home.city")
    assert render_line(fact) == "[2 Nov 2026 · fact · home.city] Dana lives in Porto"
    assert render_line(_memory("message", "ok")) == "[2 Nov 2026 · message] ok"


def test_a_message_s_label_costs_ten_tokens() -> None:
    label = render_line(_memory("message", "", role="assistant"))
    for model in ("gpt-4o-mini", "gpt-3.5-turbo"):  # o200k and cl100k
        assert count_tokens(label, model) <= 10, (model, label)


def test_a_dated_line_puts_its_date_in_a_heading_shared_by_the_day() -> None:
    message = _memory("message", "Hi, did my order ship?", role="user")
    line = dated_line(message)
    assert (line.key, line.heading) == ("mem_1", "### 2 Nov 2026")
    assert line.text == "[user] Hi, did my order ship?"
    assert line.order == WHEN.timestamp()
    assert dated_line(message, with_time=True).text == "[14:05 · user] Hi, did my order ship?"
    fact = _memory("fact", "Dana lives in Porto", key="home.city")
    assert dated_line(fact, frozenset({"sum_1"})).text == "[fact · home.city] Dana lives in Porto"
    assert dated_line(fact, frozenset({"sum_1"})).conflicts == {"sum_1"}
    # only a message has a time of day in the thread
    assert dated_line(fact, with_time=True).text == dated_line(fact).text


def test_a_dated_line_s_label_costs_three_tokens_and_its_day_seven_once() -> None:
    line = dated_line(_memory("message", "", role="user"))
    for model in ("gpt-4o-mini", "gpt-3.5-turbo"):  # o200k and cl100k
        assert count_tokens(line.text, model) <= 3, (model, line.text)
        assert line.heading is not None and count_tokens(line.heading, model) <= 7
