"""Fitting ranked items into a token budget that is never exceeded.

The context is tiers of lines under headers; a line may also sit under a sub-heading it shares
with its neighbours (its date), written once for all of them. Each tier may spend its share of the
budget plus whatever earlier tiers left unused. Costs are summed per line for speed, then the whole
rendered string is counted with the model's tokenizer; while it is over budget the least important
included line is removed. So `tokens_used <= budget` holds for the exact string returned, always.

Lines may exclude each other (a summary and its own sources): a line is skipped when a line it
`conflicts` with is already in, so whichever comes first and fits wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

TokenCounter = Callable[[str], int]
SECTION_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Line:
    """One item rendered for the prompt."""

    key: str
    text: str
    conflicts: frozenset[str] = frozenset()  # keys of lines that must not appear beside this one
    heading: str | None = None  # a sub-heading written once above the run of lines sharing it
    order: float = 0.0  # where a `chronological` tier renders the line: ascending


@dataclass
class Tier:
    """A section of the context. `lines` are in priority order (most wanted first).

    A `contiguous` tier (recent conversation) stops at the first line that does not fit, so it never
    skips a turn; it renders its lines in reverse priority order (oldest first, newest last). A
    `chronological` tier renders the lines it keeps by their `order`, not their priority.
    """

    name: str
    title: str
    share: float
    lines: Sequence[Line]
    contiguous: bool = False
    chronological: bool = False


@dataclass
class Packed:
    context: str
    tokens_used: int
    included: dict[str, list[Line]]
    over_budget: list[tuple[str, Line]] = field(default_factory=list)
    conflicted: list[tuple[str, Line, str]] = field(default_factory=list)  # (tier, line, winner)


def render(tiers: Sequence[Tier], included: dict[str, list[Line]]) -> str:
    """The prompt text: each non-empty tier as a header and its lines, each run of lines that
    share a sub-heading under one copy of it."""
    sections = []
    for tier in tiers:
        lines = included.get(tier.name, [])
        if not lines:
            continue
        if tier.contiguous:
            lines = lines[::-1]
        elif tier.chronological:
            lines = sorted(lines, key=lambda line: line.order)
        rendered = [tier.title]
        heading = None
        for line in lines:
            if line.heading is not None and line.heading != heading:
                rendered.append(line.heading)
            heading = line.heading
            rendered.append(line.text)
        sections.append("\n".join(rendered))
    return SECTION_SEPARATOR.join(sections)


def pack(tiers: Sequence[Tier], budget: int, count: TokenCounter) -> Packed:
    """Choose lines tier by tier within `budget` tokens as measured by `count`."""
    included: dict[str, list[Line]] = {tier.name: [] for tier in tiers}
    over: list[tuple[str, Line]] = []
    conflicted: list[tuple[str, Line, str]] = []
    included_keys: set[str] = set()
    separator_cost = count(SECTION_SEPARATOR)
    spent_total = 0
    carry = 0
    for position, tier in enumerate(tiers):
        last = position == len(tiers) - 1
        allowance = budget - spent_total if last else int(tier.share * budget) + carry
        spent = 0
        blocked = False
        headings: set[str] = set()
        for line in tier.lines:
            winner = next(iter(sorted(line.conflicts & included_keys)), None)
            if winner is not None:
                conflicted.append((tier.name, line, winner))
                continue
            cost = count(line.text) + 1
            if not included[tier.name]:
                cost += count(tier.title) + 1 + (separator_cost if spent_total else 0)
            if line.heading is not None and line.heading not in headings:
                cost += count(line.heading) + 1
            if blocked or spent + cost > allowance:
                over.append((tier.name, line))
                blocked = blocked or tier.contiguous
                continue
            included[tier.name].append(line)
            included_keys.add(line.key)
            if line.heading is not None:
                headings.add(line.heading)
            spent += cost
        spent_total += spent
        carry = max(0, allowance - spent)
    context = render(tiers, included)
    used = count(context)
    while used > budget:
        name = next(t.name for t in reversed(tiers) if included[t.name])
        over.append((name, included[name].pop()))
        context = render(tiers, included)
        used = count(context)
    return Packed(
        context=context,
        tokens_used=used,
        included=included,
        over_budget=over,
        conflicted=conflicted,
    )


def normalise_shares(shares: Sequence[float]) -> list[float]:
    """Shares as fractions of one budget (they may be given in any positive scale)."""
    total = sum(shares)
    return [s / total for s in shares] if total > 0 else [1 / len(shares)] * len(shares)
