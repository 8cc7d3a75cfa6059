"""Condensed memory: what condensing old entries saves, and what it costs a context call.

    python -m bench.condense --data ../shared/data/locomo-dev/locomo_dev.json [--conversations N]
    python -m bench.condense --synthetic [--personas 10] [--seed 7]
        [--budgets 256 512 1024] [--rounds 3] [--no-llm] [--output r.md|.json]

One run, on a fresh server on loopback: each conversation is written twice, as two agents (the
LoCoMo protocol of `bench.locomo`, or a generated persona of `bench.conversations` with its roles,
user and sessions); one copy is condensed with `POST /v1/summaries/run` (every entry of these
conversations is older than `summary_min_age_hours`), the other is left as written. Then every
question is asked of both copies at each budget, alternately (the order swaps from one request to
the next), so that the two latencies share the machine's load:

- **active tokens stored**: the sum of `token_count` over the agent's active memories;
- **evidence recall**: the share of a question's evidence memories among the returned items, a
  summary counting for its provenance (`bench.locomo`'s measure);
- **answer in context**: the share of the answer's content words in the context text (LoCoMo:
  categories 1, 2 and 4; generated: every question);
- **answer kept**: the same share in the active text that stands for the question's evidence
  (before condensing, the evidence entries; after, the summaries that condense them): what the
  summaries keep, whatever the ranking does;
- **latency**: one client, wall time of each `POST /v1/context` over loopback HTTP, p50 / p95
  over every question, budget and round: the questions are asked `--rounds` times (3; the first
  round is the one scored), since a p95 of a few hundred calls moves with the machine's load.

With the LLM path (unless `--no-llm`), the same is run again on a server whose summarizer calls a
model through litellm: the OpenAI-compatible fake of `tests/fake_openai.py`, on loopback. Its
summaries are the first words of a group's first lines, so its quality figures say nothing about a
real model; they show that the path runs end to end.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from memory_server.config import Settings

from . import locomo
from .conversations import Conversations, generate
from .quality import LiveServer, free_port, write_output

ADMIN_KEY = "bench-condense-admin-key-0123456789"
MODEL = locomo.MODEL
BUDGETS = locomo.BUDGETS
COPIES = ("before", "after")  # the copy left as written, the copy condensed
MEASURES = ("recall", "answer_in_context")  # of a context call, by budget
MEASURE_LABELS = {"recall": "evidence recall", "answer_in_context": "answer in context"}


# ---- what is written and asked ----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One memory to write (`/v1/memories/batch` item) and the name questions know it by."""

    ref: str
    memory: dict[str, Any]


@dataclass(frozen=True)
class Probe:
    """One question: its text, its answer, the entries that hold it, and extra request fields."""

    text: str
    answer: str
    evidence: tuple[str, ...]
    answerable: bool  # counted in answer-in-context
    request: dict[str, Any]


@dataclass(frozen=True)
class Corpus:
    """One conversation: one agent's memories and the questions asked of them."""

    id: str
    entries: tuple[Entry, ...]
    probes: tuple[Probe, ...]


def from_locomo(dialogues: Sequence[locomo.Dialogue]) -> list[Corpus]:
    """LoCoMo conversations, written and asked by `bench.locomo`'s protocol."""
    return [
        Corpus(
            dialogue.id,
            tuple(Entry(t.dia_id, locomo.memory_item(t)) for t in dialogue.turns),
            tuple(
                Probe(
                    q.text,
                    q.answer,
                    q.evidence,
                    q.category in locomo.ANSWER_CATEGORIES,
                    {},
                )
                for q in dialogue.questions
            ),
        )
        for dialogue in dialogues
    ]


