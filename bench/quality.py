"""Retrieval quality of `POST /v1/context`: evidence recall on generated multi-session chats.

Every turn of every persona (`bench.conversations`) is written to a fresh server, in-process on
loopback, as a `message` memory with its role, user, thread and original timestamp. Each question
is then asked in its own new thread (its opening small talk written just before, deleted after) at
budgets of 256, 512 and 1024 tokens. Evidence recall is the share of the question's evidence turns
that made it into the context (the memory id among `items` and its content in `context`).

Three baselines run in the same harness over the same memories of the same user: newest-first,
pure dense top-k (the server's embedding model, cosine) and BM25 top-k (Okapi, k1=1.2, b=0.75).
Each is packed into the same budget with the same token counter and packer twice: rendered as the
server renders its long-term tier (dated lines), so only the selection differs; and as the turns'
bare content, one per line, as a harness that knows nothing of the server's format would pack
them, with no date or kind to pay for.

    python -m bench.quality [--seed 7] [--personas 10] [--quick] [--output results.md|.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import argparse
import contextlib
import json
import math
import re
import socket
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from memory_server.app import create_app
from memory_server.config import BUNDLED_EMBEDDING_MODEL, Settings
from memory_server.embeddings import load_embedder
from memory_server.keyword import STOPWORDS
from memory_server.models import Memory
from memory_server.packing import Line, Tier, pack
from memory_server.services.context import TITLES, dated_line, memories_tier
from memory_server.serving import BackgroundServer
from memory_server.tokens import count_tokens

from .conversations import Conversations, Persona, Question, Turn, generate

ADMIN_KEY = "bench-quality-admin-key-0123456789"
MODEL = "gpt-4o-mini"
BUDGETS = (256, 512, 1024)
BASELINES = ("newest", "dense", "bm25")
PLAIN = "-plain"  # a baseline's rows packed as bare content
BASELINE_SYSTEMS = (*BASELINES, *(b + PLAIN for b in BASELINES))
LABELS = {
    "server": "server `/v1/context`",
    "newest": "newest-first",
    "dense": "dense top-k (MiniLM cosine)",
    "bm25": "BM25 top-k",
    "newest" + PLAIN: "newest-first, content only",
    "dense" + PLAIN: "dense top-k, content only",
    "bm25" + PLAIN: "BM25 top-k, content only",
}
TARGET_BUDGET = 512
TARGET_MARGIN = 0.10

# ---- the server under test ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a thread of this process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.app = create_app(self.settings)
        self._server = BackgroundServer(self.app, settings.port)
        self.url = self._server.url

    def start(self) -> LiveServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()  # Chroma caches a client per path, process-wide

    def settle(self) -> None:
        """Write the server's pending access counts now, if its internals are reachable.

        Served memories gain `access_count` (the frequency component) in a background flush once
        a second; flushing after every call makes each question see the same counts every run.
        """
        with contextlib.suppress(AttributeError):
            self.app.state.runtime.recorder.flush()

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=600
        )


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


# ---- baselines ------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def bm25_tokens(text: str) -> list[str]:
    """Lower-cased words, stop words removed."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class BM25:
    """Okapi BM25 over a fixed list of tokenised documents."""

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.2, b: float = 0.75):
        self.k1 = k1
        self.b = b
        self.frequencies = [Counter(doc) for doc in documents]
        self.lengths = [len(doc) for doc in documents]
        self.average_length = (sum(self.lengths) / len(documents)) if documents else 0.0
        self.document_frequency: Counter[str] = Counter()
        for frequencies in self.frequencies:
            self.document_frequency.update(frequencies.keys())
        self.size = len(documents)

    def idf(self, term: str) -> float:
        df = self.document_frequency.get(term, 0)
        return math.log(1 + (self.size - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str]) -> list[float]:
        terms = list(dict.fromkeys(query))
        weights = {t: self.idf(t) for t in terms}
        results = []
        for frequencies, length in zip(self.frequencies, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / (self.average_length or 1.0))
            score = 0.0
            for term in terms:
                tf = frequencies.get(term, 0)
                if tf:
                    score += weights[term] * tf * (self.k1 + 1) / (tf + norm)
            results.append(score)
        return results


@dataclass
class _Doc:
    """One memory as the baselines see it."""

    memory_id: str
    turn: Turn
    line: Line
    vector: np.ndarray
    tokens: list[str]


@dataclass
class _Packing:
    ids: set[str]
    context: str
    tokens: int


TokenCounter = Callable[[str], int]


def _render(turn: Turn, memory_id: str) -> Line:
    memory = Memory(
        id=memory_id,
        namespace_id="",
        kind="message",
        role=turn.role,
        content=turn.content,
        created_at=turn.created_at,
        updated_at=turn.created_at,
        content_hash="",
    )
    return dated_line(memory)


