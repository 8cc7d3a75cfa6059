"""Context relevance on real multi-session conversations: LoCoMo, by its shared protocol.

The data is not in the repository (CC BY-NC 4.0, evaluation only): pass its path.

    python -m bench.locomo --data ../shared/data/locomo-dev/locomo_dev.json
        [--conversations 2] [--budgets 256 512 1024] [--variant NAME=JSON ...] [--output r.md|.json]

The protocol (the data's README): one agent per conversation; every turn one `message` memory,
role `user`, content `"<speaker>: <text>"` (plus `" [shares <caption>]"` for a shared image),
thread `session-<N>`, `created_at` the session's date and time, written with the batch endpoint of
a fresh server on loopback. Each question of categories 1-4 that names evidence is asked once per
budget with `POST /v1/context` (`model` gpt-4o-mini, no thread or user).

- **Evidence recall**: the share of a question's evidence turns among the returned items (or in a
  returned summary's provenance), averaged over questions.
- **Answer in context**: the share of the answer's content words (lower-cased, stop words removed)
  found among the words of the returned context text (categories 1, 2 and 4).

Four baselines run over the same records with the same tokenizer, packed greedily into the same
budget as `"[<session date>] <content>"` lines (`"[8 May, 2023] Caroline: ..."`, the date as the
data writes it, without the time of day): newest first, BM25 top-k (`rank_bm25`'s Okapi over
lower-cased word tokens), dense top-k (the bundled MiniLM, cosine) and reciprocal-rank fusion of
BM25 and dense (k = 60).

`--variant NAME=JSON` adds a server row asked with extra `/v1/context` fields, e.g.
`--variant nodiv='{"ranking": {"diversity": 0}}'`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rank_bm25 import BM25Okapi

from memory_server.config import BUNDLED_EMBEDDING_MODEL, Settings
from memory_server.embeddings import load_embedder
from memory_server.tokens import count_tokens

from .quality import LiveServer, free_port, request_variant, write_output

ADMIN_KEY = "bench-locomo-admin-key-0123456789"
MODEL = "gpt-4o-mini"
BUDGETS = (256, 512, 1024)
BASELINES = ("newest", "bm25", "dense", "rrf")
RRF_K = 60
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
ANSWER_CATEGORIES = frozenset({1, 2, 4})
LABELS = {
    "server": "server `/v1/context`",
    "newest": "newest first",
    "bm25": "BM25 top-k",
    "dense": "dense top-k (MiniLM)",
    "rrf": "RRF(BM25, dense)",
}
_SESSION = re.compile(r"session_(\d+)")
_DIA_ID = re.compile(r"D\d+:\d+")
_WORD = re.compile(r"[a-z0-9]+")
# A standard English stop-word list (NLTK's), fixed here so the metric does not move with the
# server's own keyword stop words.
_STOP_WORDS_TEXT = """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves what which who whom this that
    these those am is are was were be been being have has had having do does did doing a an the and
    but if or because as until while of at by for with about against between into through during
    before after above below to from up down in out on off over under again further then once here
    there when where why how all any both each few more most other some such no nor not only own
    same so than too very s t can will just don should now d ll m o re ve y
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


# ---- the data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    dia_id: str
    session: int
    speaker: str
    content: str
    created_at: datetime
    date_label: str  # the session's date as the data writes it: "8 May, 2023"


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    evidence: tuple[str, ...]
    category: int


@dataclass(frozen=True)
class Dialogue:
    id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]


def session_time(label: str) -> datetime:
    """`"1:56 pm on 8 May, 2023"` as a UTC datetime."""
    return datetime.strptime(label.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def turn_content(turn: dict[str, Any]) -> str:
    content = f"{turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        content += f" [shares {turn['blip_caption']}]"
    return content


def load(path: Path, limit: int | None = None) -> list[Dialogue]:
    """The conversations of a LoCoMo file; questions of categories 1-4 whose evidence names
    turns of the conversation (malformed evidence ids such as `"D"` are left out)."""
    dialogues = []
    for index, raw in enumerate(json.loads(path.read_text())[:limit]):
        conversation = raw["conversation"]
        turns = []
        sessions = sorted(
            int(match.group(1))
            for key in conversation
            if (match := _SESSION.fullmatch(key)) and conversation[key]
        )
        for number in sessions:
            label = conversation[f"session_{number}_date_time"]
            created_at = session_time(label)
            date = label.split(" on ", 1)[-1].strip()
            turns += [
                Turn(t["dia_id"], number, t["speaker"], turn_content(t), created_at, date)
                for t in conversation[f"session_{number}"]
            ]
        known = {t.dia_id for t in turns}
        questions = []
        for qa in raw["qa"]:
            if qa["category"] not in CATEGORIES:
                continue
            evidence = tuple(
                dict.fromkeys(
                    e
                    for item in qa.get("evidence", [])
                    for e in _DIA_ID.findall(item)
                    if e in known
                )
            )
            if evidence:
                questions.append(
                    Question(qa["question"], str(qa["answer"]), evidence, qa["category"])
                )
        dialogues.append(
            Dialogue(raw.get("sample_id", f"conv-{index}"), tuple(turns), tuple(questions))
        )
    return dialogues


# ---- the measures ---------------------------------------------------------------------------


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS]


