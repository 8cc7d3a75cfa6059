"""Condensers: turn a group of memories into one shorter text that keeps the facts.

Two implementations behind one protocol: `LLMCondenser` asks a model through litellm (the only
module that calls litellm's completion API), and `ExtractiveCondenser` picks the most central,
non-redundant sentences with the embedding model when no model is configured.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from memory_server.embeddings import Embedder
from memory_server.keyword import query_terms
from memory_server.statements import asks_only
from memory_server.tokens import count_tokens

from .selection import Group, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condensed:
    text: str
    tokens: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class CondenseFailed(Exception):
    """The group could not be condensed; `reason` says why. Nothing is stored for it."""

    def __init__(self, reason: str, *, prompt_tokens: int = 0, completion_tokens: int = 0):
        super().__init__(reason)
        self.reason = reason
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class Condenser(Protocol):
    @property
    def name(self) -> str:
        """Recorded in each summary's metadata: which condenser wrote it."""
        ...

    def condense(self, group: Group, target_tokens: int) -> Condensed:
        """A summary of `group` in about `target_tokens`; raises CondenseFailed."""
        ...


def source_line(source: Source) -> str:
    """How a source appears to a condenser: its date, its speaker for messages, its text."""
    who = f" {source.role}:" if source.role else f" ({source.kind})"
    return f"[{source.created_at:%Y-%m-%d %H:%M}]{who} {' '.join(source.content.split())}"


def check_summary(text: str, group: Group, target_tokens: int, token_model: str) -> int:
    """The summary's token count, if it is usable; else CondenseFailed saying what is wrong."""
    if not text.strip():
        raise CondenseFailed("empty summary")
    if len(re.findall(r"\w+", text)) < 3:
        raise CondenseFailed("malformed summary: fewer than three words")
    tokens = count_tokens(text, token_model)
    if tokens >= group.source_tokens:
        raise CondenseFailed(f"summary ({tokens} tokens) is not shorter than its sources")
    if tokens > 2 * target_tokens:
        raise CondenseFailed(f"summary ({tokens} tokens) is over twice the target")
    return tokens


# ---- the model, through litellm ---------------------------------------------------------------

SYSTEM_PROMPT = """You condense an AI agent's memory log into a summary the agent will keep \
instead of the entries. Keep every fact, decision, preference and open item, each with its date \
(YYYY-MM-DD) and who said it where it matters. Drop greetings, filler and repetition. Write plain \
text: one short bullet per item, starting with "- ", no preamble and no closing remarks. \
Stay under {target} tokens."""