def _packed_ids(
    docs: Sequence[_Doc], order: Iterable[int], budget: int, count: TokenCounter, *, plain: bool
) -> _Packing:
    """The first of `order` that fit in `budget`: as the server's dated lines, or `plain`."""
    if plain:
        bare = [Line(key=docs[i].memory_id, text=docs[i].turn.content) for i in order]
        tier = Tier("memories", TITLES["memories"], 1.0, bare)
    else:
        tier = memories_tier(1.0, [docs[i].line for i in order])
    packed = pack([tier], budget, count)
    ids = {line.key for line in packed.included["memories"]}
    return _Packing(ids=ids, context=packed.context, tokens=packed.tokens_used)


def baseline_orders(
    docs: Sequence[_Doc], query_vector: np.ndarray, query: str
) -> dict[str, list[int]]:
    """Each baseline's ranking of `docs`, best first."""
    newest = sorted(
        range(len(docs)), key=lambda i: (docs[i].turn.created_at, docs[i].turn.id), reverse=True
    )
    similarity = np.stack([d.vector for d in docs]) @ query_vector
    dense = sorted(range(len(docs)), key=lambda i: (-float(similarity[i]), i))
    bm25 = BM25([d.tokens for d in docs]).scores(bm25_tokens(query))
    lexical = sorted((i for i in range(len(docs)) if bm25[i] > 0), key=lambda i: (-bm25[i], i))
    return {"newest": newest, "dense": dense, "bm25": lexical}


# ---- the run --------------------------------------------------------------------------------


def _memory_payload(turn: Turn, user_id: str) -> dict[str, Any]:
    return {
        "kind": "message",
        "role": turn.role,
        "content": turn.content,
        "user_id": user_id,
        "thread_id": turn.session_id,
        "created_at": turn.created_at.isoformat(),
    }


def _write(client: httpx.Client, turns: Sequence[Turn], user_id: str) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(turns), 500):
        chunk = turns[start : start + 500]
        body = {"memories": [_memory_payload(t, user_id) for t in chunk]}
        result = _checked(client.post("/v1/memories/batch", json=body))
        ids += [r["memory"]["id"] for r in result["results"]]
    return ids


def _fates(evidence: Sequence[str], included: set[str], response: dict[str, Any]) -> list[str]:
    """What happened to each evidence memory in the server's answer."""
    dropped = {d["id"]: d["reason"] for d in response["dropped"]}
    reported = len(response["dropped"]) < 100
    fates = []
    for memory_id in evidence:
        if memory_id in included:
            fates.append("included")
        elif memory_id in dropped:
            fates.append(dropped[memory_id])
        else:
            fates.append("not_candidate" if reported else "not_reported")
    return fates