def from_synthetic(conversations: Conversations) -> list[Corpus]:
    """Generated personas: every history turn with its role, user and session; each question
    asked for its user (without the small talk of the thread `bench.quality` asks it in)."""
    corpora = []
    for persona in conversations.personas:
        entries = tuple(
            Entry(
                turn.id,
                {
                    "kind": "message",
                    "role": turn.role,
                    "content": turn.content,
                    "user_id": persona.user_id,
                    "thread_id": turn.session_id,
                    "created_at": turn.created_at.isoformat(),
                },
            )
            for turn in persona.turns()
        )
        probes = tuple(
            Probe(q.text, q.answer, q.evidence, True, {"user_id": q.user_id})
            for q in persona.questions
        )
        corpora.append(Corpus(persona.id, entries, probes))
    return corpora


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class Agent:
    """One copy of a conversation: its agent's client, namespace, and memories."""

    client: httpx.Client
    namespace_id: str
    memory_of: dict[str, str]  # entry ref -> memory id
    provenance: locomo.Provenance
    summaries_of: dict[str, list[str]] = field(default_factory=dict)  # memory id -> summary texts

    def condensed(self, summary_ids: Sequence[str]) -> None:
        """Note which memories each of `summary_ids` condenses, and its text."""
        for summary_id in summary_ids:
            text = locomo.checked(self.client.get(f"/v1/memories/{summary_id}"))["content"]
            for source_id in self.provenance.sources(summary_id):
                self.summaries_of.setdefault(source_id, []).append(text)

    def kept(self, probe: Probe, content: dict[str, str]) -> str:
        """The active text that stands for the probe's evidence (`content` by ref): its
        summaries, or itself."""
        texts: list[str] = []
        for ref in probe.evidence:
            texts += self.summaries_of.get(self.memory_of[ref], [content[ref]])
        return "\n".join(dict.fromkeys(texts))


def write(client: httpx.Client, entries: Sequence[Entry]) -> dict[str, str]:
    """Write `entries` with the batch endpoint; returns memory id by ref."""
    ids: dict[str, str] = {}
    for start in range(0, len(entries), 500):
        chunk = entries[start : start + 500]
        body = {"memories": [e.memory for e in chunk]}
        results = locomo.checked(client.post("/v1/memories/batch", json=body))["results"]
        ids |= {e.ref: r["memory"]["id"] for e, r in zip(chunk, results, strict=True)}
    return ids