def answer_in_context(answer: str, context: str) -> float:
    """The share of the answer's content words present among the context's words."""
    wanted = set(content_words(answer))
    if not wanted:
        return 1.0
    return len(wanted & set(_WORD.findall(context.lower()))) / len(wanted)


def evidence_recall(evidence: Sequence[str], returned: set[str]) -> float:
    return sum(e in returned for e in evidence) / len(evidence)


# ---- baselines ------------------------------------------------------------------------------

TokenCounter = Callable[[str], int]


def baseline_line(turn: Turn) -> str:
    return f"[{turn.date_label}] {turn.content}"


def pack_greedy(
    lines: Sequence[str], order: Iterable[int], budget: int, count: TokenCounter
) -> tuple[list[int], str]:
    """The first lines of `order` that fit in `budget` (a line that does not fit is skipped),
    joined by newlines; the joined text is counted whole, so it never exceeds the budget."""
    chosen: list[int] = []
    spent = 0
    for index in order:
        cost = count(lines[index]) + (1 if chosen else 0)
        if spent + cost > budget:
            continue
        chosen.append(index)
        spent += cost
    text = "\n".join(lines[i] for i in chosen)
    while chosen and count(text) > budget:
        chosen.pop()
        text = "\n".join(lines[i] for i in chosen)
    return chosen, text


class Baselines:
    """The four baselines' rankings of one conversation's turns."""

    def __init__(self, turns: Sequence[Turn], vectors: np.ndarray):
        self.turns = turns
        self.vectors = vectors
        self.bm25 = BM25Okapi([_WORD.findall(t.content.lower()) for t in turns])
        self.newest = sorted(
            range(len(turns)), key=lambda i: (turns[i].created_at, i), reverse=True
        )

    def orders(self, query: str, query_vector: np.ndarray) -> dict[str, list[int]]:
        size = len(self.turns)
        lexical_scores = self.bm25.get_scores(_WORD.findall(query.lower()))
        lexical = sorted(range(size), key=lambda i: (-lexical_scores[i], i))
        similarity = self.vectors @ query_vector
        dense = sorted(range(size), key=lambda i: (-float(similarity[i]), i))
        fused = np.zeros(size)
        for order in (lexical, dense):
            for rank, index in enumerate(order):
                fused[index] += 1.0 / (RRF_K + rank + 1)
        rrf = sorted(range(size), key=lambda i: (-fused[i], i))
        return {"newest": self.newest, "bm25": lexical, "dense": dense, "rrf": rrf}


# ---- the run --------------------------------------------------------------------------------


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


def memory_item(turn: Turn) -> dict[str, Any]:
    """A turn as the protocol writes it: one item of `POST /v1/memories/batch`."""
    return {
        "kind": "message",
        "role": "user",
        "content": turn.content,
        "thread_id": f"session-{turn.session}",
        "created_at": turn.created_at.isoformat(),
    }


def ingest(client: httpx.Client, dialogue: Dialogue) -> dict[str, str]:
    """Write the dialogue's turns by the protocol; returns memory id by `dia_id`."""
    ids: dict[str, str] = {}
    for start in range(0, len(dialogue.turns), 500):
        chunk = dialogue.turns[start : start + 500]
        body = {"memories": [memory_item(t) for t in chunk]}
        results = checked(client.post("/v1/memories/batch", json=body))["results"]
        ids |= {t.dia_id: r["memory"]["id"] for t, r in zip(chunk, results, strict=True)}
    return ids


@dataclass
class Provenance:
    """Memory ids a returned summary stands for, fetched once per summary."""

    client: httpx.Client
    known: dict[str, set[str]] = field(default_factory=dict)

    def sources(self, summary_id: str) -> set[str]:
        if summary_id not in self.known:
            tree = checked(self.client.get(f"/v1/memories/{summary_id}/provenance"))
            found: set[str] = set()
            stack = list(tree["sources"])
            while stack:
                node = stack.pop()
                found.add(node["memory"]["id"])
                stack += node["sources"]
            self.known[summary_id] = found
        return self.known[summary_id]