def run(
    conversations: Conversations,
    data_dir: Path,
    budgets: Sequence[int] = BUDGETS,
    progress: Callable[[str], None] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the conversations to a fresh server in `data_dir`, ask every question at every
    budget, and score the server and the baselines. Returns the results as a plain dict.

    `variants` adds server rows: name -> extra `/v1/context` request fields (e.g.
    `{"ranking": {"diversity": 0}}`), asked right after the default request. Each served context
    counts as an access, so variants nudge the frequency component of later questions a little.
    """
    say = progress or (lambda _: None)
    started = time.monotonic()
    settings = Settings(
        data_dir=data_dir,
        admin_key=ADMIN_KEY,
        port=free_port(),
        log_level="warning",
        rate_limit_per_minute=0,
    )
    embedder = load_embedder(BUNDLED_EMBEDDING_MODEL)  # the same instance the server uses
    counts: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in counts:
            counts[text] = count_tokens(text, MODEL)
        return counts[text]

    records: list[dict[str, Any]] = []
    server = LiveServer(settings).start()
    try:
        with server.client(ADMIN_KEY) as admin:
            agent = _checked(admin.post("/v1/agents", json={"name": "bench-quality"}))
            key = _checked(admin.post(f"/v1/agents/{agent['id']}/keys", json={}))["key"]
        with server.client(key) as client:
            for persona in conversations.personas:
                records += _run_persona(
                    client, server, persona, budgets, embedder.embed, count, variants or {}
                )
                turns, asked = len(persona.turns()), len(persona.questions)
                say(f"{persona.id}: {turns} turns, {asked} questions")
    finally:
        server.stop()
    systems = ["server", *(variants or {}), *BASELINE_SYSTEMS]
    return summarize(conversations, budgets, systems, records, time.monotonic() - started)


def _vectors(texts: Sequence[str], embed: Callable[[list[str]], list[list[float]]]) -> np.ndarray:
    """Unit embeddings of the full texts, computed here: never the server's stored vectors, so
    the dense baseline stays plain whatever the server chooses to embed."""
    matrix = np.asarray(embed(list(texts)), dtype=float)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _run_persona(
    client: httpx.Client,
    server: LiveServer,
    persona: Persona,
    budgets: Sequence[int],
    embed: Callable[[list[str]], list[list[float]]],
    count: TokenCounter,
    variants: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    history = persona.turns()
    history_ids = _write(client, history, persona.user_id)
    memory_of = dict(zip((t.id for t in history), history_ids, strict=True))
    vectors = _vectors([t.content for t in history], embed)
    docs = [
        _Doc(memory_of[t.id], t, _render(t, memory_of[t.id]), vectors[i], bm25_tokens(t.content))
        for i, t in enumerate(history)
    ]
    query_vectors = np.asarray(embed([q.text for q in persona.questions]))
    records = []
    for q_index, question in enumerate(persona.questions):
        opening_ids = _write(client, question.opening, persona.user_id)
        opening_vectors = _vectors([t.content for t in question.opening], embed)
        pool = docs + [
            _Doc(mid, t, _render(t, mid), opening_vectors[i], bm25_tokens(t.content))
            for i, (t, mid) in enumerate(zip(question.opening, opening_ids, strict=True))
        ]
        orders = baseline_orders(pool, query_vectors[q_index], question.text)
        evidence = [memory_of[turn_id] for turn_id in question.evidence]
        content = {memory_of[t.id]: t.content for t in history}
        record = _record(question, ["server", *variants, *BASELINE_SYSTEMS])
        for budget in budgets:
            for system, extra in {"server": {}, **variants}.items():
                request = {**_context_request(question, budget), **extra}
                response = _checked(client.post("/v1/context", json=request))
                server.settle()
                included = {item["id"] for item in response["items"]}
                found = [m in included and content[m] in response["context"] for m in evidence]
                record["recall"][system][budget] = sum(found) / len(evidence)
                record["tokens"][system][budget] = response["tokens_used"]
                record["fates"].setdefault(system, {})[budget] = _fates(
                    evidence, included, response
                )
            for baseline, order in orders.items():
                for system, plain in [(baseline, False), (baseline + PLAIN, True)]:
                    packed = _packed_ids(pool, order, budget, count, plain=plain)
                    hits = [m in packed.ids and content[m] in packed.context for m in evidence]
                    record["recall"][system][budget] = sum(hits) / len(evidence)
                    record["tokens"][system][budget] = packed.tokens
        for memory_id in opening_ids:
            _checked(client.delete(f"/v1/memories/{memory_id}"))
        records.append(record)
    return records


def _context_request(question: Question, budget: int) -> dict[str, Any]:
    return {
        "query": question.text,
        "budget_tokens": budget,
        "model": MODEL,
        "user_id": question.user_id,
        "thread_id": question.thread_id,
    }


def _record(question: Question, systems: Sequence[str]) -> dict[str, Any]:
    return {
        "id": question.id,
        "kind": question.kind,
        "fact": question.fact,
        "text": question.text,
        "answer": question.answer,
        "evidence": list(question.evidence),
        "recall": {system: {} for system in systems},
        "tokens": {system: {} for system in systems},
        "fates": {},
    }


# ---- summary and report ---------------------------------------------------------------------


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def _paired(diffs: Sequence[float]) -> dict[str, float]:
    """Mean of per-question differences and the half-width of its 95% confidence interval."""
    n = len(diffs)
    mean = _mean(diffs)
    spread = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "ci95": 1.96 * spread / math.sqrt(n) if n else 0.0}


def summarize(
    conversations: Conversations,
    budgets: Sequence[int],
    names: Sequence[str],
    records: Sequence[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    systems = {
        system: {
            budget: {
                "recall": _mean(r["recall"][system][budget] for r in records),
                "tokens": _mean(r["tokens"][system][budget] for r in records),
            }
            for budget in budgets
        }
        for system in names
    }
    kinds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        kinds[r["kind"]].append(r)
    by_kind = {
        kind: {
            "questions": len(rs),
            **{
                system: {b: _mean(r["recall"][system][b] for r in rs) for b in budgets}
                for system in names
            },
        }
        for kind, rs in sorted(kinds.items())
    }
    margins = {}
    for budget in budgets:
        best = max(BASELINE_SYSTEMS, key=lambda s: systems[s][budget]["recall"])
        diffs = [r["recall"]["server"][budget] - r["recall"][best][budget] for r in records]
        margins[budget] = {"best_baseline": best, **_paired(diffs)}
    fates = {
        budget: dict(
            Counter(f for r in records for f in r["fates"]["server"][budget]).most_common()
        )
        for budget in budgets
    }
    return {
        "seed": conversations.seed,
        "personas": len(conversations.personas),
        "turns": sum(len(p.turns()) for p in conversations.personas),
        "questions": len(records),
        "budgets": list(budgets),
        "system_names": list(names),
        "systems": systems,
        "margin_over_best_baseline": margins,
        "by_kind": by_kind,
        "server_evidence_fates": fates,
        "seconds": round(seconds, 1),
        "per_question": list(records),
    }


def report(results: dict[str, Any]) -> str:
    """The results as markdown."""
    budgets = results["budgets"]
    systems = results["systems"]
    names = results["system_names"]
    lines = [
        f"### Context evidence recall (seed {results['seed']}, {results['personas']} personas, "
        f"{results['turns']} turns, {results['questions']} questions, {results['seconds']} s)",
        "",
        "| system | "
        + " | ".join(f"recall@{b}" for b in budgets)
        + " | "
        + " | ".join(f"tokens@{b}" for b in budgets)
        + " |",
        "|---" * (1 + 2 * len(budgets)) + "|",
    ]
    for system in names:
        recalls = " | ".join(f"{systems[system][b]['recall']:.3f}" for b in budgets)
        tokens = " | ".join(f"{systems[system][b]['tokens']:.0f}" for b in budgets)
        lines.append(f"| {LABELS.get(system, system)} | {recalls} | {tokens} |")
    lines.append("")
    for b in budgets:
        margin = results["margin_over_best_baseline"][b]
        verdict = ""
        if b == TARGET_BUDGET:
            met = "meets" if margin["mean"] >= TARGET_MARGIN else "misses"
            verdict = f"; {met} the +{TARGET_MARGIN * 100:.0f} target"
        lines.append(
            f"- server vs the best baseline at {b} ({LABELS[margin['best_baseline']]}): "
            f"{margin['mean'] * 100:+.1f} points (95% CI ±{margin['ci95'] * 100:.1f}){verdict}"
        )
    budget = TARGET_BUDGET if TARGET_BUDGET in budgets else budgets[0]
    lines += [
        "",
        f"#### Recall at {budget} tokens by question kind",
        "",
        "| kind (questions) | " + " | ".join(LABELS.get(s, s) for s in names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]
    for kind, row in results["by_kind"].items():
        cells = " | ".join(f"{row[s][budget]:.3f}" for s in names)
        lines.append(f"| {kind} ({row['questions']}) | {cells} |")
    lines += [
        "",
        "#### What happened to the server's evidence turns",
        "",
        "| budget | " + " | ".join(_fate_names(results)) + " |",
        "|---" * (1 + len(_fate_names(results))) + "|",
    ]
    for b in budgets:
        fates = results["server_evidence_fates"][b]
        total = sum(fates.values()) or 1
        cells = " | ".join(f"{fates.get(f, 0) / total:.1%}" for f in _fate_names(results))
        lines.append(f"| {b} | {cells} |")
    return "\n".join(lines) + "\n"


def _fate_names(results: dict[str, Any]) -> list[str]:
    names: Counter[str] = Counter()
    for fates in results["server_evidence_fates"].values():
        names.update(fates)
    return [name for name, _ in names.most_common()]


# ---- command line ---------------------------------------------------------------------------


def write_output(path: Path, results: dict[str, Any], text: str) -> None:
    """A benchmark's results at `path`: all of them as JSON for `.json`, else the report `text`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    else:
        path.write_text(text)


def request_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`NAME=JSON` (a `--variant` argument) as (name, extra `/v1/context` request fields)."""
    name, _, body = text.partition("=")
    try:
        value = json.loads(body) if name else None
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{name}: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a variant is NAME=JSON, the JSON an object of fields")
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--personas", type=int, default=None, help="default 10 (2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a small run, for tests and CI")
    parser.add_argument("--output", type=Path, default=None, help="write results (.md or .json)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: a temp directory")
    parser.add_argument(
        "--variant",
        type=request_variant,
        action="append",
        default=[],
        help="a server row asked with extra request fields: NAME=JSON, e.g. "
        'nodiv=\'{"ranking": {"diversity": 0}}\'',
    )
    args = parser.parse_args(argv)
    variants = dict(args.variant)

    personas = args.personas or (2 if args.quick else 10)
    sessions = (3, 4) if args.quick else (6, 10)
    facts = 8 if args.quick else 16
    # Questions are asked "now", so the server's recency decay sees realistic ages.
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    conversations = generate(args.seed, personas, sessions, facts, end=end)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.data_dir is not None:
        results = run(conversations, args.data_dir, progress=say, variants=variants)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
            results = run(conversations, Path(tmp), progress=say, variants=variants)
    text = report(results)
    print(text)
    if args.output is not None:
        write_output(args.output, results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
