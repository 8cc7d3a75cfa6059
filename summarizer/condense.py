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


@dataclass(frozen=True)
class _Sentence:
    order: int
    source: Source
    text: str


class ExtractiveCondenser:
    """Keeps the sentences most central to the group and least redundant with each other.

    Centrality is cosine similarity to the centroid of all sentences; selection is maximal
    marginal relevance (MMR), so a second sentence saying the same thing loses to a new fact.
    The chosen sentences are written back in time order, dated.
    """

    def __init__(
        self, embedder: Embedder, *, token_model: str = "gpt-4o-mini", diversity: float = 0.3
    ):
        self._embedder = embedder
        self._token_model = token_model
        self._diversity = diversity

    @property
    def name(self) -> str:
        return "extractive"

    def condense(self, group: Group, target_tokens: int) -> Condensed:
        sentences = [
            _Sentence(i, source, text)
            for i, (source, text) in enumerate(
                (source, part.strip())
                for source in group.sources
                for part in _SENTENCE_END.split(source.content)
            )
            if len(text.split()) >= 2
        ]
        if not sentences:
            raise CondenseFailed("no sentences to extract")
        vectors = np.asarray(self._embedder.embed([s.text for s in sentences]), dtype=float)
        centroid = vectors.mean(axis=0)
        centroid /= np.linalg.norm(centroid) or 1.0
        centrality = vectors @ centroid
        chosen: list[int] = []
        used = 0
        candidates = set(range(len(sentences)))
        while candidates:
            best = max(candidates, key=lambda i: self._mmr(i, centrality, vectors, chosen))
            candidates.discard(best)
            if chosen and float(np.max(vectors[chosen] @ vectors[best])) > 0.92:
                continue  # says what a chosen sentence already says
            cost = count_tokens(_line(sentences[best]), self._token_model) + 1
            if used + cost > target_tokens:
                continue
            chosen.append(best)
            used += cost
        if not chosen:
            raise CondenseFailed("no sentence fits the target length")
        text = "\n".join(_line(sentences[i]) for i in sorted(chosen))
        tokens = check_summary(text, group, target_tokens, self._token_model)
        return Condensed(text, tokens)

    def _mmr(self, i: int, centrality: Any, vectors: Any, chosen: list[int]) -> float:
        redundancy = float(np.max(vectors[chosen] @ vectors[i])) if chosen else 0.0
        return float((1 - self._diversity) * centrality[i] - self._diversity * redundancy)


def _line(sentence: _Sentence) -> str:
    source = sentence.source
    if source.kind == "summary":  # its lines are dated already
        return sentence.text if sentence.text.startswith("- ") else f"- {sentence.text}"
    who = f" {source.role}:" if source.role else ""
    return f"- {source.created_at:%Y-%m-%d}{who} {sentence.text}"
