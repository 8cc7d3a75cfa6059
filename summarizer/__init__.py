"""Condensing old memories into summaries that keep the facts and trace back to their sources.

`selection` picks what is old enough, grouped by scope and time under a token cap; `condense` turns
a group into text (a model through litellm, or extractively with the embedding model); `runner`
stores each summary with its sources archived in one transaction, one run at a time per database.
"""

from .condense import Condensed, CondenseFailed, Condenser, ExtractiveCondenser, LLMCondenser
from .runner import RunReport, Summarizer, build_condenser
from .selection import Group, SelectionRules, Source, select_groups

__all__ = [
    "CondenseFailed",
    "Condensed",
    "Condenser",
    "ExtractiveCondenser",
    "Group",
    "LLMCondenser",
    "RunReport",
    "SelectionRules",
    "Source",
    "Summarizer",
    "build_condenser",
    "select_groups",
]