def returned_ids(response: dict[str, Any], provenance: Provenance) -> set[str]:
    """The items' ids and, for summaries, the ids of what they condense."""
    ids = set()
    for item in response["items"]:
        ids.add(item["id"])
        if item["kind"] == "summary":
            ids |= provenance.sources(item["id"])
    return ids


def ask(
    client: httpx.Client,
    dialogue: Dialogue,
    memory_of: dict[str, str],
    budgets: Sequence[int],
    variants: dict[str, dict[str, Any]],
    baselines: Baselines | None,
    query_vectors: np.ndarray | None,
    count: TokenCounter,
) -> list[dict[str, Any]]:
    """Every question at every budget, to the server (and its variants) and the baselines."""
    provenance = Provenance(client)
    lines = [baseline_line(t) for t in dialogue.turns]
    records = []
    for index, question in enumerate(dialogue.questions):
        evidence = [memory_of[e] for e in question.evidence]
        record: dict[str, Any] = {
            "dialogue": dialogue.id,
            "question": question.text,
            "category": question.category,
            "answer": question.answer,
            "recall": defaultdict(dict),
            "answer_in_context": defaultdict(dict),
            "latency_ms": defaultdict(dict),
        }
        orders = (
            baselines.orders(question.text, query_vectors[index])
            if baselines is not None and query_vectors is not None
            else {}
        )
        for budget in budgets:
            for system, extra in {"server": {}, **variants}.items():
                body = {"query": question.text, "budget_tokens": budget, "model": MODEL, **extra}
                started = time.perf_counter()
                response = checked(client.post("/v1/context", json=body))
                record["latency_ms"][system][budget] = (time.perf_counter() - started) * 1000
                if response["tokens_used"] > budget:
                    raise RuntimeError(f"{system} used {response['tokens_used']} > {budget} tokens")
                returned = returned_ids(response, provenance)
                record["recall"][system][budget] = evidence_recall(evidence, returned)
                record["answer_in_context"][system][budget] = answer_in_context(
                    question.answer, response["context"]
                )
            for system, order in orders.items():
                chosen, text = pack_greedy(lines, order, budget, count)
                returned = {memory_of[dialogue.turns[i].dia_id] for i in chosen}
                record["recall"][system][budget] = evidence_recall(evidence, returned)
                record["answer_in_context"][system][budget] = answer_in_context(
                    question.answer, text
                )
        records.append(record)
    return records