class LLMCondenser:
    """Condenses with a chat model through litellm; retries transient errors and bad answers."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        token_model: str = "gpt-4o-mini",
        attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._model = model
        self._api_base = api_base
        self._api_key = api_key
        self._timeout = timeout
        self._token_model = token_model
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep

    @property
    def name(self) -> str:
        return f"llm:{self._model}"

    def condense(self, group: Group, target_tokens: int) -> Condensed:
        litellm = _litellm()
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT.format(target=target_tokens)},
            {"role": "user", "content": "\n".join(source_line(s) for s in group.sources)},
        ]
        prompt_tokens = completion_tokens = 0
        cost = 0.0
        problem = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                response = litellm.completion(
                    model=self._model,
                    messages=messages,
                    api_base=self._api_base,
                    api_key=self._api_key,
                    timeout=self._timeout,
                    max_tokens=2 * target_tokens,
                    temperature=0,
                    max_retries=0,  # the retries are ours, with our backoff
                )
            except Exception as exc:  # litellm maps every provider error to its own classes
                if not _transient(litellm, exc) or attempt == self._attempts:
                    raise CondenseFailed(
                        f"model call failed: {type(exc).__name__}: {_first_line(exc)}",
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion_tokens,
                    ) from exc
                delay = self._delay(attempt, _retry_after(exc))
                log.info("summary model call failed (%s); retrying in %.1fs", exc, delay)
                self._sleep(delay)
                continue
            usage = getattr(response, "usage", None)
            prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            cost += _cost(litellm, response)
            choice = response.choices[0] if response.choices else None
            text = (getattr(getattr(choice, "message", None), "content", None) or "").strip()
            try:
                if getattr(choice, "finish_reason", None) == "length":
                    raise CondenseFailed("malformed summary: cut off at the length limit")
                tokens = check_summary(text, group, target_tokens, self._token_model)
            except CondenseFailed as bad:
                problem = bad.reason
                log.info("summary attempt %d rejected: %s", attempt, problem)
                continue
            return Condensed(text, tokens, prompt_tokens, completion_tokens, cost)
        raise CondenseFailed(
            f"no usable summary after {self._attempts} attempts: {problem}",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._max_backoff)
        base = self._backoff * 2 ** (attempt - 1)
        return float(min(base * random.uniform(0.75, 1.25), self._max_backoff))


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from memory_server.tokens import _litellm as shared_import  # one import lock for litellm

    litellm = shared_import()
    litellm.suppress_debug_info = True  # no "Give Feedback" banner on stdout per failed call
    return litellm


def _transient(litellm: Any, exc: Exception) -> bool:
    """Worth retrying: timeouts, lost connections, 408, 409, 429 and 5xx."""
    if isinstance(exc, (litellm.Timeout, litellm.APIConnectionError)):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status in (408, 409, 429) or status >= 500)


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _cost(litellm: Any, response: Any) -> float:
    """What litellm says the call cost; 0 for a model it has no price for."""
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:
        return 0.0


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""


# ---- extractive, with the embedding model -----------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# A message that names its speaker first ("Caroline: ...", as a transcript does): the name is
# carried to each sentence taken from it, in place of the role.
_SPEAKER = re.compile(r"^([A-Z][\w'.-]*(?: [A-Z][\w'.-]*){0,3}): ")
_DATED = re.compile(r"^- \[?\d{4}-\d{2}-\d{2}\b")
EXTRACTIVE_SHARE = 0.3  # of its group's tokens an extractive summary keeps, at most
MIN_CONTENT_WORDS = 3  # fewer, and a sentence is small talk ("Thanks, Mel!"), not a fact
CONTENT_WORDS_FULL = 8  # content words at which a sentence counts as fully informative


@dataclass(frozen=True)
class _Sentence:
    source: Source
    speaker: str | None
    text: str


class ExtractiveCondenser:
    """Keeps the sentences that carry the most of the group, least redundant with each other.

    Candidates are the statements of the group: questions, and sentences of fewer than
    `MIN_CONTENT_WORDS` content words (greetings, thanks, "that's cool"), are left out unless
    nothing else is left. Each is worth its centrality (cosine similarity to the centroid of the
    candidates: what the group is about) plus `information` times its share of content words
    (names, places, numbers and the other words a later question asks about). Selection is
    maximal marginal relevance (MMR) under a token budget: `share` of the group's tokens, at most
    `target_tokens`. The chosen sentences are written back in time order, each with its speaker
    and its date; when the group spans one day, the date is written once, above them.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        token_model: str = "gpt-4o-mini",
        diversity: float = 0.5,
        information: float = 0.5,
        share: float = EXTRACTIVE_SHARE,
    ):
        self._embedder = embedder
        self._token_model = token_model
        self._diversity = diversity
        self._information = information
        self._share = share

    @property
    def name(self) -> str:
        return "extractive"

    def condense(self, group: Group, target_tokens: int) -> Condensed:
        sentences = _sentences(group)
        if not sentences:
            raise CondenseFailed("no sentences to extract")
        words = [len(query_terms(s.text)) for s in sentences]
        candidates = {
            i
            for i, s in enumerate(sentences)
            if words[i] >= MIN_CONTENT_WORDS and not asks_only(s.text)
        } or set(range(len(sentences)))
        vectors = np.asarray(self._embedder.embed([s.text for s in sentences]), dtype=float)
        centroid = vectors[sorted(candidates)].mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        worth = vectors @ centroid + self._information * np.minimum(
            1.0, np.asarray(words, dtype=float) / CONTENT_WORDS_FULL
        )
        dated = len({s.source.created_at.date() for s in sentences}) > 1
        heading = [] if dated else [f"{sentences[0].source.created_at:%Y-%m-%d}:"]  # one day's
        budget = min(target_tokens, int(self._share * group.source_tokens))
        chosen: list[int] = []
        used = sum(count_tokens(line, self._token_model) + 1 for line in heading)
        while candidates:
            best = max(candidates, key=lambda i: self._mmr(i, worth, vectors, chosen))
            candidates.discard(best)
            if chosen and float(np.max(vectors[chosen] @ vectors[best])) > 0.92:
                continue  # says what a chosen sentence already says
            cost = count_tokens(_line(sentences[best], dated), self._token_model) + 1
            if used + cost > (budget if chosen else target_tokens):  # the first always fits
                continue
            chosen.append(best)
            used += cost
        if not chosen:
            raise CondenseFailed("no sentence fits the target length")
        text = "\n".join([*heading, *(_line(sentences[i], dated) for i in sorted(chosen))])
        tokens = check_summary(text, group, target_tokens, self._token_model)
        return Condensed(text, tokens)

    def _mmr(self, i: int, worth: Any, vectors: Any, chosen: list[int]) -> float:
        redundancy = float(np.max(vectors[chosen] @ vectors[i])) if chosen else 0.0
        return float((1 - self._diversity) * worth[i] - self._diversity * redundancy)


def _sentences(group: Group) -> list[_Sentence]:
    """The group's sentences of two words or more, in time order, each with its speaker."""
    found = []
    for source in group.sources:
        content = source.content
        speaker = None
        if source.kind == "summary":  # its lines, undated ones under its own date
            parts = [
                line if _DATED.match(line) else f"- {source.created_at:%Y-%m-%d} {line[2:]}"
                for line in (p.strip() for p in content.splitlines())
                if line.startswith("- ")
            ] or [p.strip() for p in _SENTENCE_END.split(content)]
        else:
            named = _SPEAKER.match(content)
            if named:
                speaker, content = named.group(1), content[named.end() :]
            parts = [p.strip() for p in _SENTENCE_END.split(content)]
        found += [_Sentence(source, speaker, p) for p in parts if len(p.split()) >= 2]
    return found


def _line(sentence: _Sentence, dated: bool) -> str:
    source = sentence.source
    if source.kind == "summary":  # its lines are dated already
        return sentence.text if sentence.text.startswith("- ") else f"- {sentence.text}"
    who = sentence.speaker or source.role
    said = f"{who}: {sentence.text}" if who else sentence.text
    return f"- {source.created_at:%Y-%m-%d} {said}" if dated else f"- {said}"
