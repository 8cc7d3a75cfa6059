"""Fitting ranked items into a token budget that is never exceeded.

The context is tiers of lines under headers. Each tier may spend its share of the budget plus
whatever earlier tiers left unused. Costs are summed per line for speed, then the whole rendered
string is counted with the model's tokenizer; while it is over budget the least important included
line is removed. So `tokens_used <= budget` holds for the exact string returned, always.

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


@dataclass
class Tier:
    """A section of the context. `lines` are in priority order (most wanted first).

    A `contiguous` tier (recent conversation) stops at the first line that does not fit, so it never
    skips a turn; it renders its lines in reverse priority order (oldest first, newest last).
    """

    name: str
    title: str
    share: float
    lines: Sequence[Line]
    contiguous: bool = False


@dataclass
class Packed:
    context: str
    tokens_used: int
    included: dict[str, list[Line]]
    over_budget: list[tuple[str, Line]] = field(default_factory=list)
    conflicted: list[tuple[str, Line, str]] = field(default_factory=list)  # (tier, line, winner)


def render(tiers: Sequence[Tier], included: dict[str, list[Line]]) -> str:
    """The prompt text: each non-empty tier as a header and its lines."""
    sections = []
    for tier in tiers:
        lines = included.get(tier.name, [])
        if lines:
            ordered = reversed(lines) if tier.contiguous else lines
            sections.append("\n".join([tier.title, *(line.text for line in ordered)]))
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
        for line in tier.lines:
            winner = next(iter(sorted(line.conflicts & included_keys)), None)
            if winner is not None:
                conflicted.append((tier.name, line, winner))
                continue
            cost = count(line.text) + 1
            if not included[tier.name]:
                cost += count(tier.title) + 1 + (separator_cost if spent_total else 0)
            if blocked or spent + cost > allowance:
                over.append((tier.name, line))
                blocked = blocked or tier.contiguous
                continue
            included[tier.name].append(line)
            included_keys.add(line.key)
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