def active_tokens(client: httpx.Client) -> int:
    """The sum of `token_count` over the caller's active memories."""
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"status": "active", "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = locomo.checked(client.get("/v1/memories", params=params))
        total += sum(m["token_count"] for m in page["data"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def ask_both(
    agents: dict[str, Agent],
    corpus: Corpus,
    budgets: Sequence[int],
    rounds: int = 1,
    flip: bool = False,
) -> list[dict[str, Any]]:
    """Every probe at every budget to both copies, the first asked alternating request by
    request, `rounds` times; per probe: recall and answer in context (of the first round) and
    latencies (of every round) by copy and budget, and the answer kept by copy."""
    content = {e.ref: e.memory["content"] for e in corpus.entries}
    records = [
        {
            "question": probe.text,
            "answerable": probe.answerable,
            **{measure: {c: {} for c in COPIES} for measure in MEASURES},
            "latency_ms": {c: {b: [] for b in budgets} for c in COPIES},
            "answer_kept": {
                c: locomo.answer_in_context(probe.answer, agents[c].kept(probe, content))
                for c in COPIES
            },
        }
        for probe in corpus.probes
    ]
    for first in [True] + [False] * (rounds - 1):
        for probe, record in zip(corpus.probes, records, strict=True):
            for budget in budgets:
                order = COPIES[::-1] if flip else COPIES
                flip = not flip
                for copy in order:
                    agent = agents[copy]
                    body = {"query": probe.text, "budget_tokens": budget, "model": MODEL}
                    started = time.perf_counter()
                    response = locomo.checked(
                        agent.client.post("/v1/context", json=body | probe.request)
                    )
                    record["latency_ms"][copy][budget].append(
                        (time.perf_counter() - started) * 1000
                    )
                    if response["tokens_used"] > budget:
                        raise RuntimeError(f"{response['tokens_used']} > {budget} tokens")
                    if not first:
                        continue
                    returned = locomo.returned_ids(response, agent.provenance)
                    evidence = [agent.memory_of[e] for e in probe.evidence]
                    record["recall"][copy][budget] = locomo.evidence_recall(evidence, returned)
                    record["answer_in_context"][copy][budget] = locomo.answer_in_context(
                        probe.answer, response["context"]
                    )
    return records


def new_agent(server: LiveServer, name: str) -> tuple[str, str]:
    """A new agent's key and default namespace."""
    with server.client(ADMIN_KEY) as admin:
        agent = locomo.checked(admin.post("/v1/agents", json={"name": name}))
        key = locomo.checked(admin.post(f"/v1/agents/{agent['id']}/keys", json={}))["key"]
    return key, agent["default_namespace_id"]


def run(
    corpora: Sequence[Corpus],
    data_dir: Path,
    budgets: Sequence[int] = BUDGETS,
    summary_settings: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Write each corpus twice to a fresh server in `data_dir`, condense one copy, ask both
    (`rounds` times for the latencies). `summary_settings`: the server's summarizer settings
    (default: extractive)."""
    say = progress or (lambda _: None)
    started = time.monotonic()
    settings = Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        port=free_port(),
        log_level="warning",
        rate_limit_per_minute=0,
        **(summary_settings or {}),
    )
    records: list[dict[str, Any]] = []
    tokens = {copy: 0 for copy in COPIES}
    condensed = {"groups": 0, "sources": 0, "failures": 0, "seconds": 0.0}
    server = LiveServer(settings).start()
    try:
        for index, corpus in enumerate(corpora):
            with contextlib.ExitStack() as stack:
                agents = {}
                for copy in COPIES:
                    key, namespace_id = new_agent(server, f"condense-{corpus.id}-{copy}")
                    client = stack.enter_context(server.client(key))
                    memory_of = write(client, corpus.entries)
                    agents[copy] = Agent(client, namespace_id, memory_of, locomo.Provenance(client))
                after = agents["after"]
                clock = time.perf_counter()
                report = locomo.checked(
                    after.client.post(
                        "/v1/summaries/run", json={"namespace_id": after.namespace_id}
                    )
                )
                condensed["seconds"] += time.perf_counter() - clock
                condensed["groups"] += report["groups"]
                condensed["sources"] += report["sources"]
                condensed["failures"] += len(report["failures"])
                after.condensed(report["summary_ids"])
                for copy in COPIES:
                    tokens[copy] += active_tokens(agents[copy].client)
                records += ask_both(agents, corpus, budgets, rounds, flip=index % 2 == 1)
            say(
                f"{corpus.id}: {len(corpus.entries)} entries, {len(corpus.probes)} questions, "
                f"{report['groups']} summaries"
            )
    finally:
        server.stop()
    seconds = time.monotonic() - started
    return summarize(corpora, budgets, tokens, condensed, records, seconds) | {"rounds": rounds}


# ---- summary and report -------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def summarize(
    corpora: Sequence[Corpus],
    budgets: Sequence[int],
    tokens: dict[str, int],
    condensed: dict[str, Any],
    records: Sequence[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    answerable = [r for r in records if r["answerable"]]
    table = {
        copy: {
            "active_tokens": tokens[copy],
            "recall": {b: _mean([r["recall"][copy][b] for r in records]) for b in budgets},
            "answer_in_context": {
                b: _mean([r["answer_in_context"][copy][b] for r in answerable]) for b in budgets
            },
            "answer_kept": _mean([r["answer_kept"][copy] for r in answerable]),
            "latency_ms": _percentiles(
                [ms for r in records for b in budgets for ms in r["latency_ms"][copy][b]]
            ),
            "latency_ms_by_budget": {
                b: _percentiles([ms for r in records for ms in r["latency_ms"][copy][b]])
                for b in budgets
            },
        }
        for copy in COPIES
    }
    return {
        "corpora": [c.id for c in corpora],
        "entries": sum(len(c.entries) for c in corpora),
        "questions": len(records),
        "budgets": list(budgets),
        "condensed": {**condensed, "seconds": round(condensed["seconds"], 1)},
        "table": table,
        "seconds": round(seconds, 1),
        "per_question": records,
    }


def report(results: dict[str, Any], title: str) -> str:
    """The before/after table of one run, in Markdown."""
    budgets = results["budgets"]
    before, after = (results["table"][c] for c in COPIES)
    run = results["condensed"]
    lines = [
        f"### {title}: {len(results['corpora'])} conversations, {results['entries']} entries, "
        f"{results['questions']} questions, {results['seconds']} s",
        "",
        "| | before condensing | after condensing | change |",
        "|---|---|---|---|",
        f"| active tokens stored | {before['active_tokens']:,} | {after['active_tokens']:,} | "
        f"{before['active_tokens'] / max(after['active_tokens'], 1):.2f}x fewer |",
    ]
    for measure, label in MEASURE_LABELS.items():
        for budget in budgets:
            was, now = before[measure][budget], after[measure][budget]
            lines.append(
                f"| {label} at {budget} | {was:.3f} | {now:.3f} | {(now - was) * 100:+.1f} points |"
            )
    was, now = before["answer_kept"], after["answer_kept"]
    lines.append(
        f"| answer kept in the active text of its evidence | {was:.3f} | {now:.3f} | "
        f"{(now - was) * 100:+.1f} points |"
    )
    was, now = before["latency_ms"], after["latency_ms"]
    lines.append(
        f"| context latency p50 / p95, ms | {was['p50']:.1f} / {was['p95']:.1f} | "
        f"{now['p50']:.1f} / {now['p95']:.1f} | {now['p50'] / was['p50']:.2f}x / "
        f"{now['p95'] / was['p95']:.2f}x |"
    )
    lines += [
        "",
        f"Condensing: {run['sources']:,} entries into {run['groups']:,} summaries in "
        f"{run['seconds']} s, {run['failures']} groups failed. Latency: "
        f"{results['questions'] * len(budgets) * results['rounds']:,} calls to each copy, "
        "alternating.",
    ]
    return "\n".join(lines) + "\n"


# ---- command line -------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_model() -> Iterator[dict[str, Any]]:
    """Summarizer settings for the OpenAI-compatible fake of the tests, served on loopback."""
    from tests.fake_openai import fake_openai_server

    with fake_openai_server() as fake:
        yield {
            "summary_model": "openai/fake-summarizer",
            "summary_api_base": fake.url,
            "summary_api_key": "sk-fake",
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.condense", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a LoCoMo JSON file")
    source.add_argument("--synthetic", action="store_true", help="bench.conversations' chats")
    parser.add_argument("--conversations", type=int, default=None, help="LoCoMo: the first N")
    parser.add_argument("--personas", type=int, default=10, help="synthetic: how many")
    parser.add_argument("--seed", type=int, default=7, help="synthetic: the generator's seed")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument(
        "--rounds", type=int, default=3, help="times each question is asked, for the latencies"
    )
    parser.add_argument("--no-llm", action="store_true", help="skip the LLM path")
    parser.add_argument("--output", type=Path, default=None, help="write results (.md or .json)")
    args = parser.parse_args(argv)
    if args.data is not None:
        if not args.data.is_file():
            parser.error(f"no LoCoMo data at {args.data}")
        corpora = from_locomo(locomo.load(args.data, args.conversations))
        name = "LoCoMo"
    else:
        corpora = from_synthetic(generate(seed=args.seed, personas=args.personas))
        name = f"Generated chats (seed {args.seed})"

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-condense-") as tmp:
        results["extractive"] = run(
            corpora, Path(tmp) / "extractive", args.budgets, None, say, args.rounds
        )
        if not args.no_llm:
            with fake_model() as options:
                results["llm"] = run(
                    corpora, Path(tmp) / "llm", args.budgets, options, say, args.rounds
                )
    text = report(results["extractive"], f"{name}, extractive summaries (the default)")
    if "llm" in results:
        text += "\n" + report(results["llm"], f"{name}, LLM path (loopback fake model)")
    print(text)
    if args.output is not None:
        write_output(args.output, results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