def run(
    dialogues: Sequence[Dialogue],
    data_dir: Path,
    budgets: Sequence[int] = BUDGETS,
    variants: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest each dialogue into a fresh server in `data_dir` as its own agent, ask its questions,
    and score the server, its variants and the baselines."""
    say = progress or (lambda _: None)
    variants = variants or {}
    started = time.monotonic()
    settings = Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        port=free_port(),
        log_level="warning",
        rate_limit_per_minute=0,
    )
    embedder = load_embedder(BUNDLED_EMBEDDING_MODEL)
    counts: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in counts:
            counts[text] = count_tokens(text, MODEL)
        return counts[text]

    records: list[dict[str, Any]] = []
    server = LiveServer(settings).start()
    try:
        for dialogue in dialogues:
            with server.client(ADMIN_KEY) as admin:
                agent = checked(admin.post("/v1/agents", json={"name": f"locomo-{dialogue.id}"}))
                key = checked(admin.post(f"/v1/agents/{agent['id']}/keys", json={}))["key"]
            with server.client(key) as client:
                memory_of = ingest(client, dialogue)
                vectors = _unit(embedder.embed([t.content for t in dialogue.turns]))
                query_vectors = _unit(embedder.embed([q.text for q in dialogue.questions]))
                baselines = Baselines(dialogue.turns, vectors)
                records += ask(
                    client, dialogue, memory_of, budgets, variants, baselines, query_vectors, count
                )
            say(f"{dialogue.id}: {len(dialogue.turns)} turns, {len(dialogue.questions)} questions")
    finally:
        server.stop()
    systems = ["server", *variants, *BASELINES]
    return summarize(dialogues, budgets, systems, records, time.monotonic() - started)


def _unit(rows: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(rows, dtype=float)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# ---- summary and report ---------------------------------------------------------------------


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def summarize(
    dialogues: Sequence[Dialogue],
    budgets: Sequence[int],
    systems: Sequence[str],
    records: Sequence[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    answerable = [r for r in records if r["category"] in ANSWER_CATEGORIES]
    table = {
        system: {
            budget: {
                "recall": _mean(r["recall"][system][budget] for r in records),
                "answer_in_context": _mean(
                    r["answer_in_context"][system][budget] for r in answerable
                ),
            }
            for budget in budgets
        }
        for system in systems
    }
    by_category = {
        CATEGORIES[category]: {
            "questions": sum(r["category"] == category for r in records),
            **{
                system: {
                    budget: _mean(
                        r["recall"][system][budget] for r in records if r["category"] == category
                    )
                    for budget in budgets
                }
                for system in systems
            },
        }
        for category in sorted({r["category"] for r in records})
    }
    latency = {
        system: {
            budget: _percentiles([r["latency_ms"][system][budget] for r in records])
            for budget in budgets
        }
        for system in systems
        if records and system in records[0]["latency_ms"]
    }
    return {
        "dialogues": [d.id for d in dialogues],
        "turns": sum(len(d.turns) for d in dialogues),
        "questions": len(records),
        "budgets": list(budgets),
        "systems": list(systems),
        "table": table,
        "by_category": by_category,
        "latency_ms": latency,
        "seconds": round(seconds, 1),
        "per_question": [
            {**r, **{k: dict(r[k]) for k in ("recall", "answer_in_context", "latency_ms")}}
            for r in records
        ],
    }


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95))}


def best_baseline(results: dict[str, Any], budget: int, measure: str = "recall") -> str:
    return max(BASELINES, key=lambda s: results["table"][s][budget][measure])


def report(results: dict[str, Any]) -> str:
    budgets = results["budgets"]
    systems = results["systems"]
    table = results["table"]
    lines = [
        f"### LoCoMo: {len(results['dialogues'])} conversations "
        f"({', '.join(results['dialogues'])}), "
        f"{results['turns']} turns, {results['questions']} questions, {results['seconds']} s",
        "",
        "| system | "
        + " | ".join(f"recall@{b}" for b in budgets)
        + " | "
        + " | ".join(f"answer@{b}" for b in budgets)
        + " |",
        "|---" * (1 + 2 * len(budgets)) + "|",
    ]
    for system in systems:
        recall = " | ".join(f"{table[system][b]['recall']:.3f}" for b in budgets)
        answer = " | ".join(f"{table[system][b]['answer_in_context']:.3f}" for b in budgets)
        lines.append(f"| {LABELS.get(system, system)} | {recall} | {answer} |")
    lines.append("")
    for budget in budgets:
        best = best_baseline(results, budget)
        best_answer = best_baseline(results, budget, "answer_in_context")
        recall_margin = table["server"][budget]["recall"] - table[best][budget]["recall"]
        answer_margin = (
            table["server"][budget]["answer_in_context"]
            - table[best_answer][budget]["answer_in_context"]
        )
        lines.append(
            f"- at {budget}: evidence recall {recall_margin * 100:+.1f} points over the best "
            f"baseline ({LABELS[best]}), answer in context {answer_margin * 100:+.1f} "
            f"({LABELS[best_answer]})"
        )
    middle = 512 if 512 in budgets else budgets[0]
    lines += [
        "",
        f"#### Evidence recall at {middle} tokens by category",
        "",
        "| category (questions) | " + " | ".join(LABELS.get(s, s) for s in systems) + " |",
        "|---" * (1 + len(systems)) + "|",
    ]
    for category, row in results["by_category"].items():
        cells = " | ".join(f"{row[s][middle]:.3f}" for s in systems)
        lines.append(f"| {category} ({row['questions']}) | {cells} |")
    if results["latency_ms"]:
        lines += ["", "Context latency over loopback HTTP, one client, ms (p50 / p95):", ""]
        for system, by_budget in results["latency_ms"].items():
            cells = ", ".join(f"{b}: {v['p50']:.1f} / {v['p95']:.1f}" for b, v in by_budget.items())
            lines.append(f"- {LABELS.get(system, system)}: {cells}")
    return "\n".join(lines) + "\n"


# ---- command line ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.locomo", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="a LoCoMo JSON file")
    parser.add_argument("--conversations", type=int, default=None, help="only the first N")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--variant", type=request_variant, action="append", default=[])
    parser.add_argument("--output", type=Path, default=None, help="write results (.md or .json)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no LoCoMo data at {args.data}", file=sys.stderr)
        return 2
    dialogues = load(args.data, args.conversations)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-locomo-") as tmp:
        results = run(dialogues, Path(tmp), args.budgets, dict(args.variant), progress=say)
    text = report(results)
    print(text)
    if args.output is not None:
        write_output(args.output, results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
