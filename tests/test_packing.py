"""The budget is a hard limit: property tests over random items, budgets and models."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory_server.packing import Line, Tier, normalise_shares, pack
from memory_server.tokens import count_tokens

MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-3.5-turbo",
    "claude-3-5-sonnet-20241022",
    "anthropic/claude-3-haiku-20240307",
    "ollama/llama3.1",
    "mistral/mistral-large-latest",
    "some-unknown-model",
]

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)
line_lists = st.lists(texts, max_size=25)
# a line's optional sub-heading (its date) and its place in a chronological tier
headings = st.one_of(st.none(), st.sampled_from(["### 2 Nov 2026", "### 14 Oct 2026", "### ∅"]))
dated_lists = st.lists(
    st.tuples(texts, headings, st.floats(min_value=0, max_value=1e9, allow_nan=False)),
    max_size=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    thread=dated_lists,
    facts=line_lists,
    memories=dated_lists,
    shares=st.tuples(*[st.floats(min_value=0, max_value=5)] * 3),
    budget=st.integers(min_value=1, max_value=1500),
    model=st.sampled_from(MODELS),
)
def test_packed_context_never_exceeds_the_budget(
    thread: list[tuple[str, str | None, float]],
    facts: list[str],
    memories: list[tuple[str, str | None, float]],
    shares: tuple[float, float, float],
    budget: int,
    model: str,
) -> None:
    normalised = normalise_shares(list(shares))
    tiers = [
        Tier(
            "thread",
            "## Recent conversation",
            normalised[0],
            [Line(f"t{i}", t, heading=h, order=o) for i, (t, h, o) in enumerate(thread)],
            contiguous=True,
        ),
        Tier(
            "facts",
            "## Known facts",
            normalised[1],
            [Line(f"f{i}", t) for i, t in enumerate(facts)],
        ),
        Tier(
            "memories",
            "## Relevant memories",
            normalised[2],
            [Line(f"m{i}", t, heading=h, order=o) for i, (t, h, o) in enumerate(memories)],
            chronological=True,
        ),
    ]

    def count(text: str) -> int:
        return count_tokens(text, model)

    packed = pack(tiers, budget, count)

    assert packed.tokens_used == count(packed.context) <= budget
    included = [line for lines in packed.included.values() for line in lines]
    dropped = [line for _, line in packed.over_budget]
    assert len(included) + len(dropped) == len(thread) + len(facts) + len(memories)
    for line in included:
        assert line.text in packed.context
        assert line.heading is None or line.heading in packed.context
    # the conversation tier never skips a turn: what it keeps is the newest, contiguous run
    kept_thread = packed.included["thread"]
    assert kept_thread == tiers[0].lines[: len(kept_thread)]


def test_a_sub_heading_is_written_once_above_its_run_of_lines() -> None:
    def dated(key: str, day: str, order: float) -> Line:
        return Line(key, f"[user] {key}", heading=f"### {day}", order=order)

    # best first: a chronological tier renders them by `order`, each date once
    lines = [dated("c", "3 Nov", 3), dated("a", "1 Nov", 1), dated("b", "1 Nov", 2)]
    tiers = [Tier("memories", "## M", 1.0, lines, chronological=True)]
    packed = pack(tiers, 100, lambda text: len(text.split()))
    assert packed.context == "## M\n### 1 Nov\n[user] a\n[user] b\n### 3 Nov\n[user] c"
    assert [line.key for line in packed.included["memories"]] == ["c", "a", "b"]

    # a heading is paid for once: a budget with room for one heading holds both lines of a day
    def words_and_newlines(text: str) -> int:
        return len(text.split()) + text.count("\n")

    same_day = [dated("a", "1 Nov", 1), dated("b", "1 Nov", 2), dated("c", "3 Nov", 3)]
    # (+1: the packer's estimate counts a newline after every line, the last one too)
    budget = words_and_newlines("## M\n### 1 Nov\n[user] a\n[user] b") + 1
    tier = Tier("memories", "## M", 1.0, same_day, chronological=True)
    tight = pack([tier], budget, words_and_newlines)
    assert [line.key for line in tight.included["memories"]] == ["a", "b"]
    assert [line.key for _, line in tight.over_budget] == ["c"]
    assert tight.tokens_used == budget - 1


def test_unused_share_flows_to_the_next_tier() -> None:
    lines = [Line(f"m{i}", f"memory number {i} about the quarterly plan") for i in range(40)]
    tiers = [
        Tier("thread", "## Recent conversation", 0.5, [], contiguous=True),
        Tier("facts", "## Known facts", 0.25, []),
        Tier("memories", "## Relevant memories", 0.25, lines),
    ]
    packed = pack(tiers, 200, lambda text: count_tokens(text, "gpt-4o-mini"))
    assert packed.tokens_used > 150  # far more than the memories tier's own 25%
    assert packed.tokens_used <= 200


def test_empty_context_when_nothing_fits() -> None:
    tiers = [Tier("memories", "## Relevant memories", 1.0, [Line("m", "a long memory " * 20)])]
    packed = pack(tiers, 3, lambda text: count_tokens(text, "gpt-4o-mini"))
    assert packed.context == "" and packed.tokens_used == 0
    assert [line.key for _, line in packed.over_budget] == ["m"]


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=12),
    groups=st.lists(st.integers(min_value=0, max_value=3), min_size=12, max_size=12),
    budget=st.integers(min_value=1, max_value=400),
)
def test_lines_that_conflict_never_appear_together(
    sizes: list[int], groups: list[int], budget: int
) -> None:
    """Line 0 stands for (summarises) every line in its group; the first that fits wins."""
    keys = [f"m{i}" for i in range(len(sizes))]
    covered = {keys[i] for i in range(1, len(sizes)) if groups[i] == 0}

    def conflicts(key: str) -> frozenset[str]:
        if key == "m0":
            return frozenset(covered)
        return frozenset({"m0"}) if key in covered else frozenset()

    lines = [
        Line(key, f"item {i} " + "word " * size, conflicts(key))
        for i, (key, size) in enumerate(zip(keys, sizes, strict=False))
    ]
    packed = pack([Tier("memories", "## M", 1.0, lines)], budget, lambda t: len(t.split()))
    kept = {line.key for line in packed.included["memories"]}
    assert packed.tokens_used <= budget
    assert not ("m0" in kept and kept & covered)
    skipped = {line.key: winner for _, line, winner in packed.conflicted}
    over = {line.key for _, line in packed.over_budget}
    assert kept | set(skipped) | over == set(keys)  # every line is accounted for, once
    assert not (kept & set(skipped)) and not (kept & over) and not (set(skipped) & over)
    for key, winner in skipped.items():
        assert winner in kept and (key == "m0" or winner == "m0")


def test_a_summary_stands_in_when_its_sources_do_not_fit() -> None:
    sources = [Line(f"s{i}", "source " + "detail " * 30, frozenset({"sum"})) for i in range(3)]
    summary = Line("sum", "summary of the sources", frozenset(line.key for line in sources))
    tier = Tier("memories", "## M", 1.0, [*sources, summary])

    def words(text: str) -> int:
        return len(text.split())

    roomy = pack([tier], 200, words)
    assert [line.key for line in roomy.included["memories"]] == ["s0", "s1", "s2"]
    assert [(line.key, winner) for _, line, winner in roomy.conflicted] == [("sum", "s0")]
    tight = pack([tier], 20, words)
    assert [line.key for line in tight.included["memories"]] == ["sum"]
    assert {line.key for _, line in tight.over_budget} == {"s0", "s1", "s2"}
